"""Fixtures of the validation tests: the tiny 6-world dataset (built through Dagster by the
package conftest), private copies of it to corrupt, and a verified external-data cache holding
the real US macro table that statsmodels ships (the same bytes the registry pins)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from macro_data.external.cache import Cache
from macro_data.external.registry import load_registry
from macro_data.validation.realism import SOURCE_ENTRY


def place_real_data(root: Path) -> Path:
    """Put statsmodels' macrodata.csv where the external-data cache keeps the registry entry."""
    statsmodels_data = pytest.importorskip("statsmodels.datasets.macrodata")
    entry = load_registry().get(SOURCE_ENTRY)
    target = Cache(root).object_path(entry)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(Path(os.path.dirname(statsmodels_data.__file__)) / "macrodata.csv", target)
    return target


@pytest.fixture(scope="session")
def external_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("external")
    place_real_data(root)
    return root


@pytest.fixture(scope="session")
def clean_dir(tiny_dataset) -> Path:
    """The tiny dataset folder (do not modify: copy it with ``dataset_copy``)."""
    return tiny_dataset[2]


@pytest.fixture
def dataset_copy(clean_dir, tmp_path) -> Path:
    """A private copy of the tiny dataset, laid out as ``<root>/tiny/0.1.0``, to corrupt."""
    dest = tmp_path / "root" / "tiny" / "0.1.0"
    shutil.copytree(clean_dir, dest, ignore=shutil.ignore_patterns(".staging", ".locks", "validation_report.*"))
    return dest
