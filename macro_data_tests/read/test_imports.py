"""The reader stands alone: importing it loads no build-side module, no Dagster and no torch."""

from __future__ import annotations

import subprocess
import sys

import pytest

from macro_data.read.batches import world_key
from macro_data.worlds import WORLD_IDS
from macro_data.worlds.base import stable_key

BUILD_SIDE = (
    "dagster",
    "torch",
    "scipy",
    "macro_data.pipeline",
    "macro_data.worlds",
    "macro_data.storage.publish",
    "macro_data.storage.arrays",
    "macro_data.compute",
    "macro_data.recipes",
    "macro_data.validation",
    "macro_data.orchestration.definitions",
)


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_reader_imports_no_build_side_module():
    code = (
        "import sys, macro_data.read, macro_data.read.torch_adapter\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {{'dagster', 'torch', 'scipy'}} "
        f"or any(m == p or m.startswith(p + '.') for p in {BUILD_SIDE!r}))\n"
        "assert not bad, bad\n"
    )
    out = _run(code)
    assert out.returncode == 0, out.stderr[-2000:]


def test_the_check_above_can_fail():
    out = _run("import sys, macro_data.recipes; assert 'macro_data.worlds' not in sys.modules")
    assert out.returncode != 0  # importing a build-side module does pull in the worlds


def test_shuffle_streams_keep_the_seeding_world_key():
    """The reader's world key (shuffle streams) is the seeding's, defined again so as not to import worlds."""
    for w in WORLD_IDS:
        assert world_key(w) == stable_key(w)


@pytest.mark.parametrize("call", ["torch_dataset(view)", "torch_collate({})"])
def test_clear_error_without_torch(read_dataset, call):
    """torch made unimportable in a fresh interpreter: the adapters say what is missing (runs with torch installed)."""
    code = (
        "import sys\n"
        "sys.modules['torch'] = None  # import torch now raises ImportError\n"
        "import macro_data.read as mdr\n"
        f"view = mdr.open_dataset({str(read_dataset)!r}).training_view('train', worlds=['nk'])\n"
        "try:\n"
        f"    mdr.{call}\n"
        "except ImportError as exc:\n"
        "    assert isinstance(exc, mdr.ReadError), type(exc)\n"
        "    print(exc)\n"
        "else:\n"
        "    raise SystemExit('no error')\n"
    )
    out = _run(code)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "the PyTorch adapter needs torch, which is not installed" in out.stdout
