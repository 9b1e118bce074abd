"""Dagster asset checks: validation results per world partition, visible in the UI.

Thin layer over :mod:`macro_data.validation` (plain Python). Each check runs on the published
store of one world partition right after the asset it checks, and reports its figures as
metadata and, on failure, a description naming what is wrong and where.

Blocking (``blocking=True``, severity ERROR: a failure stops the downstream assets of the run):

============================  =====================================================================
asset / check                 what
============================  =====================================================================
world_draws / integrity       theta, shocks, drawn metadata and coordinates open, have the expected
                              layout, every chunk decodes (crc32c), no NaN/Inf, content hashes match
world_draws / consistency     every draw inside its bounds and the recipe's priors, and valid
world_draws / reproducibility a seed-chosen subset (>= 64 samples) redrawn from the seed, bit-identical
world_arrays / integrity      trajectories, IRFs, extras, simulated metadata, coordinates (as above)
world_arrays / reproducibility  the subset re-simulated from scratch, bit-identical float32
world_arrays / model_identities convolution identity (linear worlds), zlb bound, regime labels
world_splits / integrity      the split labels (as above)
world_splits / consistency    labels valid, disjoint, covering; held-out regions absent from train/val
world_stats / matches_recomputation  the stored train-split moments decode, hash as recorded and equal
                              an independent two-pass recomputation (:mod:`.validation.train_stats`)
dataset_manifest / consistency  the manifest matches its schema, recipe and every world store
validation_report / passed    no error-level check of the report failed (WARN if only warnings;
                              skipped checks are counted in the description, not failures)
============================  =====================================================================

Warning (``blocking=False``, severity WARN): ``world_arrays / statistical_sanity`` (stationarity,
scale, IRF decay, rejection rates, zlb binding, regime durations), ``world_arrays / realism``
(real US moments against the world's distribution; a warning saying "skipped" without verified
external data), ``world_splits / split_fractions`` (fractions near their targets).

Checks on partitioned assets are partitioned the same way (one result per world). The checks of one
asset are evaluated in one step (:func:`_world_checks`). Dagster marks
``partitions_def`` on asset checks as a preview feature in the pinned 1.13 line; the preview
warning is silenced where the checks are defined, as in :mod:`macro_data.orchestration.assets.external`.
"""

import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import dagster as dg

from macro_data.errors import MacroDataError
from macro_data.orchestration.assets.dataset_manifest import dataset_manifest
from macro_data.orchestration.assets.validation_report import validation_report
from macro_data.orchestration.assets.world_arrays import world_arrays
from macro_data.orchestration.assets.world_draws import world_draws
from macro_data.orchestration.assets.world_splits import world_splits
from macro_data.orchestration.assets.world_stats import world_stats
from macro_data.orchestration.partitions import world_partitions
from macro_data.orchestration.resources.recipe import RecipeResource
from macro_data.orchestration.resources.storage import DatasetRootResource
from macro_data.pipeline import release
from macro_data.validation import consistency, identities, integrity, realism, reproducibility, statistics, train_stats
from macro_data.validation import reuse as check_reuse
from macro_data.validation.dataset import read_manifest
from macro_data.validation.results import CheckResult, guarded, jsonable
from macro_data.validation.spec import WorldSpec, spec_from_manifest, spec_from_recipe

MAX_DESCRIPTION = 2000


def _spec(context: dg.AssetCheckExecutionContext, recipe: RecipeResource, storage: DatasetRootResource) -> WorldSpec:
    try:
        loaded = recipe.load()
        target = release.target(loaded, storage.path(), storage.replace)  # a replacement is checked where it is built
        return spec_from_recipe(loaded, context.partition_key, storage.path(), dataset_dir=target.dataset_dir)
    except MacroDataError as exc:
        raise dg.Failure(description=f"world {context.partition_key!r}: cannot load the recipe: {exc}") from exc


def _md_table(results: list[CheckResult]) -> str:
    rows = ["| check | status | message |", "|---|---|---|"]
    rows += [f"| {r.name} | {r.status} | {r.message[:400].replace('|', '/')} |" for r in results]
    return "\n".join(rows)


