"""Persisted world-check results: a world check computed once per data version is reused, not rerun.

The world runs' asset checks compute every world-level check right after the stage it checks; the
dataset run's validation report used to compute them all again on the same data. Now each computed
world check (a *unit*: one or a few :class:`CheckResult` computed together) is written next to the
world's store, and the report of a build (``validate_dataset(reuse=True)``) takes a unit from there
when, and only when, its key equals the key of the data it would read now.

Where: ``<dataset>/.checks/<world>/<unit>.json``, one small JSON file per unit, written atomically
(temporary file and rename, :func:`macro_data.files.atomic_write`). A hidden folder of the dataset
folder, like ``.staging`` and ``.locks``: readers never list it, the manifest does not record it,
a replacement build carries it along when its folder is swapped in, and discarding an abandoned
replacement removes it. It is not inside ``<world>.zarr``: a world's group is rebuilt by every
publish, and results of one stage's checks must outlive the publishes of the later stages. A
re-publish of a stage does not delete anything here; it changes the key of every unit that read the
re-published arrays, so their stored results no longer match and are recomputed (and overwritten).

The key of a unit (:func:`unit_key`) is everything that decides its outcome:

* the unit's name and format;
* the world's expectations (world, sample count, T, H, seed, priors, design, burn-in, noise, state
  IRFs) and the recipe's sha256;
* for every array of the stages the unit reads: its recorded content hash (``sha256`` attribute),
  its stage provenance (data version, run id, code version), shape and dtype, and a fingerprint of
  its files on disk (relative path, size and modification time of ``zarr.json`` and every chunk);
* the validation code version: a hash of the package's source that the checks run (validation,
  worlds, storage, pipeline, splits, ...) plus a declared world's own code version, so that editing
  a check, a simulator or the storage code invalidates every stored result;
* the numerical environment (numpy, scipy, numba, llvmlite, BLAS/LAPACK builds, machine, CPU: the keys of
  :data:`macro_data.environment.NUMERIC_KEYS`), which decides bit-for-bit re-simulation.

A unit that reads the manifest (integrity, train statistics, split consistency, rejection rate)
is computed by the asset checks before the manifest exists; its stored result is reused by the
report only if the manifest agrees with the store on what that check would compare
(:func:`_manifest_agrees`), and ``consistency.manifest`` (never reused) checks the manifest
against the store in full.

What reuse does NOT re-verify: chunk bytes that change without any write through the file system
(silent bit rot, a restored backup with preserved times, a deliberate ``touch``), since neither
the recorded hashes nor the file sizes and times change. A from-scratch ``macro-data validate``
(the default: nothing reused) decodes and hashes everything again; run it before publishing a
dataset. Reuse applies to local datasets only: on object storage every check is recomputed.

A missing, unreadable, foreign or mismatching stored result is recomputed, never an error. Writing
is best effort: a read-only dataset folder only means nothing is stored.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from macro_data import environment, versioning
from macro_data.pipeline.common import PROVENANCE_ATTR
from macro_data.storage import locations
from macro_data.validation.results import CheckResult

FORMAT = 1
FOLDER = ".checks"

# the package source the world checks run (their outcome depends on all of it)
CHECK_SOURCES = (
    "validation/*.py",
    "worlds/**/*.py",
    "worlds/**/*.yaml",
    "storage/*.py",
    "pipeline/*.py",
    "read/*.py",
    "splits.py",
    "files.py",
    "hashing.py",
    "recipes.py",
    "compute.py",
    "memory.py",
    "environment.py",
    "errors.py",
)

DRAWS, ARRAYS, SPLITS, STATS = "world_draws", "world_arrays", "world_splits", "world_stats"


@dataclass(frozen=True)
class Unit:
    """World checks computed together: what they are called and which stages' arrays they read."""

    name: str
    stages: tuple[str, ...]


UNITS = {
    u.name: u
    for u in (
        Unit("integrity.draws", (DRAWS,)),
        Unit("integrity.arrays", (ARRAYS,)),
        Unit("integrity.splits", (SPLITS,)),
        Unit("consistency.theta", (DRAWS,)),
        Unit("consistency.splits", (DRAWS, ARRAYS, SPLITS)),
        Unit("consistency.train_stats", (DRAWS, ARRAYS, SPLITS, STATS)),
        Unit("reproducibility.draws", (DRAWS,)),
        Unit("reproducibility.simulation", (DRAWS, ARRAYS)),
        Unit("identities.model", (DRAWS, ARRAYS)),
        Unit("statistics.sanity", (DRAWS, ARRAYS)),
        Unit("statistics.splits", (DRAWS, SPLITS)),
    )
}


