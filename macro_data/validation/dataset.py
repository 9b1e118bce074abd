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

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from macro_data.errors import ManifestError, WorldError
from macro_data.read.manifest import MANIFEST_NAME, Folder, parse_manifest
from macro_data.storage import locations
from macro_data.validation import consistency, identities, integrity, realism, reproducibility, statistics, train_stats
from macro_data.validation.realism import RealData
from macro_data.validation.results import CheckResult, failed, guarded
from macro_data.validation.spec import WorldSpec, spec_from_manifest
from macro_data.worlds import world_ids

REPORT_JSON = "validation_report.json"
REPORT_HTML = "validation_report.html"


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


def validate_world(spec: WorldSpec, real: RealData | None, real_reason: str) -> list[CheckResult]:
    """Every check of one world, in report order (a check that raises becomes a failed result)."""
    w = spec.world_id
    out = [
        guarded(f"integrity.{short}", "integrity", w, integrity.check_integrity, spec, stage)
        for stage, short in (("world_draws", "draws"), ("world_arrays", "arrays"), ("world_splits", "splits"))
    ]
    out += [
        guarded("consistency.theta", "consistency", w, consistency.check_theta, spec),
        guarded("consistency.splits", "consistency", w, consistency.check_splits, spec),
        guarded("consistency.manifest", "consistency", w, consistency.check_manifest_world, spec),
    ]
    if (spec.manifest or {}).get(train_stats.STATS_KEY):  # built with the world_stats stage
        out.append(guarded(train_stats.NAME, "consistency", w, train_stats.check_train_stats, spec))
    idx = reproducibility.subset_indices(spec)
    drawn = reproducibility.redraw(spec, idx)
    out.append(guarded("reproducibility.draws", "reproducibility", w, reproducibility.check_draws, spec, drawn))
    out.append(
        guarded(
            "reproducibility.simulation",
            "reproducibility",
            w,
            lambda: reproducibility.check_simulation(spec, drawn, reproducibility.resimulate(spec, drawn)),
        )
    )
    out.append(guarded("identities.model", "identities", w, identities.check_identities, spec, idx))
    stats = guarded("statistics.all", "statistics", w, statistics.check_statistics, spec)
    out += stats if isinstance(stats, list) else [stats]
    out.append(guarded("realism.us_moments", "realism", w, realism.check_realism, spec, real, real_reason))
    return out


def validate_dataset(
    dataset_dir: str | Path,
    external_root: str | Path | None = None,
    registry: str | Path | None = None,
    log: Callable[[str], None] | None = None,
) -> Validation:
    """Run every check on the dataset at ``dataset_dir``.

    ``external_root``: where the verified external data lives (``<root>/external/objects``);
    default: for a local dataset, its own root (two folders up, ``<root>/<name>/<version>``) if that
    holds an ``external`` folder, else ``$MACRO_DATA_ROOT``.
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
    subsets: dict[str, list[int]] = {}
    for w in manifest["worlds"]:
        t = time.perf_counter()
        if w not in world_ids():
            results.append(
                failed(
                    "consistency.manifest", "consistency", w, f"unknown world {w!r} (known: {', '.join(world_ids())})"
                )
            )
            continue
        try:
            spec = spec_from_manifest(manifest, w, dataset_dir)
        except WorldError as exc:  # a model file that no longer loads
            results.append(failed("consistency.manifest", "consistency", w, f"world {w!r} cannot be loaded: {exc}"))
            continue
        except (KeyError, TypeError, ValueError) as exc:
            results.append(
                failed(
                    "consistency.manifest",
                    "consistency",
                    w,
                    f"the manifest entry of world {w!r} is incomplete ({type(exc).__name__}: {exc})",
                )
            )
            continue
        try:
            world_results = validate_world(spec, real, reason)
            subsets[w] = reproducibility.subset_indices(spec).tolist()
        except Exception as exc:  # noqa: BLE001 - e.g. a sample count no store can have
            world_results = [
                failed(
                    "consistency.manifest",
                    "consistency",
                    w,
                    f"world {w!r} could not be validated ({type(exc).__name__}: {exc})",
                )
            ]
        results += world_results
        if log:
            bad = [r.name for r in world_results if r.status in ("fail", "warn")]
            log(
                f"validated world {w} in {time.perf_counter() - t:.1f} s"
                + (f": not passed: {', '.join(bad)}" if bad else ": all checks passed")
            )
    return Validation(dataset_dir, manifest, digest, results, real, reason, time.perf_counter() - t0, subsets)