def _scalar_figures(prefix: str, figures: dict, out: dict, depth: int = 0) -> None:
    for k, v in figures.items():
        key = f"{prefix}/{k}"
        if isinstance(v, bool) or v is None:
            continue
        if isinstance(v, int):
            out[key] = dg.MetadataValue.int(v)
        elif isinstance(v, float):
            out[key] = dg.MetadataValue.float(v)
        elif isinstance(v, dict) and depth < 1:
            _scalar_figures(key, v, out, depth + 1)


def to_check_result(
    results: list[CheckResult],
    severity: dg.AssetCheckSeverity,
    world: str | None,
    asset_key: dg.AssetKey | None = None,
    check_name: str | None = None,
) -> dg.AssetCheckResult:
    """One Dagster result from one or more validation results (passes iff all of them passed)."""
    passed = all(r.passed for r in results)
    metadata: dict = {
        "world": world or "(all worlds)",
        "results": dg.MetadataValue.md(_md_table(results)),
        "seconds": dg.MetadataValue.float(round(sum(r.seconds for r in results), 3)),
    }
    for r in results:
        metadata[f"{r.name}/status"] = r.status
        _scalar_figures(r.name, jsonable(r.figures), metadata)
        metadata[f"{r.name}/figures"] = dg.MetadataValue.json(jsonable(r.figures))
    bad = [r for r in results if not r.passed]
    text = "; ".join(f"{r.name}: {r.message}" for r in (bad or results))
    if len(text) > MAX_DESCRIPTION:
        text = text[: MAX_DESCRIPTION - 3] + "..."
    return dg.AssetCheckResult(
        passed=passed,
        severity=severity,
        metadata=metadata,
        description=(f"world {world!r}: " if world else "") + text,
        asset_key=asset_key,
        check_name=check_name,
    )


ERROR, WARN = dg.AssetCheckSeverity.ERROR, dg.AssetCheckSeverity.WARN
# Dagster check name -> validation group (the others are named after their group)
CHECK_GROUPS = {
    "model_identities": "identities",
    "statistical_sanity": "statistics",
    "split_fractions": "statistics",
    "matches_recomputation": "consistency",
}


# Dagster check -> the persisted unit of validation results it computes (see macro_data.validation.reuse)
REUSE_UNITS = {
    ("world_draws", "integrity"): "integrity.draws",
    ("world_draws", "consistency"): "consistency.theta",
    ("world_draws", "reproducibility"): "reproducibility.draws",
    ("world_arrays", "integrity"): "integrity.arrays",
    ("world_arrays", "reproducibility"): "reproducibility.simulation",
    ("world_arrays", "model_identities"): "identities.model",
    ("world_arrays", "statistical_sanity"): "statistics.sanity",
    ("world_splits", "integrity"): "integrity.splits",
    ("world_splits", "consistency"): "consistency.splits",
    ("world_splits", "split_fractions"): "statistics.splits",
    ("world_stats", "matches_recomputation"): train_stats.NAME,
}


@dataclass(frozen=True)
class WorldCheck:
    """One check of a world asset: its name, whether it blocks, its description and its computation."""

    name: str
    blocking: bool
    description: str
    run: Callable[[WorldSpec, DatasetRootResource], list[CheckResult]]


def _world_checks(asset, checks: list[WorldCheck]) -> dg.AssetChecksDefinition:
    """All of ``asset``'s checks, evaluated in one step (one result each, in the UI as before).

    One step per asset instead of one per check: each step is several events written to the
    instance (about 12 ms each with Dagster's default SQLite storage) and a trip through the
    executor, about a second per world run for eleven checks. A run that selects some of the
    checks evaluates only those (``can_subset``), and a failed blocking check still stops the
    downstream assets."""
    asset_name = asset.key.path[-1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=dg.PreviewWarning)
        specs = [
            dg.AssetCheckSpec(
                c.name, asset=asset, blocking=c.blocking, description=c.description, partitions_def=world_partitions
            )
            for c in checks
        ]

    def fn(context: dg.AssetCheckExecutionContext, recipe: RecipeResource, storage: DatasetRootResource):
        spec = _spec(context, recipe, storage)
        selected = {k.name for k in context.selected_asset_check_keys}
        for check in (c for c in checks if c.name in selected):
            group = CHECK_GROUPS.get(check.name, check.name)
            unit = REUSE_UNITS.get((asset_name, check.name))

            def compute(check: WorldCheck = check, group: str = group) -> list[CheckResult]:
                results = guarded(f"{group}.{check.name}", group, spec.world_id, check.run, spec, storage)
                return results if isinstance(results, list) else [results]

            if unit is None:  # not reused (e.g. realism: it reads the external data)
                results = compute()
            else:  # always computed here, and persisted for the validation report to reuse
                by = f"asset check {asset_name} / {check.name}"
                results = check_reuse.run(spec, unit, compute, reuse=False, by=by, run_id=context.run.run_id)
            yield to_check_result(results, ERROR if check.blocking else WARN, spec.world_id, asset.key, check.name)

    fn.__name__ = f"{asset_name}_checks"
    return dg.multi_asset_check(
        specs=specs,
        name=fn.__name__,
        can_subset=True,
        description=f"The checks of {asset_name} for one world partition, evaluated in one step.",
    )(fn)


