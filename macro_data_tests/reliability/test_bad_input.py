"""Property-based bad input: recipes, the external registry, run config and the reading API.

Every property feeds hostile values (``None``, booleans, zero and negative counts, integers far
beyond any limit, NaN and infinities, text with path separators, ``..``, NUL, newlines and
unicode, lists, mappings, structures nested thousands of levels deep, YAML alias bombs) and
requires one of two outcomes:

* the package's own error (a :class:`macro_data.errors.MacroDataError` subclass, or Dagster's
  config validation error for run config) whose message names the file or argument and the
  field; never an unhandled ``KeyError``/``TypeError``/``AttributeError``/``RecursionError``/
  ``MemoryError``...;
* or success, and then the result is checked against an independent statement of the rules
  (the patterns and bounds written out here, numpy's own indexing of the fully read array),
  so that an input is never silently misread.

Nothing may be written by a refused input: the Dagster runs' output root stays empty and the
dataset read here is unchanged. Example counts are in :data:`EXAMPLES` (``pytest -s`` prints
the number of examples each property ran).
"""

from __future__ import annotations

import math
import os
import re
import shutil
import tracemalloc
from pathlib import Path
from urllib.parse import urlsplit

import dagster as dg
import numpy as np
import pytest
import yaml
import zarr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import macro_data.read as mdr
from macro_data.errors import MacroDataError, RecipeError
from macro_data.external.errors import RegistryError
from macro_data.external.registry import load_registry, parse_registry
from macro_data.recipes import MAX_CHUNK_BYTES, check_resources, load_recipe, parse_recipe
from macro_data.worlds import WORLD_IDS, get_world
from macro_data_tests.conftest import run_config
from macro_data_tests.read.conftest import build_plain

EXAMPLES = {
    "recipe": 150,
    "recipe_file": 60,
    "name": 100,
    "sizes": 80,
    "priors": 80,
    "registry": 150,
    "registry_file": 40,
    "run_config": 80,
    "run": 8,
    "index": 250,
    "index_valid": 150,
    "names": 120,
    "training": 120,
    "open": 60,
}
RAN: dict[str, int] = {}


def _settings(key: str):
    return settings(
        max_examples=EXAMPLES[key],
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
    )


def _count(key: str) -> None:
    RAN[key] = RAN.get(key, 0) + 1


@pytest.fixture(scope="module", autouse=True)
def _report():
    yield
    print(f"\nbad-input examples run per property: {RAN}")


# ---- hostile values ----------------------------------------------------------------------------------------


def deep(n: int, kind: str = "list"):
    """A structure nested ``n`` levels deep, built without recursion."""
    root: list | dict = [] if kind == "list" else {}
    node = root
    for _ in range(n):
        child: list | dict = [] if kind == "list" else {}
        if kind == "list":
            node.append(child)
        else:
            node["a"] = child
        node = child
    return root


HOSTILE_TEXT = st.sampled_from(
    [
        "",
        " ",
        ".",
        "..",
        "../escape",
        "../../etc",
        "/abs/path",
        "a/b",
        "a\\b",
        "C:\\x",
        "nul\x00byte",
        "new\nline",
        "trailing\n",
        "tab\t",
        "ünïcödé",
        "名前",
        "\u202eevil",
        "x" * 300,
        "~",
        "$HOME",
        "%s%n",
        "{0}",
        "-",
        "_",
        "tiny",
        "1.0.0",
        "1.0.0\n",
        "CON",
        "a" * 65,
    ]
) | st.text(max_size=12)
NUMBERS = (
    st.sampled_from(
        [
            0,
            -1,
            1,
            -(2**63),
            2**63,
            2**64,
            10**12,
            10**30,
            True,
            False,
            0.5,
            -0.0,
            1.0,
            float("nan"),
            float("inf"),
            -float("inf"),
            1e308,
            5e-324,
        ]
    )
    | st.integers()
    | st.floats()
)
SCALARS = st.none() | NUMBERS | HOSTILE_TEXT
NESTED = st.recursive(
    SCALARS,
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6) | st.integers(-3, 3), c, max_size=3),
    max_leaves=8,
)
STR_KEYED = st.recursive(
    SCALARS, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6), c, max_size=3), max_leaves=8
)
# Arguments and run config: nested up to 200 levels. Documents (recipes, registries, manifests) also get 3000
# levels, past Python's recursion limit, which only a parser that never recurses on them survives.
HOSTILE = SCALARS | NESTED | st.builds(deep, st.sampled_from([40, 200]), st.sampled_from(["list", "dict"]))
HOSTILE_DOC = HOSTILE | st.builds(deep, st.just(3000), st.sampled_from(["list", "dict"]))
# Dagster's config validation itself crashes (TypeError / CheckError) on non-string mapping keys, which
# JSON and the UI cannot produce: run config gets string keys only (see docs/reliability.md)
HOSTILE_CONFIG = SCALARS | STR_KEYED | st.builds(deep, st.sampled_from([40, 200]), st.sampled_from(["list", "dict"]))
DELETE = object()


