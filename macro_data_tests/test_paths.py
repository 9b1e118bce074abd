"""Packaged resources and working-directory defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from macro_data import paths
from macro_data.errors import RecipeError
from macro_data.external.errors import RegistryError
from macro_data.external.pinning import pin
from macro_data.recipes import load_recipe, resolve_recipe_path


def test_a_missing_packaged_resource_is_named():
    with pytest.raises(paths.MissingResourceError, match=r"macro_data/data/schemas/nope.schema.json is missing"):
        paths.schema_text("nope")


def test_shipped_files_are_the_top_level_sources():
    checkout = paths.source_checkout()
    if checkout is None:
        pytest.skip("not a source checkout")
    assert paths.schema_text("recipe") == (checkout / "schemas" / "recipe.schema.json").read_text()
    assert paths.packaged("external.yaml").read_text() == (checkout / "datasets" / "external.yaml").read_text()
    assert set(paths.packaged_recipes()) == {p.stem for p in (checkout / "datasets" / "recipes").glob("*.yaml")}


def test_defaults_are_relative_to_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for var in ("MACRO_DATA_ROOT", "MACRO_DATA_REGISTRY", "MACRO_DATA_RECIPE"):
        monkeypatch.delenv(var, raising=False)
    assert paths.data_root() == tmp_path / "datasets" / "build"
    assert paths.is_packaged(paths.registry_path())  # no local registry: the shipped one
    local = tmp_path / "datasets" / "external.yaml"
    local.parent.mkdir()
    local.write_text(paths.packaged("external.yaml").read_text())
    assert paths.registry_path() == local
    # recipes: a local file of the same name wins over the shipped one
    assert paths.is_packaged(resolve_recipe_path("default"))
    (tmp_path / "datasets" / "recipes").mkdir()
    mine = tmp_path / "datasets" / "recipes" / "default.yaml"
    mine.write_text(paths.packaged("recipes/default.yaml").read_text().replace("seed: 42", "seed: 43"))
    assert resolve_recipe_path("default") == mine and load_recipe("default").seed == 43
    with pytest.raises(
        RecipeError, match=r"recipe 'nope': not found in .* nor among the shipped recipes \(declared, default, paper"
    ):
        resolve_recipe_path("nope")


def test_the_shipped_registry_is_never_edited_in_place(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MACRO_DATA_REGISTRY", raising=False)
    assert paths.is_packaged(Path(str(paths.packaged("external.yaml"))))
    with pytest.raises(RegistryError, match=r"registry shipped with the package \(read-only\)"):
        pin("fred_md_2024_01", root=tmp_path, offline=False)