def _realism(spec: WorldSpec, storage: DatasetRootResource) -> list[CheckResult]:
    real, reason = realism.load_real_data(storage.path())
    return [realism.check_realism(spec, real, reason)]


def _simulation(spec: WorldSpec, _storage) -> list[CheckResult]:
    drawn = reproducibility.redraw(spec, reproducibility.subset_indices(spec))
    return [reproducibility.check_simulation(spec, drawn)]


world_checks = [
    _world_checks(
        world_draws,
        [
            WorldCheck(
                "integrity",
                True,
                "theta, shocks and drawn metadata open with the expected shapes, dtypes and dimensions; every chunk "
                "decodes (crc32c); no NaN/Inf; content hashes equal the ones written with the arrays.",
                lambda s, _: [integrity.check_integrity(s, "world_draws")],
            ),
            WorldCheck(
                "consistency",
                True,
                "Every parameter draw inside its bounds and the recipe's priors, and valid (stable, determinate).",
                lambda s, _: [consistency.check_theta(s)],
            ),
            WorldCheck(
                "reproducibility",
                True,
                f"{reproducibility.SUBSET_SIZE} samples chosen by the seed, redrawn from (seed, world, index): theta, "
                f"shocks and drawn metadata bit-identical to the stored values.",
                lambda s, _: [reproducibility.check_draws(s)],
            ),
        ],
    ),
    _world_checks(
        world_arrays,
        [
            WorldCheck(
                "integrity",
                True,
                "trajectories, irfs, extras and simulated metadata open with the expected layout; every chunk decodes; "
                "no NaN/Inf; content hashes match.",
                lambda s, _: [integrity.check_integrity(s, "world_arrays")],
            ),
            WorldCheck(
                "reproducibility",
                True,
                f"{reproducibility.SUBSET_SIZE} samples chosen by the seed, redrawn and re-simulated from scratch: "
                f"trajectories, IRFs, extras and simulated metadata bit-identical (float32) to the stored values.",
                _simulation,
            ),
            WorldCheck(
                "model_identities",
                True,
                "Convolution identity traj[t] = sum_h sum_j irfs[j,h] eps[t-h,j] for linear worlds (re-simulated "
                "subset); zlb rate never below its bound -r_ss; switching regime labels in {0, 1}.",
                lambda s, _: [identities.check_identities(s)],
            ),
            WorldCheck(
                "statistical_sanity",
                False,
                "Warning level: no explosive paths, observables on the intended scale (sd ~0.1-20), IRFs decayed by H "
                "where persistence implies it, rejection rate in range, zlb binding fraction, regime durations "
                "consistent with the transition probabilities.",
                lambda s, _: statistics.check_statistics(s, statistics.SANITY_PARTS),
            ),
            WorldCheck(
                "realism",
                False,
                "Warning level: sd and first-order autocorrelation of output, inflation, rate against real US data "
                "(verified external data); reports the US value's percentile in the world's distribution.",
                _realism,
            ),
        ],
    ),
    _world_checks(
        world_splits,
        [
            WorldCheck(
                "integrity",
                True,
                "The split labels open with the expected layout; every chunk present and decodes; hash matches.",
                lambda s, _: [integrity.check_integrity(s, "world_splits")],
            ),
            WorldCheck(
                "consistency",
                True,
                "Labels valid, disjoint and covering; every held-out draw (slice, corner) carries its region's label "
                "and none is in train/val/test_interpolation; labels equal the seed's assignment; counts and index "
                "hashes as recorded.",
                lambda s, _: [consistency.check_splits(s)],
            ),
            WorldCheck(
                "split_fractions",
                False,
                "Warning level: each split's fraction near its target (80/10/5/2.5/2.5 %).",
                lambda s, _: statistics.check_statistics(s, ("splits",)),
            ),
        ],
    ),
    _world_checks(
        world_stats,
        [
            WorldCheck(
                "matches_recomputation",
                True,
                "The stored train-split moments (mean and sd of theta, shocks, trajectories, extras, irfs) decode, "
                "hash as recorded, count the train split, and equal an independent two-pass float64 recomputation "
                f"from the published arrays within a relative {train_stats.RTOL:g}.",
                lambda s, _: [train_stats.check_train_stats(s)],
            ),
        ],
    ),
]


