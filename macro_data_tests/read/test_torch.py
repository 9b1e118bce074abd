"""The optional PyTorch adapters: torch is imported only when used (CI installs the CPU build, so these run)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import macro_data.read as mdr


def test_reading_api_does_not_import_torch():
    code = (
        "import sys, macro_data.read, macro_data.read.torch_adapter; "
        "assert 'torch' not in sys.modules, 'torch imported'; assert 'dagster' not in sys.modules, 'dagster'"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr


def test_torch_iterable_dataset(read_dataset):
    torch = pytest.importorskip("torch")  # CI installs the CPU build: this runs there
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
