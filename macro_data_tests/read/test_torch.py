"""The PyTorch adapters (torch is imported only when used; CI installs the CPU build, so these run):
iterable batches equal the view's, rank and worker sharding, map-style access with DistributedSampler,
and a real two-process ``torch.distributed`` (gloo on loopback) run."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import macro_data.read as mdr

torch = pytest.importorskip(
    "torch",
    reason="torch is not installed: CI installs its CPU build on Python 3.11 only (the reader without torch is "
    "tested in test_imports.py)",
)
ROOT = Path(__file__).resolve().parents[2]


def test_reading_api_does_not_import_torch():
    code = (
        "import sys, macro_data.read, macro_data.read.torch_adapter; "
        "assert 'torch' not in sys.modules, 'torch imported'; assert 'dagster' not in sys.modules, 'dagster'"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr


def test_torch_iterable_dataset(read_dataset):
    view = mdr.open_dataset(read_dataset).training_view("train", batch_size=50, worlds=["nk", "rbc"], seed=1)
    tds = mdr.torch_dataset(view)
    loader = torch.utils.data.DataLoader(tds, batch_size=None)
    got = list(loader)
    ref = list(view.iter(0))
    assert len(got) == len(ref) == len(tds)
    for out, (world, batch) in zip(got, ref):
        assert out["world"] == world
        for k, v in batch.items():
            assert np.array_equal(out[k].numpy(), v)
    loader2 = torch.utils.data.DataLoader(tds, batch_size=None, num_workers=2)
    seen = sorted((b["world"], tuple(b["index"].tolist())) for b in loader2)
    assert seen == sorted((w, tuple(b["index"].tolist())) for w, b in ref)


def test_mixed_batches_as_tensors_with_workers_and_ranks(stats_dataset):
    ds = mdr.open_dataset(stats_dataset)
    view = ds.training_view("train", batches="mixed", regime="C", history=4, batch_size=64, seed=2)
    ref = list(view.iter(0))
    got = list(torch.utils.data.DataLoader(mdr.torch_dataset(view), batch_size=None))
    assert len(got) == len(ref)
    for out, batch in zip(got, ref):
        assert set(out) == set(batch) and out["world_ids"] == batch["world_ids"]
        for k, v in batch.items():
            if isinstance(v, np.ndarray):
                assert isinstance(out[k], torch.Tensor) and np.array_equal(out[k].numpy(), v)
    two = torch.utils.data.DataLoader(mdr.torch_dataset(view), batch_size=None, num_workers=2)
    assert sorted(tuple(b["index"].tolist()) for b in two) == sorted(tuple(b["index"].tolist()) for b in ref)
    per_rank = [list(mdr.torch_dataset(view, rank=r, world_size=3)) for r in range(3)]
    assert [len(p) for p in per_rank] == [len(ref) // 3] * 3 == [len(mdr.torch_dataset(view, rank=0, world_size=3))] * 3
    items = [tuple(zip(b["world_ids"], b["index"].tolist())) for p in per_rank for b in p]
    assert items == [tuple(zip(b["world_ids"], b["index"].tolist())) for b in ref[: 3 * (len(ref) // 3)]]


def test_map_style_with_distributed_sampler(stats_dataset):
    ds = mdr.open_dataset(stats_dataset)
    mds = ds.map_dataset("train", regime="A", normalize="stats")
    seen = []
    lengths = []
    for rank in range(2):
        sampler = torch.utils.data.DistributedSampler(mds, num_replicas=2, rank=rank, shuffle=True, seed=0)
        loader = torch.utils.data.DataLoader(
            mds, batch_size=50, sampler=sampler, collate_fn=mdr.torch_collate, num_workers=2 if rank else 0
        )
        n = 0
        for batch in loader:
            assert batch["theta"].dtype == torch.float32 and batch["irf_mask"].dtype == torch.bool
            assert batch["theta"].shape[1] == 57 and len(batch["world_ids"]) == batch["index"].shape[0]
            seen += list(zip(batch["world_ids"], batch["index"].tolist()))
            n += batch["index"].shape[0]
        lengths.append(n)
    assert lengths[0] == lengths[1] == -(-len(mds) // 2)
    every = {(w, int(i)) for w in ds.worlds for i in ds[w].split_indices("train")}
    assert set(seen) == every  # DistributedSampler pads by repeating a few items to equal lengths


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(not torch.distributed.is_available(), reason="this torch build has no torch.distributed")
def test_real_process_group_shards_iterable_and_map_style(stats_dataset, tmp_path):
    port, world_size = _free_port(), 2
    outs = [tmp_path / f"rank{r}.json" for r in range(world_size)]
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "macro_data_tests.read.distributed_worker",
                str(stats_dataset),
                str(r),
                str(world_size),
                str(port),
                str(outs[r]),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for r in range(world_size)
    ]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-3000:]
    res = [json.loads(o.read_text()) for o in outs]
    ds = mdr.open_dataset(stats_dataset)
    view = ds.training_view("train", batches="mixed", regime="A", batch_size=40, seed=3)
    whole = [list(zip(b["world_ids"], b["index"].tolist())) for b in view.iter(0)]
    per = len(whole) // world_size
    assert [r["len"] for r in res] == [per] * world_size == res[0]["all_lengths"]
    for r, out in enumerate(res):  # each rank: its contiguous block (workers interleave, the set is the block's)
        got = sorted(tuple(map(tuple, b)) for b in out["iterable"])
        assert got == sorted(tuple(tuple(x) for x in b) for b in whole[r * per : (r + 1) * per])
    mapped = [{tuple(x) for b in out["mapped"] for x in b} for out in res]
    assert sum(len(b) for b in res[0]["mapped"]) == sum(len(b) for b in res[1]["mapped"])
    every = {(w, int(i)) for w in ds.worlds for i in ds[w].split_indices("train")}
    assert mapped[0] | mapped[1] == every
    assert len(mapped[0] & mapped[1]) <= 1  # disjoint but for the padding DistributedSampler adds