def mutate(doc, path: tuple, value):
    """A deep copy of ``doc`` with ``path`` set to ``value`` (or removed, for :data:`DELETE`)."""
    import copy

    out = copy.deepcopy(doc)
    node = out
    for k in path[:-1]:
        if not isinstance(node, dict):
            return out
        node = node.setdefault(k, {}) if isinstance(node.get(k), dict) or k not in node else node[k]
    if isinstance(node, dict):
        if value is DELETE:
            node.pop(path[-1], None)
        else:
            node[path[-1]] = value
    return out


# ---- recipes -------------------------------------------------------------------------------------------------

GOOD_RECIPE = {
    "name": "tiny",
    "version": "1.0.0",
    "seed": 1,
    "T": 10,
    "H": 4,
    "storage": {"chunk_samples": 100, "clevel": 1},
    "worlds": {"nk": {"n_samples": 10, "priors": {"phi_pi": {"low": 1.2, "high": 3.0}}}},
}
RECIPE_PATHS = [
    ("name",),
    ("version",),
    ("seed",),
    ("T",),
    ("H",),
    ("description",),
    ("storage",),
    ("storage", "chunk_samples"),
    ("storage", "clevel"),
    ("worlds",),
    ("worlds", "nk"),
    ("worlds", "nk", "n_samples"),
    ("worlds", "nk", "priors"),
    ("worlds", "nk", "priors", "phi_pi"),
    ("worlds", "nk", "priors", "phi_pi", "low"),
    ("worlds", "nk", "priors", "phi_pi", "high"),
    ("worlds", "nk", "priors", "no_such"),
    ("worlds", "dsge"),
    ("worlds", "../nk"),
    ("extra",),
]
NAME_RE = re.compile(r"[a-z0-9_-]+")
VERSION_RE = re.compile(r"(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?")


def check_recipe(recipe, doc, root: Path) -> None:
    """The rules of a valid recipe, written out independently of the parser."""
    assert NAME_RE.fullmatch(recipe.name) and len(recipe.name) <= 64, recipe.name
    assert VERSION_RE.fullmatch(recipe.version) and len(recipe.version) <= 64, recipe.version
    target = Path(recipe.dataset_dir(root)).resolve()
    assert target.parent.parent == root.resolve(), target  # never escapes the dataset root
    for key in ("seed", "T", "H"):
        assert not isinstance(doc[key], bool) and doc[key] == int(doc[key])
    assert 1 <= recipe.T <= 100_000 and 1 <= recipe.H <= 10_000 and 0 <= recipe.seed < 2**64
    assert 1 <= recipe.chunk_samples <= 1_000_000 and 0 <= recipe.clevel <= 9
    assert set(recipe.worlds) <= set(WORLD_IDS) and recipe.worlds
    for w, plan in recipe.worlds.items():
        assert 1 <= plan.n_samples <= 100_000_000
        world = get_world(w)
        for p in world.parameters:
            if p.name in plan.priors:
                lo, hi = plan.priors[p.name]
                assert math.isfinite(lo) and math.isfinite(hi) and lo < hi
                assert p.low <= lo and hi <= p.high, (p.name, lo, hi)


def check_recipe_error(exc: RecipeError, source: str) -> None:
    text = str(exc)
    assert source in text, text
    assert "field " in text or "top level must be a mapping" in text, text


def parse_or_error(doc, source: str = "hyp.yaml", root: Path = Path("/data-root")):
    try:
        recipe = parse_recipe(doc, source=source)
    except RecipeError as exc:
        check_recipe_error(exc, source)
        return None
    check_recipe(recipe, doc, root)
    return recipe


@_settings("recipe")
@given(path=st.sampled_from(RECIPE_PATHS), value=HOSTILE_DOC | st.just(DELETE))
def test_recipe_documents(path, value):
    _count("recipe")
    parse_or_error(mutate(GOOD_RECIPE, path, value))


