"""The optional PyTorch adapter: torch is imported only when used; its own test skips without torch."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import numpy as np
import pytest

import macro_data.read as mdr

HAS_TORCH = importlib.util.find_spec("torch") is not None


def test_reading_api_does_not_import_torch():
    code = (
        "import sys, macro_data.read, macro_data.read.torch_adapter; "
        "assert 'torch' not in sys.modules, 'torch imported'; assert 'dagster' not in sys.modules, 'dagster'"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr


@pytest.mark.skipif(HAS_TORCH, reason="torch is installed; this checks the error without it")
def test_clear_error_without_torch(read_dataset):
    view = mdr.open_dataset(read_dataset).training_view("train", worlds=["nk"])
    with pytest.raises(ImportError, match="the PyTorch adapter needs torch, which is not installed") as info:
        mdr.torch_dataset(view)
    assert isinstance(info.value, mdr.ReadError)


def test_torch_iterable_dataset(read_dataset):
    torch = pytest.importorskip("torch")
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
