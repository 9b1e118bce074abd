"""Jobs: build one world (partitioned), and the all-worlds stages."""

import dagster as dg

from macro_data.orchestration import groups

build_world_job = dg.define_asset_job(
    "build_world",
    selection=dg.AssetSelection.groups(groups.WORLDS),
    description="Draws, arrays, splits and train-split statistics of one world (one run per world partition).",
)

build_dataset_job = dg.define_asset_job(
    "build_dataset_files",
    selection=dg.AssetSelection.groups(groups.DATASET),
    description="All-worlds stages (manifest, validation report) once every world partition is built.",
)

fetch_external_job = dg.define_asset_job(
    "fetch_external",
    selection=dg.AssetSelection.assets("external_dataset"),
    description="Fetch and verify one registry entry of the external reference data (one run per entry).",
)