@_settings("name")
@given(name=HOSTILE_TEXT | st.text(alphabet="abc./\\_-\n\x00é", max_size=8), version=HOSTILE_TEXT)
def test_recipe_name_and_version_never_escape_the_root(name, version, tmp_path):
    _count("name")
    recipe = parse_or_error({**GOOD_RECIPE, "name": name}, root=tmp_path)
    assert recipe is not None or not NAME_RE.fullmatch(name) or len(name) > 64
    parse_or_error({**GOOD_RECIPE, "version": version}, root=tmp_path)


@_settings("sizes")
@given(
    n=st.integers(-5, 10**12),
    T=st.integers(-5, 10**7),
    H=st.integers(-5, 10**6),
    chunk=st.integers(-5, 10**8),
    world=st.sampled_from(WORLD_IDS),
)
def test_huge_sizes_are_refused_before_allocating(n, T, H, chunk, world):
    _count("sizes")
    doc = {**GOOD_RECIPE, "T": T, "H": H, "storage": {"chunk_samples": chunk}, "worlds": {world: {"n_samples": n}}}
    tracemalloc.start()
    try:
        recipe = parse_or_error(doc)
        if recipe is not None:
            try:
                check_resources(recipe)  # what load_recipe applies before any build
            except RecipeError as exc:
                check_recipe_error(exc, "hyp.yaml")
                recipe = None
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50 * 2**20, peak  # judged from the numbers: nothing of the dataset's size is allocated
    if recipe is not None:  # what was accepted fits the chunk limit (the largest per-sample array: float32)
        w = get_world(world)
        per_sample = max(len(w.parameters), T * len(w.shocks), T * 3, T * len(w.extras), len(w.shocks) * (H + 1) * 3)
        assert min(chunk, n) * per_sample * 4 <= MAX_CHUNK_BYTES


@_settings("priors")
@given(low=NUMBERS, high=NUMBERS, param=st.sampled_from(["phi_pi", "beta", "rho_i", "sigma_m"]))
def test_prior_overrides_nan_inf_and_out_of_bounds(low, high, param):
    _count("priors")
    doc = mutate(GOOD_RECIPE, ("worlds", "nk", "priors"), {param: {"low": low, "high": high}})
    recipe = parse_or_error(doc)
    if recipe is None:
        return
    lo, hi = recipe.worlds["nk"].priors[param]
    assert (lo, hi) == (float(low), float(high))


RECIPE_TEXTS = st.sampled_from(
    [
        "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b]\n"
        "d: [*c, *c, *c, *c, *c, *c]\n",  # billion laughs, shortened
        "name: &n tiny\nversion: 1.0.0\nseed: 1\nT: 5\nH: 2\nworlds: {nk: {n_samples: 3}}\ndescription: *n\n",
        "[" * 5000 + "]" * 5000,
        "{a: " * 3000 + "1" + "}" * 3000,
        "- " * 2000 + "x",
        "name: tiny\nversion: 1.0.0\nseed: 1\nT: .inf\nH: 2\nworlds: {nk: {n_samples: 3}}\n",
        "name: tiny\nversion: 1.0.0\nseed: 1\nT: 5\nH: 2\n"
        "worlds: {nk: {n_samples: 3, priors: {beta: {low: .nan, high: -.inf}}}}\n",
        "name: tiny\nversion: 1.0.0\nseed: 1\nT: 5\nH: 2\nworlds: {nk: {n_samples: 1e400}}\n",
        "name: tiny\nversion: 1.0.0\nseed: 1\nT: 5\nH: 2\nworlds: {nk: {n_samples: 99999999999999999999999}}\n",
        "name: !!python/object/apply:os.system [echo pwned]\n",
        "\x00\x01\x02",
        "%YAML 9.9\n---\nname: x\n",
        "name: tiny\nname: other\n",
        "---\n...\n---\n",
        "",
        "null",
        "42",
        "[1, 2]",
        "\t\tname: tab",
    ]
) | st.text(max_size=80)


@_settings("recipe_file")
@given(text=RECIPE_TEXTS)
def test_recipe_files(text, tmp_path):
    _count("recipe_file")
    path = tmp_path / "hostile.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        recipe = load_recipe(path)
    except RecipeError as exc:
        assert str(path) in str(exc), str(exc)
        return
    check_recipe(recipe, recipe.document, tmp_path)


def test_binary_and_oversized_recipe_files(tmp_path):
    (tmp_path / "bin.yaml").write_bytes(b"\xff\xfe\x00name: x")
    (tmp_path / "big.yaml").write_text("# " + "x" * 2_000_000)
    for name in ("bin.yaml", "big.yaml"):
        with pytest.raises(RecipeError, match=re.escape(str(tmp_path / name))):
            load_recipe(tmp_path / name)


