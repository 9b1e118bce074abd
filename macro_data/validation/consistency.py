"""Consistency: parameters valid, splits right, and the manifest telling the truth about the stores.

Parameters (``consistency.theta``): every stored draw is inside its bounds (compared at float32
precision, as the sampler does), inside the recipe's prior bounds (a ``fixed`` prior's value
exactly), and valid by the world's own rules (:meth:`World.valid`: stable, determinate). Each
continuous drawn parameter is tested against its prior family (:mod:`macro_data.worlds.priors`): the
Kolmogorov-Smirnov distance between its draws and the family's CDF, read from a histogram of the
draws' CDF values, must stay below the critical value at level :data:`KS_ALPHA`, plus the binning
error, plus ``r / (1 - r)`` for the world's rejection rate ``r`` (stored draws follow the prior
conditioned on validity, which moves a CDF by at most that much).

Splits (``consistency.splits``), recomputed from the stored ``theta`` and the seed alone:

* every label is one of :data:`macro_data.splits.LABELS`; one label per sample makes the splits
  disjoint, and the counts must add up to ``n`` (covering);
* every draw in the slice region (statistic beyond the world's threshold) is labelled
  ``test_extrapolation_slice``; every other draw in the corner region is labelled
  ``test_extrapolation_corner``; no draw of either region is in ``train``, ``val`` or
  ``test_interpolation``, and no draw outside a region carries its label;
* the labels equal the algorithm's assignment (:func:`macro_data.splits.assign` with the per-sample
  split uniforms of the seed), and the counts and index-set hashes equal the ones recorded with
  the split array and in the manifest.

Manifest (``consistency.manifest``, per world, and ``consistency.dataset``): the manifest matches
its schema, its recipe hashes to ``recipe_sha256``, and each world entry agrees with the store:
world description (names of parameters, shocks, observables, extras, metadata, split rules) as in
the installed code, sample count and priors as in the recipe, every array listed with the store's
path, shape, dtype, dimension names and stored hash, split counts and hashes, rejection counts and
per-stage provenance (run id, code version, data version) as recorded in the arrays.

Arrays are read in slabs of :data:`READ_ROWS` samples.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from macro_data import schemas, splits
from macro_data.errors import MacroDataError
from macro_data.pipeline.common import read_provenance
from macro_data.recipes import parse_recipe
from macro_data.storage.arrays import read_rows
from macro_data.storage.publish import world_store
from macro_data.validation.results import CheckResult, Problems, result
from macro_data.validation.spec import STAGE_MODULES, WorldSpec
from macro_data.worlds import world_ids
from macro_data.worlds.priors import prior_of
from macro_data.worlds.sampling import split_uniforms

READ_ROWS = 4096
KS_ALPHA = 1e-6  # level of the distribution test of each drawn parameter against its prior
KS_BINS = 1000  # the CDF-space histogram the KS distance is read from (streamed over slabs)


def _describe_row(spec: WorldSpec, i: int, row: np.ndarray) -> str:
    """Which parameter of draw ``i`` is out of bounds / priors, and its value."""
    world = spec.world
    row32 = row.astype(np.float32)
    for j, p in enumerate(world.parameters):
        v = row32[j]
        if not np.isfinite(v):
            return f"sample {i}: parameter {p.name!r} is {v}"
        if p.low is not None and v < np.float32(p.low) or p.high is not None and v > np.float32(p.high):
            return f"sample {i}: parameter {p.name!r} = {float(v):.6g} is outside its bounds [{p.low}, {p.high}]"
        if p.kind == "integer" and v != np.round(v):
            return f"sample {i}: parameter {p.name!r} = {float(v)} is not an integer"
        if p.name in spec.priors:
            prior = prior_of(spec.priors, p.name)
            lo, hi = prior.low, prior.high
            if v < np.float32(lo) or v > np.float32(hi):
                return f"sample {i}: parameter {p.name!r} = {float(v):.6g} is outside the recipe's prior [{lo}, {hi}]"
            if prior.family == "fixed" and v != np.float32(prior.arg("value")):
                return f"sample {i}: parameter {p.name!r} = {float(v):.6g}, its prior fixes it at {prior.arg('value')}"
    return f"sample {i}: {dict(zip(world.parameter_names, row.tolist()))}"


def _ks_tolerance(n: int, rejection_rate: float | None) -> float:
    """Largest KS distance accepted between ``n`` valid draws and their prior: the asymptotic critical
    value at level :data:`KS_ALPHA`, the CDF binning error, and the most that conditioning on validity
    can move a CDF (``r / (1 - r)`` for a rejection rate ``r``)."""
    r = min(float(rejection_rate or 0.0), 0.99)
    return float(np.sqrt(-np.log(KS_ALPHA / 2) / (2 * max(n, 1)))) + 1.0 / KS_BINS + r / (1 - r)


def check_theta(spec: WorldSpec, rows: int = READ_ROWS) -> CheckResult:
    t0 = time.perf_counter()
    world, problems = spec.world, Problems()
    figures: dict = {"n_checked": 0, "out_of_bounds": 0, "outside_priors": 0, "invalid": 0}
    priors = {k: prior_of(spec.priors, k) for k in spec.priors}
    inputs = {
        "array": "theta",
        "rule": "World.valid (float32 bounds + world validity) and the recipe's priors (bounds; fixed values "
        "exactly; each continuous drawn parameter's distribution by a Kolmogorov-Smirnov distance to its "
        "family's CDF, binned in CDF space)",
        "priors": {k: p.as_dict() for k, p in priors.items()},
        "ks_alpha": KS_ALPHA,
        "ks_bins": KS_BINS,
    }
    try:
        theta_arr = spec.open()["theta"]
    except Exception as exc:  # noqa: BLE001
        problems.add(f"theta does not open ({exc})")
        return result("consistency.theta", "consistency", spec.world_id, problems, "", figures, inputs)
    cols = [(world.index(k), np.float32(p.low), np.float32(p.high)) for k, p in priors.items()]
    fixed = [(world.index(k), np.float32(p.arg("value"))) for k, p in priors.items() if p.family == "fixed"]
    # KS: continuous drawn parameters (integer ones are discrete, fixed ones checked exactly)
    ks_cols = {
        k: (world.index(k), p)
        for k, p in priors.items()
        if p.family != "fixed" and world.parameters[world.index(k)].kind == "uniform"
    }
    ks_hist = {k: np.zeros(KS_BINS, dtype=np.int64) for k in ks_cols}
    firsts: dict[str, str] = {}
    read_theta = read_rows(theta_arr, zarr_on_error=True)
    for lo in range(0, theta_arr.shape[0], rows):
        try:
            theta = np.asarray(read_theta(lo, min(lo + rows, theta_arr.shape[0])), dtype=np.float64)
        except Exception as exc:  # noqa: BLE001 - integrity names the chunk; here we only cannot judge
            problems.add(f"samples {lo}-{lo + rows - 1} of theta do not decode ({type(exc).__name__})")
            continue
        if theta.ndim != 2 or theta.shape[1] != len(world.parameters):
            problems.add(
                f"theta has {theta.shape[-1]} columns, world {world.name!r} has {len(world.parameters)} parameters"
            )
            break
        figures["n_checked"] += theta.shape[0]
        inb = world.within_bounds(theta)
        t32 = theta.astype(np.float32)
        inp = np.ones(theta.shape[0], dtype=bool)
        for j, plo, phi in cols:
            inp &= (t32[:, j] >= plo) & (t32[:, j] <= phi)
        for j, value in fixed:
            inp &= t32[:, j] == value
        for k, (j, prior) in ks_cols.items():
            u = prior.cdf(theta[:, j][np.isfinite(theta[:, j])])
            ks_hist[k] += np.bincount(np.minimum((u * KS_BINS).astype(np.int64), KS_BINS - 1), minlength=KS_BINS)
        valid = np.zeros(theta.shape[0], dtype=bool)
        if inb.any():
            valid[inb] = world.is_valid(theta[inb])
        for key, bad in (("out_of_bounds", ~inb), ("outside_priors", inb & ~inp), ("invalid", inb & ~valid)):
            count = int(bad.sum())
            if count:
                figures[key] += count
                if key not in firsts:
                    i = int(np.flatnonzero(bad)[0])
                    firsts[key] = (
                        _describe_row(spec, lo + i, theta[i])
                        if key != "invalid"
                        else f"sample {lo + i} is rejected by world {world.name!r}'s validity rule "
                        f"(stability/determinacy)"
                    )
    for key, what in (
        ("out_of_bounds", "outside their parameter bounds"),
        ("outside_priors", "outside the recipe's priors"),
        ("invalid", "invalid (not stable/determinate)"),
    ):
        if figures[key]:
            problems.add(f"{figures[key]} of {figures['n_checked']} parameter draws are {what}; first: {firsts[key]}")
    if ks_cols and figures["n_checked"]:
        rate = (read_provenance(theta_arr).get("stats") or {}).get("rejection_rate")
        tol = _ks_tolerance(figures["n_checked"], rate)
        edges = np.arange(1, KS_BINS + 1) / KS_BINS
        figures["prior_ks"] = {}
        for k, h in ks_hist.items():
            d = float(np.max(np.abs(np.cumsum(h) / max(h.sum(), 1) - edges)))
            figures["prior_ks"][k] = round(d, 6)
            if d > tol:
                problems.add(
                    f"parameter {k!r}: its {figures['n_checked']} draws do not follow their {priors[k].family} prior "
                    f"{priors[k].as_dict()}: Kolmogorov-Smirnov distance {d:.4f} above {tol:.4f}"
                )
        figures["prior_ks_tolerance"] = round(tol, 6)
        figures["rejection_rate"] = rate
    ok = f"all {figures['n_checked']} parameter draws inside their bounds and priors, and valid"
    return result(
        "consistency.theta", "consistency", spec.world_id, problems, ok, figures, inputs, time.perf_counter() - t0
    )


def check_splits(spec: WorldSpec, rows: int = READ_ROWS) -> CheckResult:
    """Stored labels against the held-out regions recomputed from the stored theta and the seed's
    assignment. The regions come from :func:`macro_data.splits.regions`: in the process that just
    labelled the world (a world run) they are the remembered result for the same theta bytes
    (:class:`macro_data.splits.RegionMemo`), elsewhere they are computed."""
    t0 = time.perf_counter()
    world, problems = spec.world, Problems()
    L = splits.LABELS
    pooled = np.array([L["train"], L["val"], L["test_interpolation"]], dtype=np.int8)
    figures: dict = {
        "counts": {k: 0 for k in L},
        "unknown_labels": 0,
        "slice_region": 0,
        "corner_region": 0,
        "leaks_into_pool": {k: 0 for k in ("train", "val", "test_interpolation")},
        "region_mislabelled": 0,
        "label_outside_region": 0,
        "differs_from_assignment": 0,
        "theta_not_finite": 0,
    }
    inputs = {
        "arrays": ["split", "theta"],
        "algorithm": splits.ALGORITHM,
        "seed": spec.seed,
        "slice_rule": world.slice_rule.as_dict(),
        "corner_rule": world.corner_rule.as_dict(),
    }
    try:
        group = spec.open()
        split_arr, theta_arr = group["split"], group["theta"]
    except Exception as exc:  # noqa: BLE001
        problems.add(f"split or theta does not open ({exc})")
        return result("consistency.splits", "consistency", spec.world_id, problems, "", figures, inputs)
    n = split_arr.shape[0]
    if n != theta_arr.shape[0]:
        problems.add(f"split has {n} samples, theta has {theta_arr.shape[0]}")
        return result("consistency.splits", "consistency", spec.world_id, problems, "", figures, inputs)
    tally = splits.SplitTally()
    firsts: dict[str, str] = {}

    def note(key: str, mask: np.ndarray, lo: int, text) -> None:
        if mask.any() and key not in firsts:
            i = int(np.flatnonzero(mask)[0])
            firsts[key] = text(lo + i, i)

    read_labels, read_theta = read_rows(split_arr, zarr_on_error=True), read_rows(theta_arr, zarr_on_error=True)
    for lo in range(0, n, rows):
        hi = min(lo + rows, n)
        try:
            labels = np.asarray(read_labels(lo, hi))
            theta = np.asarray(read_theta(lo, hi), dtype=np.float64)
        except Exception as exc:  # noqa: BLE001
            problems.add(f"samples {lo}-{hi - 1} of split/theta do not decode ({type(exc).__name__})")
            continue
        tally.add(lo, labels)
        known = np.isin(labels, np.array(list(L.values()), dtype=labels.dtype))
        figures["unknown_labels"] += int((~known).sum())
        note("unknown", ~known, lo, lambda s, i: f"sample {s} has label {int(labels[i])}")
        finite = np.isfinite(theta).all(axis=1)  # damaged rows: integrity reports them; regions undefined
        figures["theta_not_finite"] += int((~finite).sum())
        in_slice = np.zeros(theta.shape[0], dtype=bool)
        in_corner = np.zeros(theta.shape[0], dtype=bool)
        if finite.any():
            in_slice[finite], in_corner[finite] = splits.regions(world, theta[finite])
        figures["slice_region"] += int(in_slice.sum())
        figures["corner_region"] += int(in_corner.sum())
        for name in ("train", "val", "test_interpolation"):
            leak = (labels == L[name]) & (in_slice | in_corner)
            figures["leaks_into_pool"][name] += int(leak.sum())
            note(
                f"leak-{name}",
                leak,
                lo,
                lambda s, i, name=name: (
                    f"sample {s} is labelled {name} but lies in the held-out "
                    f"{'slice' if in_slice[i] else 'corner'} region "
                    f"({_region_text(world, theta[i : i + 1], in_slice[i])})"
                ),
            )
        held = known & ~np.isin(labels, pooled)  # carries one of the two extrapolation labels
        mislabelled = (in_slice & held & (labels != L["test_extrapolation_slice"])) | (
            in_corner & held & (labels != L["test_extrapolation_corner"])
        )
        figures["region_mislabelled"] += int(mislabelled.sum())
        note(
            "mislabelled",
            mislabelled,
            lo,
            lambda s, i: (
                f"sample {s} lies in the "
                f"{'slice' if in_slice[i] else 'corner'} region but is labelled "
                f"{splits.NAMES.get(int(labels[i]), labels[i])}"
            ),
        )
        outside = ((labels == L["test_extrapolation_slice"]) & ~in_slice) | (
            (labels == L["test_extrapolation_corner"]) & ~in_corner
        )
        figures["label_outside_region"] += int(outside.sum())
        note(
            "outside",
            outside,
            lo,
            lambda s, i: f"sample {s} is labelled {splits.NAMES[int(labels[i])]} but lies outside that region",
        )
        expected = labels.copy()
        if finite.any():
            expected[finite] = splits.assign(
                world,
                theta[finite],
                split_uniforms(world, spec.seed, lo, hi)[finite],
                (in_slice[finite], in_corner[finite]),
            )
        differs = expected != labels
        figures["differs_from_assignment"] += int(differs.sum())
        note(
            "differs",
            differs,
            lo,
            lambda s, i: (
                f"sample {s} is labelled "
                f"{splits.NAMES.get(int(labels[i]), labels[i])}, the split algorithm assigns "
                f"{splits.NAMES[int(expected[i])]}"
            ),
        )
    summary = tally.summary(world, spec.seed)
    figures["counts"] = {k: v["count"] for k, v in summary.items()}
    figures["fractions"] = {k: v["fraction"] for k, v in summary.items()}
    total = sum(figures["counts"].values())
    if figures["unknown_labels"]:
        problems.add(
            f"{figures['unknown_labels']} samples carry a label outside {sorted(L.values())}; "
            f"first: {firsts['unknown']}"
        )
    if total != n:
        problems.add(f"the splits cover {total} of {n} samples")
    if figures["theta_not_finite"]:
        problems.add(
            f"{figures['theta_not_finite']} samples have non-finite parameters: their split cannot be verified"
        )
    for name, count in figures["leaks_into_pool"].items():
        if count:
            problems.add(
                f"held-out region leak: {count} samples of the extrapolation regions are labelled {name}; "
                f"first: {firsts[f'leak-{name}']}"
            )
    if figures["region_mislabelled"]:
        problems.add(
            f"{figures['region_mislabelled']} held-out samples carry the other region's label; first: "
            f"{firsts['mislabelled']}"
        )
    if figures["label_outside_region"]:
        problems.add(
            f"{figures['label_outside_region']} samples carry an extrapolation label outside its region; "
            f"first: {firsts['outside']}"
        )
    if figures["differs_from_assignment"]:
        problems.add(
            f"{figures['differs_from_assignment']} labels differ from the split algorithm's assignment "
            f"(seed {spec.seed}); first: {firsts['differs']}"
        )
    recorded = read_provenance(split_arr).get("splits") or {}
    for source, table in (
        ("the split array's provenance", recorded),
        ("the manifest", (spec.manifest or {}).get("splits") if spec.manifest is not None else None),
    ):
        if table is None:
            continue
        for k, v in summary.items():
            rec = table.get(k) or {}
            if rec.get("count") != v["count"] or rec.get("index_hash") != v["index_hash"]:
                problems.add(
                    f"split {k!r}: {source} records {rec.get('count')} samples (index hash "
                    f"{str(rec.get('index_hash'))[:12]}...), the labels give {v['count']} "
                    f"({v['index_hash'][:12]}...)"
                )
    ok = (
        f"{n} samples in 5 disjoint splits ({', '.join(f'{k} {c}' for k, c in figures['counts'].items())}); "
        f"no held-out draw in train/val/test_interpolation; labels equal the algorithm's assignment"
    )
    return result(
        "consistency.splits", "consistency", spec.world_id, problems, ok, figures, inputs, time.perf_counter() - t0
    )


def _region_text(world, theta: np.ndarray, slice_: bool) -> str:
    if slice_:
        r = world.slice_rule
        return f"{r.statistic} = {float(world.slice_statistic(theta)[0]):.4g}, {r.direction} {r.threshold}"
    r = world.corner_rule
    p, v = world.corner_statistics(theta)
    return (
        f"{r.persistence} = {float(p[0]):.4g} > {r.persistence_threshold}, "
        f"{r.volatility} = {float(v[0]):.4g} > {r.volatility_threshold}"
    )


# ---- the manifest against the stores -----------------------------------------------------------


def _names(items) -> list[str]:
    return [x["name"] if isinstance(x, dict) else x for x in items]


def check_manifest_world(spec: WorldSpec) -> CheckResult:
    """One world's manifest entry against its store and the installed world code (no data scan)."""
    t0 = time.perf_counter()
    problems, entry, world = Problems(), spec.manifest or {}, spec.world
    figures: dict = {"arrays_listed": len(entry.get("arrays", {}))}
    inputs = {"manifest_entry": f"worlds/{spec.world_id}", "store": spec.store.location}
    desc = world.describe()
    for key in ("parameters", "shocks", "observables", "extras", "metadata"):
        if _names(entry.get(key, [])) != _names(desc[key]):
            problems.add(
                f"the manifest lists {key} {_names(entry.get(key, []))}, the installed world code has "
                f"{_names(desc[key])}"
            )
    # the split rules' numbers decide the labels; their names and descriptions are free text
    for key, fields in (
        ("slice_rule", ("threshold", "direction")),
        ("corner_rule", ("persistence_threshold", "volatility_threshold")),
    ):
        listed = {f: (entry.get(key) or {}).get(f) for f in fields}
        code = {f: desc[key][f] for f in fields}
        if listed != code:
            problems.add(f"the manifest's {key} {listed} differs from the installed world code's {code}")
    try:
        group = spec.open()
    except Exception as exc:  # noqa: BLE001
        problems.add(f"the store does not open ({exc})")
        return result("consistency.manifest", "consistency", spec.world_id, problems, "", figures, inputs)
    expected = set(spec.data_arrays())
    listed = set(entry.get("arrays", {}))
    if listed != expected:
        problems.add(f"the manifest lists arrays {sorted(listed)}, the world has {sorted(expected)}")
    for name in sorted(listed & expected):
        spec_entry = entry["arrays"][name]
        try:
            array = group[name]
        except Exception as exc:  # noqa: BLE001
            problems.add(f"array {name!r} listed in the manifest does not open ({type(exc).__name__})")
            continue
        where = group.store.relative_path(name)
        if spec_entry.get("path") != where:
            problems.add(
                f"array {name!r}: the manifest path {spec_entry.get('path')!r} is not where the store keeps "
                f"it ({where})"
            )
        for key, actual in (
            ("shape", list(array.shape)),
            ("dtype", str(array.dtype)),
            ("dimension_names", list(array.metadata.dimension_names or ())),
            ("sha256", array.attrs.get("sha256")),
        ):
            if spec_entry.get(key) != actual:
                problems.add(
                    f"array {name!r}: the manifest's {key} is {str(spec_entry.get(key))[:70]}, "
                    f"the store's is {str(actual)[:70]}"
                )
        if spec_entry.get("stage") != spec.arrays()[name].stage:
            problems.add(
                f"array {name!r}: the manifest says stage {spec_entry.get('stage')!r}, "
                f"expected {spec.arrays()[name].stage!r}"
            )
    if entry.get("n_samples") != spec.n:
        problems.add(f"the manifest says {entry.get('n_samples')} samples, the recipe {spec.n}")
    prov = {}
    for stage, module in STAGE_MODULES.items():
        first = module.output_arrays(spec.world_id)[0]
        try:
            prov[stage] = read_provenance(group[first])
        except Exception:  # noqa: BLE001
            problems.add(f"array {first!r} of stage {stage} does not open")
            continue
        rec = (entry.get("provenance") or {}).get(stage) or {}
        for key in ("run_id", "code_version", "data_version"):
            if rec.get(key) != prov[stage].get(key):
                problems.add(
                    f"stage {stage}: the manifest records {key} {str(rec.get(key))[:40]!r}, the store "
                    f"{str(prov[stage].get(key))[:40]!r}"
                )
        if prov[stage].get("recipe_sha256") != spec.recipe_sha256:
            problems.add(
                f"stage {stage}: the store was made from recipe {str(prov[stage].get('recipe_sha256'))[:12]}..., "
                f"the manifest's recipe is {spec.recipe_sha256[:12]}..."
            )
    stats = (prov.get("world_draws") or {}).get("stats") or {}
    for key in ("n_rejected", "rejection_rate"):
        if entry.get(key) != stats.get(key):
            problems.add(f"the manifest's {key} {entry.get(key)} differs from the draws' record {stats.get(key)}")
    split_rec = (prov.get("world_splits") or {}).get("splits") or {}
    for k, v in (entry.get("splits") or {}).items():
        r = split_rec.get(k) or {}
        if (v.get("count"), v.get("index_hash")) != (r.get("count"), r.get("index_hash")):
            problems.add(
                f"split {k!r}: the manifest records {v.get('count')} samples, the split array {r.get('count')}"
            )
    figures["rejection_rate"] = entry.get("rejection_rate")
    ok = (
        f"the manifest entry agrees with the store ({len(listed)} arrays: layouts and hashes; splits, rejections, "
        f"provenance) and with the installed world code"
    )
    return result(
        "consistency.manifest", "consistency", spec.world_id, problems, ok, figures, inputs, time.perf_counter() - t0
    )


