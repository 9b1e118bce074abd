"""Validate a dataset folder (the folder holding ``manifest.json``): every check, every world.

:func:`validate_dataset` reads the manifest, then for each world it lists runs, in order:

1. integrity of the draws, the simulated arrays and the splits (:mod:`.integrity`);
2. consistency: parameters, splits, the manifest entry against the store (:mod:`.consistency`), and
   the stored train-split statistics against a recomputation where the dataset has them
   (:mod:`.train_stats`);
3. reproducibility: a seed-chosen subset redrawn and re-simulated from scratch (:mod:`.reproducibility`);
4. model identities on that subset and on every sample (:mod:`.identities`);
5. statistical sanity (:mod:`.statistics`) and realism against real US data (:mod:`.realism`);

plus the dataset-level manifest check. The outcome feeds :mod:`.report` (JSON) and :mod:`.html`.
Nothing here imports Dagster; the asset checks and the ``validation_report`` asset call these
functions.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from macro_data.compute import default_workers, spawn_pool
from macro_data.errors import ManifestError, WorldError
from macro_data.read.manifest import MANIFEST_NAME, Folder, parse_manifest
from macro_data.storage import locations
from macro_data.validation import consistency, identities, integrity, realism, reproducibility, statistics, train_stats
from macro_data.validation import reuse as check_reuse
from macro_data.validation.realism import RealData
from macro_data.validation.results import CheckResult, failed, guarded
from macro_data.validation.spec import WorldSpec, spec_from_manifest
from macro_data.worlds import world_ids

REPORT_JSON = "validation_report.json"
REPORT_HTML = "validation_report.html"
# Below this much decoded data a worker pool costs more than it saves: starting a worker (spawn, imports)
# takes about 2 s, and the checks read about 50 MiB/s per core (6 x 300 samples: 1.7 MiB, 3.1 s in this
# process against 4.0 s in two workers; 6 x 10,000: 382 MiB, 9.6-10.6 s against 8.5-9.1 s).
POOL_MIN_BYTES = 256 * 2**20


@dataclass
class Validation:
    """Everything a validation run produced."""

    dataset_dir: str  # a local folder or an object-storage URL
    manifest: dict
    manifest_sha256: str
    results: list[CheckResult]
    real: RealData | None
    real_reason: str
    seconds: float
    subset_indices: dict[str, list[int]] = field(default_factory=dict)

    def for_world(self, world: str | None) -> list[CheckResult]:
        return [r for r in self.results if r.world == world]


def read_manifest(dataset_dir: str | Path) -> tuple[dict, str]:
    """``(manifest, its sha256)``; :class:`ManifestError` naming the file when absent or not JSON.

    Read with the reader's manifest reader (local or object storage) without the schema check: a
    manifest that does not match its schema is reported by the dataset-level consistency check.
    """
    import hashlib

    path = Folder(locations.join(dataset_dir, MANIFEST_NAME))
    if not path.is_file():
        raise ManifestError(
            f"{path} does not exist: PATH must be a dataset folder holding {MANIFEST_NAME} "
            f"(e.g. datasets/build/default/1.0.0)"
        )
    raw = path.read_bytes()
    return parse_manifest(raw, str(path), check_schema=False), hashlib.sha256(raw).hexdigest()


def validate_world(
    spec: WorldSpec, real: RealData | None, real_reason: str, reuse: bool = False, persist: bool = True
) -> list[CheckResult]:
    """Every check of one world, in report order (a check that raises becomes a failed result).

    ``reuse``: a world check whose persisted result (:mod:`.reuse`) was computed on exactly the data,
    code and environment it would check now is taken from there; ``persist``: every computed world
    check is persisted for later reuse. ``consistency.manifest`` and ``realism.us_moments`` always
    run (they read the manifest and the external data, which the key does not cover).
    """
    w = spec.world_id

    def unit(name: str, group: str, fn, *args) -> list[CheckResult]:
        def compute():
            out = guarded(name, group, w, fn, *args)
            return out if isinstance(out, list) else [out]

        return check_reuse.run(spec, name, compute, reuse=reuse, persist=persist, by="validation report")

    idx = reproducibility.subset_indices(spec)
    fresh: dict = {}

    def drawn():  # redrawn once, only if a check needs it
        if "drawn" not in fresh:
            fresh["drawn"] = reproducibility.redraw(spec, idx)
        return fresh["drawn"]

    out: list[CheckResult] = []
    for stage, short in (("world_draws", "draws"), ("world_arrays", "arrays"), ("world_splits", "splits")):
        out += unit(f"integrity.{short}", "integrity", integrity.check_integrity, spec, stage)
    out += unit("consistency.theta", "consistency", consistency.check_theta, spec)
    out += unit("consistency.splits", "consistency", consistency.check_splits, spec)
    out.append(guarded("consistency.manifest", "consistency", w, consistency.check_manifest_world, spec))
    if (spec.manifest or {}).get(train_stats.STATS_KEY):  # built with the world_stats stage
        out += unit(train_stats.NAME, "consistency", train_stats.check_train_stats, spec)
    out += unit("reproducibility.draws", "reproducibility", lambda: reproducibility.check_draws(spec, drawn()))
    out += unit(
        "reproducibility.simulation",
        "reproducibility",
        lambda: reproducibility.check_simulation(spec, drawn(), reproducibility.resimulate(spec, drawn())),
    )
    out += unit("identities.model", "identities", identities.check_identities, spec, idx)
    out += unit("statistics.sanity", "statistics", statistics.check_statistics, spec, statistics.SANITY_PARTS)
    out += unit("statistics.splits", "statistics", statistics.check_statistics, spec, ("splits",))
    out.append(guarded("realism.us_moments", "realism", w, realism.check_realism, spec, real, real_reason))
    for r in out:
        if r.origin is None:
            r.origin = {"computed": "now", "run_id": None, "computed_at": None, "by": "validation report"}
    return out


def _validate_one(
    manifest: dict,
    w: str,
    dataset_dir: str,
    real: RealData | None,
    reason: str,
    reuse: bool = False,
    persist: bool = True,
) -> tuple[str, list[CheckResult], list[int] | None, float]:
    """``(world, its results, its reproducibility subset, seconds)``: every check of world ``w``."""
    t = time.perf_counter()
    if w not in world_ids():
        known = ", ".join(world_ids())
        return w, [failed("consistency.manifest", "consistency", w, f"unknown world {w!r} (known: {known})")], None, 0.0
    try:
        spec = spec_from_manifest(manifest, w, dataset_dir)
    except WorldError as exc:  # a model file that no longer loads
        msg = f"world {w!r} cannot be loaded: {exc}"
        return w, [failed("consistency.manifest", "consistency", w, msg)], None, 0.0
    except (KeyError, TypeError, ValueError) as exc:
        msg = f"the manifest entry of world {w!r} is incomplete ({type(exc).__name__}: {exc})"
        return w, [failed("consistency.manifest", "consistency", w, msg)], None, 0.0
    try:
        world_results = validate_world(spec, real, reason, reuse=reuse, persist=persist)
        subset = reproducibility.subset_indices(spec).tolist()
    except Exception as exc:  # noqa: BLE001 - e.g. a sample count no store can have
        msg = f"world {w!r} could not be validated ({type(exc).__name__}: {exc})"
        world_results, subset = [failed("consistency.manifest", "consistency", w, msg)], None
    return w, world_results, subset, time.perf_counter() - t


def _each_world(
    manifest: dict,
    worlds: list[str],
    dataset_dir: str,
    real: RealData | None,
    reason: str,
    jobs,
    reuse: bool = False,
    persist: bool = True,
):
    """:func:`_validate_one` of each world, yielded in the manifest's order.

    With ``reuse``, a world whose every reusable check has a matching persisted result is validated
    in this process (a fraction of a second), not in a worker: starting a worker costs more.
    """
    jobs = workers(manifest, worlds, jobs)
    local = [w for w in worlds if reuse and _all_reusable(manifest, w, dataset_dir)] if jobs > 1 else list(worlds)
    remote = [w for w in worlds if w not in local]
    if len(remote) <= 1:
        local, remote = list(worlds), []
    if not remote:
        for w in worlds:
            yield _validate_one(manifest, w, dataset_dir, real, reason, reuse, persist)
        return
    with spawn_pool(min(jobs, len(remote))) as pool:
        futures = {
            w: pool.submit(_validate_one, manifest, w, dataset_dir, real, reason, reuse, persist) for w in remote
        }
        for w in worlds:
            yield (
                futures[w].result()
                if w in futures
                else _validate_one(manifest, w, dataset_dir, real, reason, reuse, persist)
            )


def workers(manifest: dict, worlds: list[str], jobs: int | None = None) -> int:
    """How many worlds :func:`validate_dataset` validates at once: ``jobs`` if given, else the cores
    available (at most four), or 1 when the arrays of ``worlds`` hold less than :data:`POOL_MIN_BYTES`."""
    if jobs is not None:
        return jobs
    return default_workers() if decoded_bytes(manifest, worlds) >= POOL_MIN_BYTES else 1


def decoded_bytes(manifest: dict, worlds: list[str]) -> int:
    """The decoded size of the arrays the manifest lists for ``worlds`` (entries it cannot read count 0:
    the checks report them)."""
    total = 0
    for w in worlds:
        try:
            arrays = list(manifest["worlds"][w]["arrays"].values())
        except (KeyError, TypeError, AttributeError):
            continue
        for spec in arrays:
            try:
                total += math.prod(int(k) for k in spec["shape"]) * np.dtype(spec["dtype"]).itemsize
            except (KeyError, TypeError, ValueError, AttributeError):
                continue
    return total


def _all_reusable(manifest: dict, w: str, dataset_dir: str) -> bool:
    """Whether every reusable check of world ``w`` has a persisted result matching the data now."""
    try:
        spec = spec_from_manifest(manifest, w, dataset_dir)
        units = [
            u for u in check_reuse.UNITS if u != train_stats.NAME or (spec.manifest or {}).get(train_stats.STATS_KEY)
        ]
        for u in units:
            key = check_reuse.unit_key(spec, u)
            if key is None or check_reuse.lookup(spec, u, key) is None:
                return False
        return True
    except Exception:  # noqa: BLE001 - the world's own validation reports what is wrong
        return False


def validate_dataset(
    dataset_dir: str | Path,
    external_root: str | Path | None = None,
    registry: str | Path | None = None,
    log: Callable[[str], None] | None = None,
    jobs: int | None = None,
    reuse: bool = False,
    persist: bool = True,
) -> Validation:
    """Run every check on the dataset at ``dataset_dir``.

    Worlds are validated ``jobs`` at a time, each in a worker process (the checks hold the GIL);
    default: the cores available, at most four, or one when the arrays hold less than
    :data:`POOL_MIN_BYTES` (starting workers would cost more); 1: one after another in this process.
    The results, and their order (the manifest's), do not depend on ``jobs``.

    ``external_root``: where the verified external data lives (``<root>/external/objects``);
    default: for a local dataset, its own root (two folders up, ``<root>/<name>/<version>``) if that
    holds an ``external`` folder, else ``$MACRO_DATA_ROOT``.

    ``reuse``: take a world check from its persisted result when that was computed on exactly the
    data, code and environment it would check now (:mod:`.reuse`); the build's report does, after
    the world runs' asset checks computed them. Default: everything is computed from scratch
    (every computed world check is persisted unless ``persist=False``). Dataset-level checks always run.
    """
    t0 = time.perf_counter()
    dataset_dir = str(dataset_dir)
    manifest, digest = read_manifest(dataset_dir)
    if (
        external_root is None
        and not locations.is_remote(dataset_dir)
        and (Path(dataset_dir).parent.parent / "external").is_dir()
    ):
        external_root = Path(dataset_dir).parent.parent
    real, reason = realism.load_real_data(external_root, registry)
    results = [
        guarded("consistency.dataset", "consistency", None, consistency.check_manifest_dataset, manifest, dataset_dir)
    ]
    for r in results:  # dataset-level checks: always computed
        r.origin = {"computed": "now", "run_id": None, "computed_at": None, "by": "validation report"}
    subsets: dict[str, list[int]] = {}
    worlds = list(manifest["worlds"])
    for w, world_results, subset, seconds in _each_world(
        manifest, worlds, dataset_dir, real, reason, jobs, reuse, persist
    ):
        results += world_results
        if subset is not None:
            subsets[w] = subset
        if log:
            bad = [r.name for r in world_results if r.status in ("fail", "warn")]
            log(
                f"validated world {w} in {seconds:.1f} s"
                + (f": not passed: {', '.join(bad)}" if bad else ": all checks passed")
            )
    return Validation(dataset_dir, manifest, digest, results, real, reason, time.perf_counter() - t0, subsets)