# ---- the external registry --------------------------------------------------------------------------------------

GOOD_ENTRY = {
    "name": "m",
    "description": "US macro data",
    "urls": ["https://example.org/data/macrodata.csv"],
    "filename": "macrodata.csv",
    "sha256": "d93c0d3a7a77ef83c3af14e46032bb1d02ae3a512b22ab94159a8ca226fcf708",
    "size": 17829,
    "format": "csv",
    "csv": {"header_rows": 0},
    "columns": ["year", "quarter"],
    "license": "public domain",
}
GOOD_ARCHIVE = {
    "name": "arch",
    "description": "archive",
    "urls": ["https://example.org/a.zip"],
    "filename": "a.zip",
    "sha256": "0" * 64,
    "size": 10,
    "format": "zip",
    "members": {"inner/data.csv": {"sha256": "1" * 64, "size": 5, "columns": ["a"]}},
}
REGISTRY_PATHS = [
    ("version",),
    ("datasets",),
    ("description",),
    ("datasets", 0),
    ("datasets", 0, "name"),
    ("datasets", 0, "description"),
    ("datasets", 0, "urls"),
    ("datasets", 0, "urls", 0),
    ("datasets", 0, "filename"),
    ("datasets", 0, "sha256"),
    ("datasets", 0, "size"),
    ("datasets", 0, "format"),
    ("datasets", 0, "csv"),
    ("datasets", 0, "csv", "header_rows"),
    ("datasets", 0, "csv", "delimiter"),
    ("datasets", 0, "columns"),
    ("datasets", 0, "kind"),
    ("datasets", 0, "pinned"),
    ("datasets", 0, "x_note"),
    ("datasets", 0, "bogus"),
    ("datasets", 1, "members"),
    ("datasets", 1, "members", "inner/data.csv"),
    ("datasets", 1, "members", "../evil.csv"),
    ("datasets", 1, "members", "inner/data.csv", "sha256"),
    ("datasets", 1, "name"),
]
URL_VALUES = st.sampled_from(
    [
        "http://example.org/x.csv",
        "ftp://example.org/x.csv",
        "file:///etc/passwd",
        "https://user:pw@e.org/x.csv",
        "https://e.org/current.csv",
        "https://api.stlouisfed.org/fred/series",
        "https://[::1/x.csv",
        "https://e.org:99999/x.csv",
        "https:///x.csv",
        "https://e.org/a b.csv",
        "https://e.org/\nx.csv",
        "http://127.0.0.1:8080/x.csv",
        "http://127.0.0.2/x.csv",
        "http://localhost/x.csv",
        "javascript:alert(1)",
        "https://exämple.org/x.csv",
        "//e.org/x.csv",
        "https://e.org/x.csv\n",
    ]
)


def _set_registry(doc, path, value):
    import copy

    out = copy.deepcopy(doc)
    node = out
    for k in path[:-1]:
        if isinstance(node, list) and isinstance(k, int) and k < len(node):
            node = node[k]
        elif isinstance(node, dict) and k in node:
            node = node[k]
        else:
            return out
    if isinstance(node, dict):
        node.pop(path[-1], None) if value is DELETE else node.__setitem__(path[-1], value)
    elif isinstance(node, list) and isinstance(path[-1], int) and path[-1] < len(node):
        node.pop(path[-1]) if value is DELETE else node.__setitem__(path[-1], value)
    return out


def check_registry(reg) -> None:
    """Rules of a valid registry, written out independently of the parser."""
    assert reg.entries
    for e in reg.entries.values():
        assert re.fullmatch(r"[a-z0-9_]+", e.name) and len(e.name) <= 64, e.name
        assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", e.filename) and ".." not in e.filename, e.filename
        assert not e.filename.endswith(".part")
        assert e.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", e.sha256), e.sha256
        assert e.size is None or (isinstance(e.size, int) and not isinstance(e.size, bool) and e.size >= 1)
        for url in e.urls:
            parts = urlsplit(url)
            assert not any(c.isspace() or ord(c) < 32 for c in url), url
            assert parts.scheme == "https" or (parts.scheme == "http" and parts.hostname == "127.0.0.1"), url
            assert parts.hostname and parts.username is None and parts.password is None, url
        for m in e.members:
            assert not m.path.startswith("/") and ".." not in m.path.split("/") and "\\" not in m.path, m.path
        assert re.fullmatch(r"[0-9a-f]{64}", e.entry_sha256)