@dg.asset_check(
    asset=dataset_manifest,
    name="consistency",
    blocking=True,
    description="manifest.json matches its schema and its recipe hash; every world entry agrees with its "
    "store (arrays with shapes, dtypes, dimensions and hashes; splits; rejections; provenance) "
    "and with the installed world code.",
)
def dataset_manifest_consistency(
    context: dg.AssetCheckExecutionContext, recipe: RecipeResource, storage: DatasetRootResource
) -> dg.AssetCheckResult:
    try:
        dataset_dir = recipe.load().dataset_dir(storage.path())
        manifest, _ = read_manifest(dataset_dir)
    except MacroDataError as exc:
        return dg.AssetCheckResult(passed=False, severity=ERROR, description=f"manifest.json cannot be read: {exc}")
    results = [consistency.check_manifest_dataset(manifest, dataset_dir)]
    for w in manifest.get("worlds", {}):
        try:
            results.append(consistency.check_manifest_world(spec_from_manifest(manifest, w, dataset_dir)))
        except (MacroDataError, KeyError, TypeError, ValueError) as exc:
            return dg.AssetCheckResult(
                passed=False, severity=ERROR, description=f"world {w!r}: the manifest entry cannot be read ({exc})"
            )
    return to_check_result(results, ERROR, None)


def _report_passed_check(report_asset) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=report_asset,
        name="passed",
        blocking=True,
        description="The validation report's verdict: fails (ERROR) if any error-level check failed, warns "
        "if only warning-level checks did not pass.",
    )
    def validation_report_passed(
        context: dg.AssetCheckExecutionContext, recipe: RecipeResource, storage: DatasetRootResource
    ) -> dg.AssetCheckResult:
        from macro_data.storage import locations
        from macro_data.validation.dataset import REPORT_JSON
        from macro_data.validation.report import headline, not_passed

        try:
            path = locations.join(recipe.load().dataset_dir(storage.path()), REPORT_JSON)
            doc = json.loads(locations.read_bytes(path))
        except (MacroDataError, OSError, ValueError) as exc:
            return dg.AssetCheckResult(passed=False, severity=ERROR, description=f"the report cannot be read: {exc}")
        bad = not_passed(doc)
        errors = [c for c in bad if c["status"] == "fail"]
        text = "; ".join(f"{c['world'] or '(dataset)'} {c['name']}: {c['message']}" for c in (errors or bad))
        return dg.AssetCheckResult(  # skipped checks (no external data) are counted, not failures
            passed=doc["status"] == "pass",
            severity=ERROR if errors else WARN,
            description=(f"{headline(doc)}, score {doc['score']['value']}/100" + (f": {text}" if text else ""))[
                :MAX_DESCRIPTION
            ],
            metadata={
                "score": dg.MetadataValue.int(doc["score"]["value"]),
                "status": doc["status"],
                "failed": len(errors),
                "warnings": sum(c["status"] == "warn" for c in bad),
                "skipped": sum(c["status"] == "skipped" for c in bad),
            },
        )

    return validation_report_passed


validation_report_passed = _report_passed_check(validation_report)
asset_checks = [*world_checks, dataset_manifest_consistency, validation_report_passed]

__all__ = ["asset_checks", "to_check_result", "validation_report_passed"]
