"""The Dagster UI as a person would see it: a real ``dagster dev`` on loopback, checked through
GraphQL and a headless browser.

The fixture builds one world (nk, 300 samples) with Dagster's own CLI into a fresh instance, then
starts ``dagster dev`` from the project directory (so it reads ``workspace.yaml``) against the same
``DAGSTER_HOME``. The tests ask the running server what a person would look at: the code location
loaded (not merely listed: a location that fails to import is listed too, with a PythonError), every
asset, check, job, schedule and sensor of the code is there, the world assets have exactly the six
world partitions, and the CLI's materialization shows up with its metadata, whose hash is recomputed
here from the Zarr array the metadata points to. Screenshots of the asset graph, the asset page and
the validation report are checked to be rendered pages (not blank, and their DOM holds the asset
names and the hash), next to a blank page as the negative control. The daemon that ``dagster dev``
starts must report healthy. Runs execute in process (``IN_PROCESS`` in conftest) for speed.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest
import zarr

from macro_data.worlds import world_ids
from macro_data_tests.conftest import write_recipe
from macro_data_tests.ops.conftest import (
    REPO,
    Group,
    assert_not_blank,
    browser,
    chromium,
    cli_materialize,
    content_hash,
    dagster_env,
    executable,
    free_port,
    graphql,
    image_stats,
    page_text,
    stop_all,
    wait_location_loaded,
    write_instance_yaml,
)

pytestmark = pytest.mark.slow

WORLDS = list(world_ids())  # the catalog: the six built-ins, then the model-file worlds
WORLD_ASSETS = ("world_draws", "world_arrays", "world_splits")
N = 300
STARTUP_S = 60


class UI:
    def __init__(
        self, base: Path, env: dict, url: str, dataset_dir: Path, run_id: str, report: tuple[Path | None, str, bool]
    ):
        self.base, self.env, self.url, self.dataset_dir, self.run_id = base, env, url, dataset_dir, run_id
        self.report, self.report_note, self.report_failed = report
        self.profile = base / "chromium-profile"


def code_asset_keys() -> set[str]:
    import macro_data

    return {k.to_user_string() for k in macro_data.defs.resolve_asset_graph().get_all_asset_keys()}


def make_report(env: dict, dataset_dir: Path) -> tuple[Path | None, str, bool]:
    """The validation report HTML made through the graph: (path or None, why not, whether that is a failure)."""
    from macro_data.validation.dataset import REPORT_HTML

    if "validation_report" not in code_asset_keys():
        return None, "the code location has no validation_report asset", False
    try:  # a broken report fails its own test, not the whole UI module
        cli_materialize(env, "dataset_manifest,validation_report", timeout=120)
    except (AssertionError, pytest.fail.Exception) as exc:
        return None, f"materializing dataset_manifest,validation_report failed: {exc}", True
    html = dataset_dir / REPORT_HTML
    return (html, "", False) if html.exists() else (None, f"validation_report ran but wrote no {REPORT_HTML}", True)


@pytest.fixture(scope="module")
def ui(tmp_path_factory, request) -> UI:
    base = tmp_path_factory.mktemp("ui")
    recipe = write_recipe(base / "recipes", n=N, worlds=["nk"])
    root, home, tmp = base / "root", base / "dagster_home", base / "tmp"
    tmp.mkdir()
    write_instance_yaml(home)
    env = dagster_env(home, tmp, recipe, root)
    dataset_dir = root / "tiny" / "0.1.0"

    run_id = cli_materialize(env, ",".join(WORLD_ASSETS), partition="nk")
    report = make_report(env, dataset_dir)

    port = free_port()
    groups: list[Group] = []
    request.addfinalizer(lambda: stop_all(groups))
    server = Group(
        [executable("dagster"), "dev", "-h", "127.0.0.1", "-p", str(port)], base / "dagster-dev.log", env, cwd=REPO
    )
    groups.append(server)
    url = f"http://127.0.0.1:{port}"
    wait_location_loaded(url, server, STARTUP_S)
    return UI(base, env, url, dataset_dir, run_id, report)


LOCATIONS = """{ workspaceOrError { __typename ... on Workspace { locationEntries { name loadStatus
  locationOrLoadError { __typename ... on RepositoryLocation { name repositories { name } }
                        ... on PythonError { message } } } } } }"""


def test_code_location_loaded(ui):
    ws = graphql(ui.url, LOCATIONS)["workspaceOrError"]
    assert ws["__typename"] == "Workspace"
    entries = {e["name"]: e for e in ws["locationEntries"]}
    assert list(entries) == ["macro_data"], entries
    e = entries["macro_data"]
    loaded = e["locationOrLoadError"]
    assert loaded["__typename"] == "RepositoryLocation", f"location failed to load: {loaded.get('message')}"
    assert e["loadStatus"] == "LOADED"
    assert len(loaded["repositories"]) == 1


REPOSITORY = """{ repositoriesOrError { __typename ... on RepositoryConnection { nodes {
  name jobs { name } schedules { name } sensors { name }
  assetNodes { assetKey { path } isPartitioned partitionKeys
               assetChecksOrError { __typename ... on AssetChecks { checks { name } } } } } } } }"""


def test_every_asset_and_partition_is_shown(ui):
    import dagster as dg

    import macro_data

    defs = macro_data.defs
    graph = defs.resolve_asset_graph()
    (repo,) = graphql(ui.url, REPOSITORY)["repositoriesOrError"]["nodes"]
    shown = {"/".join(a["assetKey"]["path"]): a for a in repo["assetNodes"]}

    assert set(shown) == code_asset_keys()
    assert set(WORLD_ASSETS) | {"dataset_manifest"} <= set(shown)
    for name in WORLD_ASSETS:
        assert shown[name]["isPartitioned"] and shown[name]["partitionKeys"] == WORLDS, shown[name]
    for name, node in shown.items():
        pdef = graph.get(dg.AssetKey.from_user_string(name)).partitions_def
        if isinstance(pdef, dg.DynamicPartitionsDefinition):  # keys live in the instance, added by a sensor
            assert node["isPartitioned"], name
            continue
        assert node["partitionKeys"] == (list(pdef.get_partition_keys()) if pdef else []), name

    shown_checks = {
        f"{name}:{c['name']}"
        for name, a in shown.items()
        if a["assetChecksOrError"]["__typename"] == "AssetChecks"
        for c in a["assetChecksOrError"]["checks"]
    }
    assert shown_checks == {f"{k.asset_key.to_user_string()}:{k.name}" for k in graph.asset_check_keys}

    user_jobs = {j.name for j in defs.resolve_all_job_defs() if not j.name.startswith("__")}
    assert {"build_world", "build_dataset_files"} <= user_jobs
    assert user_jobs <= {j["name"] for j in repo["jobs"]}
    assert {s["name"] for s in repo["schedules"]} == {s.name for s in defs.schedules or []}
    shown_sensors = {s["name"] for s in repo["sensors"]}
    code_sensors = {s.name for s in defs.sensors or []}
    # Dagster adds its own sensor for assets with automation conditions
    assert code_sensors <= shown_sensors and shown_sensors - code_sensors <= {"default_automation_condition_sensor"}


MATERIALIZATIONS = """query($key: AssetKeyInput!) { assetOrError(assetKey: $key) { __typename ... on Asset {
  assetMaterializations(partitions: ["nk"]) { partition runId
    metadataEntries { label __typename ... on PathMetadataEntry { path } ... on TextMetadataEntry { text }
                      ... on FloatMetadataEntry { floatValue } ... on IntMetadataEntry { intValue } } }
  definition { assetPartitionStatuses { __typename ... on DefaultPartitionStatuses { materializedPartitions } } }
} } }"""


def metadata_values(entries: list[dict]) -> dict:
    out = {}
    for e in entries:
        for field in ("path", "text", "floatValue", "intValue"):
            if field in e:
                out[e["label"]] = e[field]
    return out


def test_cli_materialization_shows_with_metadata(ui):
    runs = graphql(
        ui.url,
        """query($id: ID!) { runOrError(runId: $id) { __typename ... on Run {
        status tags { key value } } } }""",
        {"id": ui.run_id},
    )["runOrError"]
    assert runs["__typename"] == "Run" and runs["status"] == "SUCCESS", runs
    assert {"key": "dagster/partition", "value": "nk"} in runs["tags"]

    for name in WORLD_ASSETS:
        asset = graphql(ui.url, MATERIALIZATIONS, {"key": {"path": [name]}})["assetOrError"]
        assert asset["__typename"] == "Asset", (name, asset)
        (mat,) = asset["assetMaterializations"]
        assert mat["partition"] == "nk" and mat["runId"] == ui.run_id, (name, mat)
        status = asset["definition"]["assetPartitionStatuses"]
        assert status["materializedPartitions"] == ["nk"], (name, status)
        meta = metadata_values(mat["metadataEntries"])
        assert Path(meta["path"]) == ui.dataset_dir / "nk.zarr", meta["path"]
        assert meta["world"] == "nk"

        group = zarr.open_group(meta["path"], mode="r")
        hashed = [k.split("/", 1)[1] for k in meta if k.startswith("sha256/")]
        assert hashed, f"{name}: no sha256/<array> metadata"
        for array in hashed:
            assert meta[f"sha256/{array}"] == content_hash(group[array]), f"{name}: sha256/{array}"

        if name == "world_draws":
            assert "theta" in hashed and "shocks" in hashed
            assert group["theta"].shape[0] == N and meta["n_samples"] == N
            rate = meta["rejection_rate"]
            assert 0.0 <= rate < 1.0
            assert rate == pytest.approx(meta["n_rejected"] / (meta["n_rejected"] + N), abs=1e-12)


DAEMONS = (
    "{ instance { daemonHealth { allDaemonStatuses { daemonType required healthy "
    "lastHeartbeatErrors { message } } } } }"
)


def test_daemon_is_running(ui):
    """``dagster dev`` runs the daemon too: schedules, sensors and automation need it (Deployment > Daemons)."""
    deadline = time.monotonic() + 45
    while True:
        statuses = graphql(ui.url, DAEMONS)["instance"]["daemonHealth"]["allDaemonStatuses"]
        required = {d["daemonType"]: d for d in statuses if d["required"]}
        if required and all(d["healthy"] for d in required.values()):
            break
        assert time.monotonic() < deadline, f"daemons not healthy after 45s: {required}"
        time.sleep(1)
    assert {"SCHEDULER", "SENSOR", "QUEUED_RUN_COORDINATOR"} <= set(required), sorted(required)


# --- what a person sees in a browser ------------------------------------------------------------


def shoot(ui: UI, url: str, name: str) -> Path:
    png = ui.base / f"{name}.png"
    chromium(url, ui.profile, ui.env, f"--screenshot={png}")
    assert png.exists(), f"chromium wrote no {png}"
    keep_screenshots(png)
    return png


def keep_screenshots(png: Path) -> None:
    """With ``MACRO_DATA_KEEP_SCREENSHOTS=DIR``, copy each screenshot there to look at it."""
    target = os.environ.get("MACRO_DATA_KEEP_SCREENSHOTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy2(png, Path(target) / png.name)


def assert_ui_page(text: str) -> None:
    for bad in ("PythonError", "Something went wrong", "An unexpected error", "Failed to load"):
        assert bad not in text, f"the page shows an error ({bad!r}): {text[:2000]}"


def test_blank_page_is_recognised_as_blank(ui):
    if browser() is None:
        pytest.skip("no headless browser (/usr/bin/chromium) on this machine")
    png = shoot(ui, "about:blank", "blank")
    s = image_stats(png)
    with pytest.raises(AssertionError, match="looks blank"):
        assert_not_blank(png)
    assert s["colours"] <= 2, s


def test_asset_graph_page(ui):
    page = f"{ui.url}/locations/macro_data/asset-groups/worlds"
    text = page_text(chromium(page, ui.profile, ui.env, "--dump-dom"))
    assert_ui_page(text)
    for name in (*WORLD_ASSETS, "dataset_manifest"):
        assert name in text, f"{name} not on the asset graph page: {text[:2000]}"
    assert f"{len(WORLDS)} partitions" in text
    assert_not_blank(shoot(ui, page, "asset_graph_worlds"))


def test_asset_page_shows_materialization_metadata(ui):
    page = f"{ui.url}/assets/world_draws?partition=nk"
    text = page_text(chromium(page, ui.profile, ui.env, "--dump-dom"))
    assert_ui_page(text)
    group = zarr.open_group(ui.dataset_dir / "nk.zarr", mode="r")
    for label in ("sha256/theta", "rejection_rate", content_hash(group["theta"])):
        assert label in text, f"{label} not on the world_draws page: {text[:2000]}"
    assert_not_blank(shoot(ui, page, "asset_world_draws_nk"))


def test_validation_report_page(ui):
    if browser() is None:
        pytest.skip("no headless browser (/usr/bin/chromium) on this machine")
    if ui.report is None:
        (pytest.fail if ui.report_failed else pytest.skip)(ui.report_note)
    from macro_data.validation.dataset import REPORT_JSON

    page = ui.report.as_uri()
    text = page_text(chromium(page, ui.profile, ui.env, "--dump-dom"))
    # the page shows what the JSON report next to it says
    doc = json.loads((ui.report.parent / REPORT_JSON).read_text())
    for shown in (
        f"{doc['dataset']['name']} {doc['dataset']['version']}",
        f"{doc['score']['value']}/100",
        *doc["worlds"],
        doc["status"].upper(),
    ):
        assert shown in text, f"{shown!r} not in the rendered report: {text[:2000]}"
    assert_not_blank(shoot(ui, page, "validation_report"))