@_settings("registry")
@given(path=st.sampled_from(REGISTRY_PATHS), value=HOSTILE_DOC | URL_VALUES | st.just(DELETE))
def test_registry_documents(path, value):
    _count("registry")
    doc = _set_registry({"version": 1, "datasets": [dict(GOOD_ENTRY), dict(GOOD_ARCHIVE)]}, path, value)
    try:
        reg = parse_registry(doc, source="reg.yaml", allow_http_hosts="127.0.0.1")
    except RegistryError as exc:
        text = str(exc)
        assert "reg.yaml" in text and ("field" in text or "top level must be a mapping" in text), text
        return
    check_registry(reg)


REGISTRY_TEXTS = st.sampled_from(
    [
        "a: &a [x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a]\nc: [*b, *b, *b, *b, *b, *b]\n",
        "[" * 5000 + "]" * 5000,
        "{a: " * 3000 + "1" + "}" * 3000,
        "version: 1\nversion: 1\ndatasets: []\n",
        "version: 1\ndatasets:\n  - {name: m, name: n}\n",
        "version: 1\ndatasets:\n  - {name: m, description: d, urls: [https://e.org/x.csv], filename: x.csv, "
        "sha256: " + "0" * 64 + ", size: .inf, format: csv}\n",
        "version: 1\ndatasets:\n  - {name: m, description: d, urls: [https://e.org/x.csv], filename: x.csv, "
        "sha256: " + "0" * 64 + ", size: 1, format: csv, x_note: .nan}\n",
        "!!python/object/apply:os.system [echo pwned]\n",
        "\x00",
        "",
        "null",
        "[]",
    ]
) | st.text(max_size=60)


@_settings("registry_file")
@given(text=REGISTRY_TEXTS)
def test_registry_files(text, tmp_path):
    _count("registry_file")
    path = tmp_path / "external.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        reg = load_registry(path, allow_http_hosts="127.0.0.1")
    except RegistryError as exc:
        assert str(path) in str(exc), str(exc)
        return
    check_registry(reg)


# ---- Dagster run config ---------------------------------------------------------------------------------------------

CONFIG_PATHS = [
    ("resources",),
    ("resources", "recipe"),
    ("resources", "recipe", "config"),
    ("resources", "recipe", "config", "recipe"),
    ("resources", "storage", "config", "root"),
    ("resources", "compute", "config"),
    ("resources", "compute", "config", "mode"),
    ("resources", "compute", "config", "processes"),
    ("resources", "compute", "config", "workers"),
    ("resources", "compute", "config", "retries"),
    ("resources", "compute", "config", "region_samples"),
    ("resources", "compute", "config", "scheduler"),
    ("resources", "bogus"),
    ("ops",),
    ("execution",),
    ("resources", "storage", "config", "bogus"),
]


@pytest.fixture(scope="module")
def world_job():
    from macro_data import defs

    return defs.resolve_job_def("build_world")


