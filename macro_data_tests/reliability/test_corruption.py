"""Corruption after the fact: every damaged copy of a good dataset is caught by validation and refused
by the reading API when it is asked to verify.

Each trial copies the tiny six-world dataset (built through Dagster by the package conftest) and
damages it one seeded way:

* ``flip``: one byte of a random chunk file of a random array (data or coordinate array) XOR a
  random non-zero value;
* ``truncate``: a random chunk file cut to a random shorter length (possibly 0 bytes);
* ``delete``: a random chunk file removed;
* ``manifest``: one field of ``manifest.json`` changed, each edit of :data:`MANIFEST_EDITS` at
  least once in a seeded order (array hash, shape, dtype, dimension names, path, sample count,
  split count and index hash, T, H, the recipe, its hash, priors, names of parameters and shocks,
  a world or an optional array dropped, rejection count, provenance, split rule, the file cut
  short), on a seeded world and array.

Then (1) the validation checks must report at least one error-level failure naming the damaged
world (and, for a chunk, the damaged array), or refuse the manifest outright: dataset-level edits
run ``validate_dataset`` (what ``macro-data validate PATH`` runs), faults confined to one world run
the same checks for that world plus the dataset-level check, and the first trials of each kind
also run the command itself (exit status 1); (2) ``open_dataset(path, verify=True)`` and, for an
already opened dataset, ``Dataset.verify()`` must raise the package's error instead of returning
data. Manifest edits that only change bookkeeping the reader never returns (rejection counts,
provenance, split-rule thresholds, an optional array left unlisted) are counted for validation
only. The detection counts are
printed (``pytest -s``) and must be 100 %.
"""

from __future__ import annotations

import json
import random
import shutil
from collections import Counter
from pathlib import Path

import pytest

import macro_data.read as mdr
from macro_data.cli import main as cli_main
from macro_data.errors import MacroDataError
from macro_data.validation.consistency import check_manifest_dataset
from macro_data.validation.dataset import read_manifest, validate_dataset, validate_world
from macro_data.validation.realism import load_real_data
from macro_data.validation.spec import spec_from_manifest

pytestmark = pytest.mark.slow
TRIALS = {"flip": 20, "truncate": 20, "delete": 20, "manifest": 30}
CLI_TRIALS = 3  # per kind, also through `macro-data validate PATH` (exit status 1)
COORDINATES = {"param", "shock", "time", "observable", "horizon", "extra"}


def _copy(template: Path, dest_root: Path) -> Path:
    dest = dest_root / "tiny" / "0.1.0"
    shutil.copytree(template, dest, ignore=shutil.ignore_patterns(".staging", ".locks", "validation_report.*"))
    return dest


def _chunk_files(dataset: Path) -> dict[str, dict[str, list[Path]]]:
    """world -> array -> its chunk files (``<array>/c.<i>...``)."""
    out: dict[str, dict[str, list[Path]]] = {}
    for store in sorted(dataset.glob("*.zarr")):
        arrays = {}
        for arr in sorted(p for p in store.iterdir() if p.is_dir()):
            files = sorted(p for p in arr.glob("c.*") if p.is_file())
            if files:
                arrays[arr.name] = files
        out[store.name.removesuffix(".zarr")] = arrays
    return out


def _hex_change(rng: random.Random, value: str) -> str:
    i = rng.randrange(len(value))
    return value[:i] + rng.choice([c for c in "0123456789abcdef" if c != value[i]]) + value[i + 1 :]


# ---- manifest edits: each returns (label, world or None for dataset-level, reader must refuse) --------------


def _array_field(doc, rng, w):
    arrays = doc["worlds"][w]["arrays"]
    return rng.choice(sorted(arrays)), arrays


def edit_sha256(doc, rng, w):
    a, arrays = _array_field(doc, rng, w)
    arrays[a]["sha256"] = _hex_change(rng, arrays[a]["sha256"])
    return f"arrays/{a}/sha256", w, True


def edit_shape(doc, rng, w):
    a, arrays = _array_field(doc, rng, w)
    shape = arrays[a]["shape"]
    k = rng.randrange(len(shape))
    shape[k] = shape[k] + rng.choice([-1, 1, 7])
    return f"arrays/{a}/shape[{k}]", w, True


def edit_dtype(doc, rng, w):
    a, arrays = _array_field(doc, rng, w)
    arrays[a]["dtype"] = {"float32": "float64", "int8": "int16", "bool": "int8"}.get(arrays[a]["dtype"], "float32")
    return f"arrays/{a}/dtype", w, True


def edit_dims(doc, rng, w):
    a, arrays = _array_field(doc, rng, w)
    dims = arrays[a]["dimension_names"]
    if len(dims) > 1:
        dims[0], dims[-1] = dims[-1], dims[0]
    else:
        dims[0] = "index"
    return f"arrays/{a}/dimension_names", w, True