def code_version(spec) -> str:
    """The validation code version of one world: the checks' source plus the world's own code."""
    return versioning.for_world(versioning.files_version("world_checks", CHECK_SOURCES), spec.world)


def numeric_environment() -> dict:
    """The parts of :func:`macro_data.environment.fingerprint` that decide floating-point results."""
    fp = environment.fingerprint()
    out = {}
    for key in environment.NUMERIC_KEYS:
        value = fp
        for part in key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        out[key] = value
    return out


def _stage_arrays(spec, stage: str) -> list[str]:
    if stage == STATS:
        from macro_data.pipeline import world_stats

        return [*world_stats.output_arrays(spec.world_id), "moment"]
    return list(spec.arrays(stage))


def _files(folder: Path) -> list:
    """``[relative path, size, mtime_ns]`` of every file under ``folder``, sorted (paths with ``/``).
    One ``scandir`` per folder: a key reads a few hundred chunk files' metadata, and building paths
    with ``os.path.relpath`` cost more than the system calls."""
    out = []
    todo = [("", os.fspath(folder))]
    while todo:
        prefix, path = todo.pop()
        with os.scandir(path) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    todo.append((f"{prefix}{entry.name}/", entry.path))
                else:
                    st = entry.stat()
                    out.append([prefix + entry.name, st.st_size, st.st_mtime_ns])
    return sorted(out)


def _array_entry(path: Path) -> dict | None:
    """What identifies one stored array's content: its metadata (with the recorded hash and the
    provenance) and its files' sizes and times; ``None`` when absent."""
    meta = path / "zarr.json"
    if not meta.is_file():
        return None
    doc = json.loads(meta.read_bytes())
    attrs = doc.get("attributes") or {}
    prov = attrs.get(PROVENANCE_ATTR) or {}
    return {
        "sha256": attrs.get("sha256"),
        "shape": doc.get("shape"),
        "dtype": doc.get("data_type"),
        "provenance": {k: prov.get(k) for k in ("data_version", "run_id", "code_version", "recipe_sha256")},
        "files": _files(path),
    }


def unit_key(spec, unit: str) -> dict | None:
    """The key of ``unit`` for the world ``spec`` as stored now; ``None`` when it cannot be reused
    (object storage, unknown unit, an unreadable store)."""
    if unit not in UNITS or locations.is_remote(spec.dataset_dir):
        return None
    store = Path(spec.dataset_dir) / f"{spec.world_id}.zarr"
    try:
        arrays = {
            f"{stage}/{name}": _array_entry(store / name)
            for stage in UNITS[unit].stages
            for name in _stage_arrays(spec, stage)
        }
        return {
            "format": FORMAT,
            "unit": unit,
            "world": spec.world_id,
            "expectations": {
                "n": spec.n,
                "T": spec.T,
                "H": spec.H,
                "seed": spec.seed,
                "priors": spec.priors.as_manifest(),
                "design": spec.design,
                "burn_in": spec.burn_in,
                "irf_states": spec.irf_states,
                "noise": dict(sorted(spec.noise.items())),
            },
            "recipe_sha256": spec.recipe_sha256,
            "arrays": arrays,
            "code_version": code_version(spec),
            "environment": numeric_environment(),
        }
    except Exception:  # noqa: BLE001 - not reusable; the check itself will say what is wrong
        return None


def digest(key: dict) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()


def result_path(dataset_dir, world: str, unit: str) -> Path:
    return Path(dataset_dir) / FOLDER / world / f"{unit}.json"


def from_dict(d: dict) -> CheckResult:
    return CheckResult(
        d["name"],
        d["group"],
        d["world"],
        bool(d["passed"]),
        d["message"],
        dict(d.get("figures") or {}),
        dict(d.get("inputs") or {}),
        skipped=d["status"] == "skipped",
        seconds=float(d.get("seconds") or 0.0),
    )