@pytest.fixture(scope="module")
def small_recipe(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("recipes")
    path = folder / "small.yaml"
    path.write_text(yaml.safe_dump({**GOOD_RECIPE, "worlds": {"nk": {"n_samples": 20}}}))
    return path


@_settings("run_config")
@given(path=st.sampled_from(CONFIG_PATHS), value=HOSTILE_CONFIG | st.just(DELETE))
def test_run_config_is_validated_by_dagster(world_job, small_recipe, tmp_path, path, value):
    _count("run_config")
    config = mutate(run_config(small_recipe, tmp_path / "out"), path, value)
    try:
        dg.validate_run_config(world_job, config)
    except dg.DagsterInvalidConfigError as exc:
        assert str(exc).strip()
    assert not (tmp_path / "out").exists()  # validation never writes


def _bad_recipe_files(folder: Path) -> list[str]:
    docs = {
        "huge_n.yaml": {**GOOD_RECIPE, "worlds": {"nk": {"n_samples": 10**12}}},
        "huge_chunk.yaml": {
            **GOOD_RECIPE,
            "T": 100_000,
            "storage": {"chunk_samples": 1_000_000},
            "worlds": {"nk": {"n_samples": 10**8}},
        },
        "zero_T.yaml": {**GOOD_RECIPE, "T": 0},
        "neg_H.yaml": {**GOOD_RECIPE, "H": -3},
        "escape.yaml": {**GOOD_RECIPE, "name": "../../escape"},
        "newline.yaml": {**GOOD_RECIPE, "name": "tiny\n"},
        "nan_prior.yaml": mutate(GOOD_RECIPE, ("worlds", "nk", "priors", "phi_pi", "low"), float("nan")),
    }
    folder.mkdir(parents=True, exist_ok=True)
    for name, doc in docs.items():
        (folder / name).write_text(yaml.safe_dump(doc))
    (folder / "bomb.yaml").write_text("a: &a [x, x, x, x]\nb: &b [*a, *a, *a, *a]\nc: [*b, *b, *b]\n")
    return [str(folder / n) for n in [*docs, "bomb.yaml"]] + [
        "no_such_recipe",
        "../../../etc/passwd",
        str(folder / "missing.yaml"),
        "a\x00b.yaml",
    ]


@pytest.fixture(scope="module")
def bad_recipes(tmp_path_factory) -> list[str]:
    return _bad_recipe_files(tmp_path_factory.mktemp("bad_recipes"))


INVALID_RUN_CHANGES = st.one_of(
    st.tuples(
        st.just(("resources", "storage", "config", "root")),
        st.sampled_from(["out\x00nul", "out\nnewline", "zzz://bucket/x", "nosuchscheme://a"]),
    ),
    st.tuples(st.just(("resources", "compute", "config", "processes")), st.integers(max_value=-1)),
    st.tuples(st.just(("resources", "compute", "config", "retries")), st.integers(max_value=-1)),
    st.tuples(st.just(("resources", "compute", "config", "region_samples")), st.integers(max_value=0)),
    st.tuples(
        st.just(("resources", "compute", "config", "mode")),
        HOSTILE_TEXT.filter(lambda s: s not in ("local", "dask", "")),
    ),
    st.tuples(st.just(("resources", "compute", "config")), st.just({"mode": "dask", "workers": 0})),
    st.tuples(st.just(("resources", "recipe", "config", "recipe")), st.integers(0, 11)),  # index into bad_recipes
)


@_settings("run")
@given(change=INVALID_RUN_CHANGES)
def test_invalid_runs_fail_with_a_clear_message_and_write_nothing(
    world_job, small_recipe, bad_recipes, instance, tmp_path_factory, change
):
    _count("run")
    path, value = change
    if path[-1] == "recipe":
        value = bad_recipes[value]
    base = tmp_path_factory.mktemp("run")
    config = run_config(small_recipe, base / "out")
    if path[-1] == "root":
        value = str(base / "out" / value) if "://" not in value else value
    config = mutate(config, path, value)
    dg.validate_run_config(world_job, config)  # well-typed: the failure must come from our checks
    result = world_job.execute_in_process(
        instance=instance, partition_key="nk", run_config=config, raise_on_error=False
    )
    assert not result.success, change
    failures = [e.event_specific_data.error for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert failures, change
    for err in failures:
        # dg.Failure: our message as the description, no unhandled exception wrapped in a step error
        assert err.cls_name == "Failure", (change, err.cls_name, err.message)
    written = [p for p in base.rglob("*") if p.is_file()]
    assert written == [], written  # never a partial write


# ---- the reading API ----------------------------------------------------------------------------------------------


class _Quiet(tuple):
    """The fixture value, with a short repr in hypothesis' failure reports."""

    def __repr__(self) -> str:
        return "<read dataset>"


@pytest.fixture(scope="module")
def read_ds(tmp_path_factory):
    folder = build_plain(
        tmp_path_factory.mktemp("badread"),
        {"nk": {"n_samples": 300}, "rbc": {"n_samples": 250}},
        T=12,
        H=4,
        chunk=100,
        name="badread",
    )
    before = {p: p.stat().st_mtime_ns for p in folder.rglob("*")}
    ds = mdr.open_dataset(folder)
    ref = {
        w: {a: np.asarray(zarr.open_array(str(folder / f"{w}.zarr" / a), mode="r")[...]) for a in ds[w].arrays}
        for w in ds.worlds
    }
    yield _Quiet((folder, ds, ref))
    assert {p: p.stat().st_mtime_ns for p in folder.rglob("*")} == before  # the reader never writes


INDEX_SCALARS = (
    st.integers(-400, 400)
    | st.sampled_from([2**31, 2**63, 2**64, -(2**63), 10**30])
    | st.builds(
        lambda v, t: np.array(v % (2**63)).astype(t)[()],
        st.integers(0, 2**64 - 1),
        st.sampled_from([np.uint8, np.int16, np.uint64, np.int64]),
    )
    | st.sampled_from([np.uint64(2**64 - 1), np.int64(-1), np.uint64(299)])
)
SLICES = st.builds(
    slice, st.none() | st.integers(-400, 400), st.none() | st.integers(-400, 400), st.none() | st.integers(-5, 5)
)
INDEX_ARRAYS = (
    st.lists(st.integers(-350, 350), max_size=6).map(np.array)
    | st.lists(st.integers(0, 2**64 - 1), min_size=1, max_size=3).map(lambda v: np.array(v, dtype=np.uint64))
    | st.lists(st.booleans(), min_size=298, max_size=302).map(np.array)
    | st.lists(st.integers(0, 299), max_size=4)
)
INDEX_ATOMS = INDEX_SCALARS | SLICES | INDEX_ARRAYS | st.sampled_from([None, Ellipsis, True, 1.5, "a", b"x", ()])
INDEX_KEYS = INDEX_ATOMS | st.lists(INDEX_ATOMS, max_size=5).map(tuple)


def _empty_as_int(k):
    """An empty index selects nothing whatever its dtype (numpy itself accepts ``[]``, not ``np.array([])``)."""
    return np.array([], dtype=np.int64) if isinstance(k, np.ndarray) and k.size == 0 and k.ndim == 1 else k


def _numpy(ref: np.ndarray, key):
    key = tuple(_empty_as_int(k) for k in key) if isinstance(key, tuple) else _empty_as_int(key)
    try:
        return True, ref[key]
    except (IndexError, TypeError, ValueError, OverflowError):
        return False, None


@_settings("index")
@given(key=INDEX_KEYS, world=st.sampled_from(["nk", "rbc"]), array=st.sampled_from(["trajectories", "theta", "irfs"]))
def test_array_indexing_equals_numpy_or_is_refused(read_ds, key, world, array):
    """Whatever the key: the reader's error, or exactly numpy's answer on the fully read array."""
    _count("index")
    _, ds, ref = read_ds
    lazy = ds[world][array]
    ok, expected = _numpy(ref[world][array], key)
    try:
        got = lazy[key]
    except mdr.ReadError as exc:
        assert f"world {world!r} array {array!r}" in str(exc), str(exc)
        return
    assert ok, f"{key!r} returned data where numpy refuses"
    assert got.shape == expected.shape, (key, got.shape, expected.shape)
    np.testing.assert_array_equal(got, expected)


@_settings("index_valid")
@given(
    key=st.one_of(
        st.integers(-300, 299),
        SLICES.filter(lambda s: s.step != 0),
        st.lists(st.integers(-300, 299), max_size=5),
        st.tuples(st.integers(0, 299), st.integers(-12, 11)),
        st.tuples(SLICES.filter(lambda s: s.step != 0), st.integers(0, 2), st.integers(-3, 2)),
    )
)
def test_valid_indexing_always_returns_numpys_answer(read_ds, key):
    _count("index_valid")
    _, ds, ref = read_ds
    np.testing.assert_array_equal(ds["nk"]["trajectories"][key], ref["nk"]["trajectories"][key])


NAME_ARGS = HOSTILE | st.sampled_from(
    [
        ["nk"],
        ("nk", "rbc"),
        ["nk", 5],
        [["nk"]],
        {"nk": 1},
        {"nk"},
        b"nk",
        "train",
        ["train", "val"],
        ["train", None],
        np.array(["nk"]),
        [0, 5, -1],
        [299, 300],
        np.array([2**64 - 1], dtype=np.uint64),
        [],
    ]
)


@_settings("names")
@given(
    value=NAME_ARGS,
    call=st.sampled_from(
        [
            "dataset[]",
            "array",
            "split_indices",
            "open worlds",
            "verify worlds",
            "verify arrays",
            "theta_moments",
            "normalizer bounds",
            "normalizer derived",
            "read_chunk",
            "take",
        ]
    ),
)
def test_name_arguments(read_ds, value, call):
    _count("names")
    folder, ds, ref = read_ds
    world = ds["nk"]
    calls = {
        "dataset[]": lambda v: ds[v],
        "array": lambda v: world.array(v),
        "split_indices": world.split_indices,
        "open worlds": lambda v: mdr.open_dataset(folder, worlds=v),
        "verify worlds": lambda v: ds.verify(worlds=v),
        "verify arrays": lambda v: world.verify(arrays=v),
        "theta_moments": world.theta_moments,
        "normalizer bounds": lambda v: world.normalizer(bounds=v),
        "normalizer derived": lambda v: world.normalizer(derived=v),
        "read_chunk": lambda v: world["theta"].read_chunk(v),
        "take": lambda v: world["theta"].take(v),
    }
    try:
        out = calls[call](value)
    except MacroDataError as exc:
        assert str(exc).strip()
        return
    if call == "split_indices":  # accepted: equals the labels read directly
        names = [value] if isinstance(value, str) or value is None else list(value)
        labels = ref["nk"]["split"]
        want = (
            np.arange(labels.size)
            if value is None
            else np.flatnonzero(np.isin(labels, [ds.manifest["split_labels"][n] for n in names]))
        )
        np.testing.assert_array_equal(out, want)
    elif call == "take":
        idx = np.asarray(value)
        assert out.shape == (idx.size, ref["nk"]["theta"].shape[1])
        if idx.size:
            np.testing.assert_array_equal(out, ref["nk"]["theta"][idx])
    elif call == "read_chunk":
        assert isinstance(value, (int, np.integer)) and not isinstance(value, bool)
        np.testing.assert_array_equal(out, ref["nk"]["theta"][int(value) * 100 : int(value) * 100 + 100])


TRAINING_ARGS = [
    "split",
    "batch_size",
    "worlds",
    "mixing",
    "num_batches",
    "seed",
    "shuffle",
    "buffer_chunks",
    "seq_len",
    "stride",
    "arrays",
    "normalize",
    "bounds",
    "drop_last",
    "epoch",
    "shard",
]
TRAINING_VALUES = HOSTILE | st.sampled_from(
    [
        10**15,
        2**63,
        -1,
        0,
        1,
        3,
        12,
        13,
        "uniform",
        {"nk": 1.0, "rbc": -1},
        {"nk": float("nan")},
        {"nk": 1, "rbc": 0},
        {"nk": "x"},
        {"nope": 1},
        (0, 1),
        (1, 1),
        (0, 0),
        (5,),
        {"nk": 5, "rbc": 5},
    ]
)


@_settings("training")
@given(arg=st.sampled_from(TRAINING_ARGS), value=TRAINING_VALUES, mixing=st.sampled_from(["proportional", "uniform"]))
def test_training_view_arguments(read_ds, arg, value, mixing):
    _count("training")
    _, ds, _ = read_ds
    split = value if arg == "split" else "train"
    options = {"batch_size": 64, "mixing": mixing}
    if arg not in ("split", "epoch", "shard"):
        options[arg] = value
    iter_options = {arg: value} if arg in ("epoch", "shard") else {}
    tracemalloc.start()
    try:
        view = ds.training_view(split, **options)
        world, batch = next(iter(view.iter(**iter_options)), (None, None))
    except MacroDataError as exc:
        assert str(exc).strip()
        return
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak < 200 * 2**20, (arg, value, peak)  # huge counts are refused or bounded, never allocated
    if world is not None:  # accepted: a well-formed batch of real samples
        n = batch["index"].size
        assert 0 < n <= view.batch_size and world in view.worlds
        assert batch["theta"].shape[0] == n


OPEN_PATHS = HOSTILE | st.sampled_from([".", "/", "/nonexistent/x", "manifest.json", Path("/tmp"), b"/tmp", 5, None])


@_settings("open")
@given(path=OPEN_PATHS)
def test_open_dataset_paths(read_ds, path):
    _count("open")
    try:
        mdr.open_dataset(path)
    except MacroDataError as exc:
        assert str(exc).strip()
        return
    pytest.fail(f"{path!r} opened as a dataset")


@pytest.mark.parametrize(
    "text",
    [
        "[" * 100_000 + "]" * 100_000,
        '{"a": ' * 50_000 + "1" + "}" * 50_000,
        '{"worlds": NaN}',
        "\x00\xff",
        "",
        "[]",
        '{"schema_version": 1e999}',
    ],
)
def test_hostile_manifest_files(tmp_path, text):
    (tmp_path / "manifest.json").write_text(text, encoding="utf-8", errors="surrogateescape")
    with pytest.raises(MacroDataError, match=re.escape(str(tmp_path / "manifest.json"))):
        mdr.open_dataset(tmp_path)


def test_reader_never_reads_outside_the_dataset_folder(read_ds, tmp_path):
    """A manifest whose array path leaves the dataset folder is refused (the manifest schema's path
    pattern), even when the data it points at is intact."""
    import json

    folder, _, _ = read_ds
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    doc = json.loads((copy / "manifest.json").read_text())
    doc["worlds"]["nk"]["arrays"]["theta"]["path"] = os.path.relpath(folder / "nk.zarr" / "theta", copy)
    (copy / "manifest.json").write_text(json.dumps(doc))
    with pytest.raises(MacroDataError, match="does not match"):
        mdr.open_dataset(copy)
