"""One rank of a real ``torch.distributed`` (gloo, loopback) run: what the adapters give this rank.

Run by ``test_torch.py`` as ``python -m macro_data_tests.read.distributed_worker DATASET RANK WORLD PORT OUT``;
writes a JSON file with the (world, index) items of every batch this rank received.
"""

from __future__ import annotations

import json
import sys

import torch
import torch.distributed as dist

import macro_data.read as mdr


def main(dataset: str, rank: int, world_size: int, port: int, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size)
    try:
        ds = mdr.open_dataset(dataset)
        view = ds.training_view("train", batches="mixed", regime="A", batch_size=40, seed=3)
        tds = mdr.torch_dataset(view)  # rank and world size come from the process group
        iterable = [
            list(zip(b["world_ids"], b["index"].tolist()))
            for b in torch.utils.data.DataLoader(tds, batch_size=None, num_workers=2)
        ]
        mds = ds.map_dataset("train", regime="A", seed=3)
        sampler = torch.utils.data.DistributedSampler(mds, shuffle=True, seed=0)  # rank from the process group
        loader = torch.utils.data.DataLoader(mds, batch_size=64, sampler=sampler, collate_fn=mdr.torch_collate)
        sampler.set_epoch(1)
        mapped = []
        for b in loader:
            assert isinstance(b["irf"], torch.Tensor) and b["irf"].dtype == torch.float32
            mapped.append(list(zip(b["world_ids"], b["index"].tolist())))
        lengths = [torch.tensor(len(iterable)) for _ in range(world_size)]
        dist.all_gather(lengths, torch.tensor(len(iterable)))
        with open(out, "w") as f:
            json.dump(
                {"len": len(tds), "iterable": iterable, "mapped": mapped, "all_lengths": [int(x) for x in lengths]}, f
            )
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