def store(spec, unit: str, key: dict, results: list[CheckResult], by: str, run_id: str | None) -> bool:
    """Persist ``results`` of ``unit`` under ``key`` (atomically); ``False`` if it could not be written."""
    from macro_data.files import atomic_write

    doc = {
        "format": FORMAT,
        "unit": unit,
        "key_sha256": digest(key),
        "key": key,
        "computed_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "run_id": run_id,
        "by": by,
        "results": [r.as_dict() for r in results],
    }
    try:
        path = result_path(spec.dataset_dir, spec.world_id, unit)
        atomic_write(path, json.dumps(doc, indent=1, sort_keys=True).encode())
    except Exception:  # noqa: BLE001 - best effort (e.g. a read-only dataset)
        return False
    return True


def lookup(spec, unit: str, key: dict) -> list[CheckResult] | None:
    """The stored results of ``unit`` if stored under ``key`` (else ``None``), marked as reused."""
    try:
        doc = json.loads(result_path(spec.dataset_dir, spec.world_id, unit).read_bytes())
        if doc.get("format") != FORMAT or doc.get("unit") != unit or doc.get("key_sha256") != digest(key):
            return None
        results = [from_dict(d) for d in doc["results"]]
        if not results or any(r.world != spec.world_id for r in results):
            return None
        origin = {"computed": "reused", "run_id": doc.get("run_id"), "computed_at": doc.get("computed_at")}
        origin["by"] = doc.get("by")
        for r in results:
            r.origin = dict(origin)
        if not _manifest_agrees(spec, unit, results):
            return None
        return results
    except Exception:  # noqa: BLE001 - missing, unreadable or foreign: recompute
        return None


def run(
    spec,
    unit: str,
    compute: Callable[[], list[CheckResult]],
    *,
    reuse: bool = False,
    persist: bool = True,
    by: str = "validation",
    run_id: str | None = None,
) -> list[CheckResult]:
    """The results of ``unit``: stored ones whose key matches (with ``reuse``), else ``compute()``,
    which is then persisted (with ``persist``) under the key of the data before and after it ran."""
    key = unit_key(spec, unit) if (reuse or persist) else None
    if reuse and key is not None:
        found = lookup(spec, unit, key)
        if found is not None:
            return found
    results = compute()
    results = results if isinstance(results, list) else [results]
    for r in results:
        r.origin = {"computed": "now", "run_id": run_id, "computed_at": None, "by": by}
    if persist and key is not None and unit_key(spec, unit) == key:  # unchanged while the check read it
        store(spec, unit, key, results, by, run_id)
    return results


# ---- what the manifest adds to a check computed without it -----------------------------------------------


def _attrs(spec, name: str) -> dict:
    doc = json.loads((Path(spec.dataset_dir) / f"{spec.world_id}.zarr" / name / "zarr.json").read_bytes())
    return doc.get("attributes") or {}


def _manifest_agrees(spec, unit: str, results: list[CheckResult]) -> bool:
    """Whether the parts of ``unit`` that compare against the manifest would find what the stored
    results found (always, for a result computed with the same manifest or for a unit that does not
    read it)."""
    entry = spec.manifest
    if entry is None:
        return True
    if unit.startswith("integrity."):
        listed = entry.get("arrays") or {}
        stage = {"integrity.draws": DRAWS, "integrity.arrays": ARRAYS, "integrity.splits": SPLITS}[unit]
        for name in spec.data_arrays(stage):
            if name not in listed or listed[name].get("sha256") != _attrs(spec, name).get("sha256"):
                return False
        return True
    if unit == "consistency.train_stats":
        from macro_data.pipeline import world_stats

        stats = entry.get(world_stats.STATS_KEY) or {}
        listed = stats.get("arrays") or {}
        for a in world_stats.source_arrays(spec.world_id):
            if (listed.get(a) or {}).get("sha256") != _attrs(spec, world_stats.stored_name(a)).get("sha256"):
                return False
        return stats.get("n_samples") == results[0].figures.get("n_train")
    if unit == "consistency.splits":
        recorded = (_attrs(spec, "split").get(PROVENANCE_ATTR) or {}).get("splits") or {}
        listed = entry.get("splits") or {}
        return all(
            ((listed.get(k) or {}).get("count"), (listed.get(k) or {}).get("index_hash"))
            == (v.get("count"), v.get("index_hash"))
            for k, v in recorded.items()
        ) and set(listed) <= set(recorded)
    if unit == "statistics.sanity":
        rate = entry.get("rejection_rate")
        recorded = ((_attrs(spec, "theta").get(PROVENANCE_ATTR) or {}).get("stats") or {}).get("rejection_rate")
        return rate is None or rate == recorded
    return True