def edit_path(doc, rng, w):
    arrays = doc["worlds"][w]["arrays"]
    a, b = rng.sample(sorted(arrays), 2)
    arrays[a]["path"] = arrays[b]["path"]
    return f"arrays/{a}/path -> {b}", w, True


def edit_n_samples(doc, rng, w):
    doc["worlds"][w]["n_samples"] += rng.choice([-1, 1])
    return "n_samples", w, True


def edit_split_count(doc, rng, w):
    s = rng.choice(sorted(doc["worlds"][w]["splits"]))
    doc["worlds"][w]["splits"][s]["count"] += 1
    return f"splits/{s}/count", w, True


def edit_split_hash(doc, rng, w):
    s = rng.choice(sorted(doc["worlds"][w]["splits"]))
    doc["worlds"][w]["splits"][s]["index_hash"] = _hex_change(rng, doc["worlds"][w]["splits"][s]["index_hash"])
    return f"splits/{s}/index_hash", w, True


def edit_T(doc, rng, w):
    doc["T"] += rng.choice([-1, 1])
    return "T", None, True


def edit_H(doc, rng, w):
    doc["H"] += rng.choice([-1, 1])
    return "H", None, True


def edit_recipe_seed(doc, rng, w):
    doc["recipe"]["seed"] += 1
    return "recipe/seed", None, True


def edit_recipe_sha256(doc, rng, w):
    doc["recipe_sha256"] = _hex_change(rng, doc["recipe_sha256"])
    return "recipe_sha256", None, True


def edit_prior(doc, rng, w):
    p = rng.choice(sorted(doc["worlds"][w]["priors"]))
    prior = doc["worlds"][w]["priors"][p]
    prior["low"] = prior["low"] + (prior["high"] - prior["low"]) * 0.25  # still a valid-looking interval
    return f"priors/{p}/low", w, True


def edit_parameter_name(doc, rng, w):
    params = doc["worlds"][w]["parameters"]
    i, j = rng.sample(range(len(params)), 2)
    params[i]["name"], params[j]["name"] = params[j]["name"], params[i]["name"]
    return f"parameters[{i}]<->[{j}]/name", w, True


def edit_shock_name(doc, rng, w):
    shocks = doc["worlds"][w]["shocks"]
    shocks[rng.randrange(len(shocks))] = "renamed"
    return "shocks", w, True


def edit_drop_world(doc, rng, w):
    del doc["worlds"][w]
    return f"worlds/{w} removed", None, True


def edit_drop_array(doc, rng, w):
    optional = sorted(set(doc["worlds"][w]["arrays"]) - {"theta", "shocks", "trajectories", "irfs", "split"})
    a = rng.choice(optional or ["irfs"])
    del doc["worlds"][w]["arrays"][a]
    # an optional array left out: the reader returns the others, all intact (validation must still object)
    return f"arrays/{a} removed", w, not optional


def edit_n_rejected(doc, rng, w):
    doc["worlds"][w]["n_rejected"] += 3
    return "n_rejected", w, False


def edit_provenance(doc, rng, w):
    stage = rng.choice(["world_draws", "world_arrays", "world_splits"])
    rec = doc["worlds"][w]["provenance"][stage]
    rec["data_version"] = _hex_change(rng, rec["data_version"])
    return f"provenance/{stage}/data_version", w, False


def edit_slice_threshold(doc, rng, w):
    doc["worlds"][w]["slice_rule"]["threshold"] = doc["worlds"][w]["slice_rule"]["threshold"] * 0.9
    return "slice_rule/threshold", w, False


MANIFEST_EDITS = [
    edit_sha256,
    edit_shape,
    edit_dtype,
    edit_dims,
    edit_path,
    edit_n_samples,
    edit_split_count,
    edit_split_hash,
    edit_T,
    edit_H,
    edit_recipe_seed,
    edit_recipe_sha256,
    edit_prior,
    edit_parameter_name,
    edit_shock_name,
    edit_drop_world,
    edit_drop_array,
    edit_n_rejected,
    edit_provenance,
    edit_slice_threshold,
    "truncate_file",
]


# ---- damage ---------------------------------------------------------------------------------------------------


def damage(kind: str, dataset: Path, rng: random.Random, edit=None) -> dict:
    """Apply one seeded fault; returns what was done (world, array, file, label, reader_must_refuse)."""
    if kind == "manifest":
        path = dataset / "manifest.json"
        edit = edit or rng.choice(MANIFEST_EDITS)
        if edit == "truncate_file":
            raw = path.read_bytes()
            path.write_bytes(raw[: rng.randrange(len(raw))])
            return {
                "label": "manifest.json cut short",
                "world": None,
                "array": None,
                "reader": True,
                "edit": "truncate_file",
            }
        doc = json.loads(path.read_text())
        w = rng.choice(sorted(doc["worlds"]))
        label, where, reader = edit(doc, rng, w)
        path.write_text(json.dumps(doc, indent=1))
        return {
            "label": label,
            "world": where,
            "array": None,
            "reader": reader,
            "edit": edit.__name__.removeprefix("edit_"),
        }
    files = _chunk_files(dataset)
    w = rng.choice(sorted(files))
    a = rng.choice(sorted(files[w]))
    f = rng.choice(files[w][a])
    raw = f.read_bytes()
    if kind == "flip":
        i = rng.randrange(len(raw))
        f.write_bytes(raw[:i] + bytes([raw[i] ^ rng.randrange(1, 256)]) + raw[i + 1 :])
        label = f"byte {i} of {len(raw)} flipped"
    elif kind == "truncate":
        n = rng.randrange(len(raw))
        f.write_bytes(raw[:n])
        label = f"cut to {n} of {len(raw)} bytes"
    else:
        f.unlink()
        label = "deleted"
    return {"label": label, "world": w, "array": a, "file": str(f.relative_to(dataset)), "reader": True}


