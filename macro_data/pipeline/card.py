"""The dataset card: ``README.md`` in every version folder, written with the manifest.

A person who finds the folder learns from it what the dataset is, what it holds (worlds, sample
counts, splits), its conventions and units, how to load it, its license and how to cite it, the
recipe it was built from, the content hashes, and the environment that computed it. Everything
comes from the manifest document, so the card never disagrees with it.
"""

from __future__ import annotations

import json

CARD_NAME = "README.md"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *["| " + " | ".join(r) + " |" for r in rows]]


def render(doc: dict, manifest_sha256: str) -> str:
    """The card of the dataset described by manifest ``doc`` (whose file hashes to ``manifest_sha256``)."""
    d, recipe = doc["dataset"], doc["recipe"]
    name, version = d["name"], d["version"]
    worlds = doc["worlds"]
    split_names = list(doc["split_labels"])
    lines = [
        f"# {name} {version}",
        "",
        recipe.get("description") or f"A macro_data dataset of {len(worlds)} simulator worlds.",
        "",
        f"Simulated training data for neural emulators of macroeconomic models: for every sample, a parameter "
        f"draw `theta`, standard-normal innovations `shocks`, the simulated `trajectories` of the canonical "
        f"observables over T = {doc['T']} quarters, and impulse responses `irfs` to a +1 sd innovation of each "
        f"shock over horizons 0..{doc['H']}. Built {d['created_at']} by macro_data {doc['package']['version']} "
        f"(seed {recipe['seed']}).",
        "",
        "## Worlds",
        "",
        *_table(
            ["world", "description", "samples", "rejection rate", *split_names],
            [
                [
                    w,
                    e["description"],
                    f"{e['n_samples']:,}",
                    f"{e['rejection_rate']:.4f}" if e.get("rejection_rate") is not None else "-",
                    *[f"{e['splits'][s]['count']:,}" for s in split_names],
                ]
                for w, e in worlds.items()
            ],
        ),
        "",
        "## Splits",
        "",
        "Per world, deterministic given the seed, disjoint and covering every sample: "
        "`test_extrapolation_slice` holds every draw beyond a fixed threshold of one statistic, "
        "`test_extrapolation_corner` every remaining draw jointly extreme in persistence and volatility (each about "
        "2.5 % of the prior mass; no training or validation sample comes from these regions); the rest is assigned "
        "by a per-sample uniform: train 80 %, val 10 %, test_interpolation 5 % of the total. Labels in the `split` "
        f"array: {json.dumps(doc['split_labels'])}.",
        "",
        *_table(
            ["world", "slice rule", "corner rule"],
            [[w, e["slice_rule"]["description"], e["corner_rule"]["description"]] for w, e in worlds.items()],
        ),
        "",
        "## Conventions and units",
        "",
        *[f"- {k}: {v}" for k, v in doc.get("conventions", {}).items()],
        "- Observables (every world, in this order): "
        + "; ".join(
            f"`{o['name']}` ({o['unit']}): {o['definition']}" for o in next(iter(worlds.values()))["observables"]
        ),
        "- Innovations `shocks[t, j]` are standard normal (sd units); the model receives sigma_j * eps[t, j].",
        f"- Seeding: {doc['seeding']['algorithm']}, blocks of {doc['seeding']['block_size']} samples; a sample's "
        "numbers depend only on (seed, world, sample index).",
        "- Parameters, shocks and extra observables of each world, with units and bounds, are listed in "
        "`manifest.json` (`worlds.<world>.parameters`, `shocks`, `extras`) and in each store's attributes.",
        "",
        "## Loading",
        "",
        "```python",
        "import macro_data.read as mdr",
        "",
        f'ds = mdr.open_dataset("path/to/{name}/{version}", verify=True)  # refuses corrupt data',
        f'world = ds["{next(iter(worlds))}"]',
        'traj = world["trajectories"]            # lazy; dims (sample, time, observable)',
        'train = world.split_indices("train")',
        "```",
        "",
        "Without this package: every world is a Zarr v3 group `<world>.zarr` with dimension names and units in "
        'its attributes, e.g. `xarray.open_zarr("<world>.zarr")`.',
        "",
        "## License and citation",
        "",
        f"License: {recipe.get('license') or 'CC-BY-4.0'}.",
        "",
        *([f"Cite as: {recipe['citation']}", ""] if recipe.get("citation") else []),
        f"Recipe sha256 `{doc['recipe_sha256']}`, manifest sha256 `{manifest_sha256}`.",
        "",
        "## Recipe",
        "",
        "```json",
        json.dumps(recipe, indent=2, sort_keys=True),
        "```",
        "",
        "## Content hashes",
        "",
        f"Algorithm {doc['hash']['algorithm']}: {doc['hash']['description']}.",
        "",
        *_table(
            ["world", "array", "shape", "sha256"],
            [
                [w, a, " x ".join(map(str, spec["shape"])), f"`{spec['sha256']}`"]
                for w, e in worlds.items()
                for a, spec in e["arrays"].items()
            ],
        ),
        "",
        "## Environment",
        "",
        "The software and hardware that wrote the manifest (each stage's own is in the manifest's provenance):",
        "",
        "```json",
        json.dumps(doc.get("environment", {}), indent=2, sort_keys=True),
        "```",
        "",
    ]
    return "\n".join(lines)