def check_manifest_dataset(manifest: dict, dataset_dir: str | Path) -> CheckResult:
    """Dataset-level: schema, recipe hash, the set of worlds, T and H, a store per world."""
    t0 = time.perf_counter()
    problems = Problems()
    errors = schemas.errors("manifest", manifest)
    for e in errors[:5]:
        problems.add(f"manifest.json does not match its schema at {schemas.location(e)}: {e.message[:200]}")
    figures: dict = {"schema_errors": len(errors)}
    try:
        recipe = parse_recipe(manifest.get("recipe"), source="manifest.json recipe")
    except MacroDataError as exc:
        problems.add(f"the manifest's recipe does not parse: {exc}")
        recipe = None
    if recipe is not None:
        figures["recipe_sha256"] = recipe.sha256
        if recipe.sha256 != manifest.get("recipe_sha256"):
            problems.add(
                f"the manifest's recipe hashes to {recipe.sha256[:16]}..., but recipe_sha256 says "
                f"{str(manifest.get('recipe_sha256'))[:16]}..."
            )
        if sorted(manifest.get("worlds", {})) != sorted(recipe.world_ids):
            problems.add(
                f"the manifest lists worlds {sorted(manifest.get('worlds', {}))}, the recipe {sorted(recipe.world_ids)}"
            )
        if (manifest.get("T"), manifest.get("H")) != (recipe.T, recipe.H):
            problems.add(
                f"the manifest says T={manifest.get('T')}, H={manifest.get('H')}, the recipe T={recipe.T}, H={recipe.H}"
            )
        for w in recipe.world_ids:
            if w in manifest.get("worlds", {}):
                resolved = recipe.world(w).priors.as_manifest()
                listed = manifest["worlds"][w].get("priors", {})
                if resolved != listed:
                    problems.add(f"world {w!r}: the manifest's priors differ from the recipe's")
    unknown = sorted(set(manifest.get("worlds", {})) - set(world_ids()))
    if unknown:
        problems.add(f"the manifest lists unknown worlds {unknown}")
    for w in manifest.get("worlds", {}):
        if w in world_ids() and not world_store(dataset_dir, w).exists():
            problems.add(f"world {w!r} is listed but its store is missing ({world_store(dataset_dir, w).location})")
    figures["worlds"] = sorted(manifest.get("worlds", {}))
    ok = "manifest.json matches its schema, its recipe hash, the recipe's worlds, T and H; every world store exists"
    return result(
        "consistency.dataset",
        "consistency",
        None,
        problems,
        ok,
        figures,
        {"file": "manifest.json", "schema": "schemas/manifest.schema.json"},
        time.perf_counter() - t0,
    )