def _validate(dataset: Path, world: str | None) -> list:
    """Every check ``validate_dataset`` runs; with ``world``, only that world's (plus the dataset-level
    check), which is what a fault confined to one world can affect (and 6x faster)."""
    if world is None:
        return validate_dataset(dataset).results
    manifest, _ = read_manifest(dataset)
    real, reason = load_real_data(dataset.parent.parent)  # no external data here: realism is skipped
    return [
        check_manifest_dataset(manifest, dataset),
        *validate_world(spec_from_manifest(manifest, world, dataset), real, reason),
    ]


def _validation_catches(dataset: Path, fault: dict) -> tuple[bool, str]:
    """(caught, how): an error-level failure attributable to the fault, or a refused manifest."""
    try:
        results = _validate(dataset, fault["world"])
    except MacroDataError as exc:  # e.g. manifest.json not JSON: refused before any check
        return True, f"refused: {type(exc).__name__}"
    fails = [r for r in results if r.status == "fail"]
    if fault["world"] is None:
        relevant = fails
    else:
        relevant = [r for r in fails if r.world in (fault["world"], None)]
    if fault.get("array") is not None:  # a damaged chunk: the failing check names the array
        relevant = [r for r in relevant if repr(fault["array"]) in r.message]
    return bool(relevant), ", ".join(sorted({r.name for r in relevant}))


def _reader_refuses(dataset: Path) -> tuple[bool, str]:
    try:
        mdr.open_dataset(dataset, verify=True)
    except MacroDataError as exc:
        first = type(exc).__name__
    else:
        return False, "open_dataset(verify=True) returned a dataset"
    try:  # a dataset opened without verify (the cheap checks may pass) must refuse in verify()
        ds = mdr.open_dataset(dataset)
    except MacroDataError:
        return True, first + " at open"
    try:
        ds.verify()
    except MacroDataError as exc:
        return True, f"{first}; verify(): {type(exc).__name__}"
    return False, "Dataset.verify() passed"


@pytest.fixture(scope="module")
def template(tiny_dataset) -> Path:
    dataset = tiny_dataset[2]
    v = validate_dataset(dataset)  # baseline: the clean dataset passes every error-level check
    assert [r.name for r in v.results if r.status == "fail"] == []
    mdr.open_dataset(dataset, verify=True)
    return dataset


@pytest.mark.parametrize("kind", list(TRIALS))
def test_corruption_is_detected_and_refused(template, tmp_path, kind, capsys):
    rng = random.Random(f"corruption-{kind}")
    counts = Counter()
    missed = []
    checks = Counter()
    damaged = Counter()  # what was hit: data or coordinate array, or which manifest field
    edits = rng.sample(MANIFEST_EDITS, len(MANIFEST_EDITS)) * 2  # every edit at least once, in a seeded order
    for trial in range(TRIALS[kind]):
        dataset = _copy(template, tmp_path / f"t{trial}")
        fault = damage(kind, dataset, rng, edits[trial] if kind == "manifest" else None)
        if kind == "manifest":
            damaged[fault["edit"]] += 1
        else:
            damaged["coordinate array" if fault["array"] in COORDINATES else "data array"] += 1
        caught, how = _validation_catches(dataset, fault)
        counts["trials"] += 1
        counts["validation_caught"] += caught
        checks.update(how.split(", ") if caught and how else [])
        if not caught:
            missed.append(("validation", fault, how))
        if fault["reader"]:
            refused, why = _reader_refuses(dataset)
            counts["reader_trials"] += 1
            counts["reader_refused"] += refused
            if not refused:
                missed.append(("reader", fault, why))
        if trial < CLI_TRIALS:
            assert cli_main(["validate", str(dataset), "--no-write"]) == 1, fault
            capsys.readouterr()
        shutil.rmtree(tmp_path / f"t{trial}")
    with capsys.disabled():
        print(f"\ncorruption {kind}: {dict(counts)}; damaged: {dict(damaged)}; failing checks: {dict(checks)}")
    assert missed == [], missed
    assert counts["validation_caught"] == counts["trials"] == TRIALS[kind]
