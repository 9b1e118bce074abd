"""Production instance storage: Dagster on a real PostgreSQL server, configured as docs/production.md says.

A throw-away PostgreSQL cluster is created with ``initdb`` in a temporary directory and started with
``pg_ctl`` on a free loopback port (unix socket in the same directory; password authentication
over TCP), run as the ``postgres`` system user when the tests run as root (the server refuses root).
The ``dagster.yaml`` block of docs/production.md is written, unchanged, into a temporary
``DAGSTER_HOME``; the credentials reach it only through the ``DAGSTER_PG_*`` variables.

Checked: a world materialized with Dagster's CLI is recorded in PostgreSQL — through the instance
API and through ``psql`` on the tables themselves — and nothing went to SQLite; then
``dagster-webserver`` and ``dagster-daemon``, started with the documented commands, show that run
and complete a run launched through the webserver (queued by the webserver, launched by the daemon).
Runs execute in process (``IN_PROCESS`` in conftest) to keep the module well under a minute.
"""

from __future__ import annotations

import glob
import os
import pwd
import re
import secrets
import shutil
import signal
import tempfile
import time
from pathlib import Path

import pytest
import yaml
import zarr

from macro_data_tests.conftest import write_recipe
from macro_data_tests.ops.conftest import (
    IN_PROCESS,
    REPO,
    Group,
    cli_materialize,
    content_hash,
    dagster_env,
    executable,
    free_port,
    graphql,
    group_members,
    run,
    stop_all,
    wait_location_loaded,
)

pytestmark = pytest.mark.slow

DOC = REPO / "docs" / "production.md"
DOC_MARKER = "<!-- dagster.yaml:"
WORLD_ASSETS = ("world_draws", "world_arrays", "world_splits")
N = 300
ROLE, DB = "macro_data_dagster", "macro_data_dagster"
RUN_TIMEOUT_S = 60


def documented_dagster_yaml() -> str:
    """The ``yaml`` block that follows the marker comment in docs/production.md."""
    text = DOC.read_text()
    assert DOC_MARKER in text, f"{DOC.name} lost its marked dagster.yaml block"
    block = re.search(r"```yaml\n(.*?)```", text[text.index(DOC_MARKER) :], re.DOTALL)
    assert block, f"no yaml block after the marker in {DOC.name}"
    return block.group(1)


def test_documented_dagster_yaml_is_env_driven_postgres():
    doc = yaml.safe_load(documented_dagster_yaml())
    db = doc["storage"]["postgres"]["postgres_db"]
    assert db == {
        "username": {"env": "DAGSTER_PG_USERNAME"},
        "password": {"env": "DAGSTER_PG_PASSWORD"},
        "hostname": {"env": "DAGSTER_PG_HOST"},
        "db_name": {"env": "DAGSTER_PG_DB"},
        "port": {"env": "DAGSTER_PG_PORT"},
        "scheme": "postgresql+psycopg2",
    }


# --- a throw-away PostgreSQL server -------------------------------------------------------------


def postgres_bindir() -> Path | None:
    """The newest ``/usr/lib/postgresql/<major>/bin`` with initdb and pg_ctl, else both from PATH."""
    dirs = [
        Path(d)
        for d in glob.glob("/usr/lib/postgresql/*/bin")
        if all((Path(d) / exe).exists() for exe in ("initdb", "pg_ctl", "postgres"))
    ]
    if dirs:
        return max(dirs, key=lambda d: int(d.parent.name) if d.parent.name.isdigit() else -1)
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb and pg_ctl:
        return Path(initdb).resolve().parent
    return None


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return state[state.rindex(")") + 2] not in "ZX"


class PostgresServer:
    """One cluster in ``base`` on ``127.0.0.1:port``; the socket lives in ``base`` too."""

    def __init__(self, bindir: Path):
        self.bindir = bindir
        self.port = free_port()
        self.prefix: list[str] = []
        owner = None
        if os.geteuid() == 0:  # initdb and postgres refuse to run as root
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError:
                pytest.skip("running as root and there is no 'postgres' user to run the server as")
            runuser = shutil.which("runuser")
            if runuser is None:
                pytest.skip("running as root and runuser is missing")
            self.prefix = [runuser, "-u", "postgres", "--"]
        # The server user must reach the directory: pytest's own temporary tree is private to root.
        self.base = Path(tempfile.mkdtemp(prefix="macro-data-pg-", dir="/tmp" if os.path.isdir("/tmp") else None))
        if owner is not None:
            os.chown(self.base, owner.pw_uid, owner.pw_gid)
        self.data, self.log = self.base / "data", self.base / "server.log"
        self.postmaster: int | None = None

    def _run(self, *cmd: str, timeout: float = 60) -> str:
        done = run([*self.prefix, *cmd], dict(os.environ, LC_ALL="C"), timeout, cwd=self.base)
        if done.returncode != 0:
            log = self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""
            pytest.fail(f"{Path(cmd[0]).name} exited {done.returncode}:\n{done.stdout[-3000:]}\n{log}")
        return done.stdout

    def start(self) -> None:
        self._run(
            str(self.bindir / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--no-locale",
            "--no-sync",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
        )
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories={self.base} -c fsync=off"
        self._run(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-w",
            "-t",
            "30",
            "-o",
            options,
            "start",
        )
        self.postmaster = int((self.data / "postmaster.pid").read_text().split()[0])

    def psql(self, sql: str, db: str = "postgres") -> list[list[str]]:
        """Rows of ``sql`` run as the superuser over the unix socket (local connections are trusted)."""
        exe = self.bindir / "psql" if (self.bindir / "psql").exists() else shutil.which("psql")
        out = self._run(
            str(exe),
            "-h",
            str(self.base),
            "-p",
            str(self.port),
            "-U",
            "postgres",
            "-d",
            db,
            "-v",
            "ON_ERROR_STOP=1",
            "-X",
            "-A",
            "-t",
            "-F",
            "\t",
            "-c",
            sql,
            timeout=30,
        )
        return [line.split("\t") for line in out.splitlines() if line]

    def stop(self) -> None:
        """Fast shutdown; if the server is still up, immediate shutdown, then SIGKILL."""
        pid_file = self.data / "postmaster.pid"
        if self.postmaster is None and pid_file.exists():  # started, but start() did not get to read it
            self.postmaster = int(pid_file.read_text().split()[0])
        try:
            if self.postmaster is not None:
                run(
                    [
                        *self.prefix,
                        str(self.bindir / "pg_ctl"),
                        "-D",
                        str(self.data),
                        "-m",
                        "fast",
                        "-w",
                        "-t",
                        "20",
                        "stop",
                    ],
                    dict(os.environ),
                    40,
                    cwd=self.base,
                )
                for sig in (signal.SIGQUIT, signal.SIGKILL):
                    if not alive(self.postmaster):
                        break
                    os.kill(self.postmaster, sig)
                    deadline = time.monotonic() + 10
                    while alive(self.postmaster) and time.monotonic() < deadline:
                        time.sleep(0.1)
                assert not alive(self.postmaster), f"postgres {self.postmaster} survived SIGKILL"
        finally:
            shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture(scope="module")
def pg(request) -> PostgresServer:
    bindir = postgres_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found in /usr/lib/postgresql/*/bin or PATH")
    server = PostgresServer(bindir)
    request.addfinalizer(server.stop)
    server.start()
    return server


# --- Dagster on it --------------------------------------------------------------------------------


class Deployment:
    def __init__(self, base: Path, env: dict, home: Path, dataset_dir: Path, cli_run_id: str):
        self.base, self.env, self.home, self.dataset_dir, self.cli_run_id = base, env, home, dataset_dir, cli_run_id


@pytest.fixture(scope="module")
def deployment(pg, tmp_path_factory) -> Deployment:
    password = secrets.token_hex(12)
    pg.psql(f"CREATE ROLE {ROLE} LOGIN PASSWORD '{password}'")
    pg.psql(f"CREATE DATABASE {DB} OWNER {ROLE}")

    base = tmp_path_factory.mktemp("pg_instance")
    home, tmp, root = base / "dagster_home", base / "tmp", base / "root"
    home.mkdir()
    tmp.mkdir()
    (home / "dagster.yaml").write_text(documented_dagster_yaml())
    recipe = write_recipe(base / "recipes", n=N, worlds=["nk", "rbc"])
    env = dagster_env(
        home,
        tmp,
        recipe,
        root,
        DAGSTER_PG_USERNAME=ROLE,
        DAGSTER_PG_PASSWORD=password,
        DAGSTER_PG_HOST="127.0.0.1",
        DAGSTER_PG_PORT=str(pg.port),
        DAGSTER_PG_DB=DB,
    )

    run_id = cli_materialize(env, ",".join(WORLD_ASSETS), partition="rbc")
    return Deployment(base, env, home, root / "tiny" / "0.1.0", run_id)


def test_wrong_password_is_refused(pg, deployment):
    """The server really checks passwords over TCP, so the next tests' success is the env credentials' doing."""
    env = dict(deployment.env, PGPASSWORD="not-the-password")
    exe = pg.bindir / "psql" if (pg.bindir / "psql").exists() else shutil.which("psql")
    done = run([str(exe), "-h", "127.0.0.1", "-p", str(pg.port), "-U", ROLE, "-d", DB, "-X", "-c", "select 1"], env, 30)
    assert done.returncode != 0 and "password authentication failed" in done.stdout, done.stdout


def test_cli_materialization_is_recorded_in_postgres(pg, deployment, monkeypatch):
    import dagster as dg

    for key in ("DAGSTER_PG_USERNAME", "DAGSTER_PG_PASSWORD", "DAGSTER_PG_HOST", "DAGSTER_PG_PORT", "DAGSTER_PG_DB"):
        monkeypatch.setenv(key, deployment.env[key])
    with dg.DagsterInstance.from_config(str(deployment.home)) as instance:
        storages = [
            type(s).__name__ for s in (instance.run_storage, instance.event_log_storage, instance.schedule_storage)
        ]
        assert storages == ["PostgresRunStorage", "PostgresEventLogStorage", "PostgresScheduleStorage"]
        run_ = instance.get_run_by_id(deployment.cli_run_id)
        assert run_ is not None and run_.status == dg.DagsterRunStatus.SUCCESS
        assert run_.tags.get("dagster/partition") == "rbc"
        group = zarr.open_group(deployment.dataset_dir / "rbc.zarr", mode="r")
        for name in WORLD_ASSETS:
            records = instance.fetch_materializations(dg.AssetKey(name), limit=10).records
            assert [(r.run_id, r.partition_key) for r in records] == [(deployment.cli_run_id, "rbc")], name
            meta = records[0].asset_materialization.metadata
            assert Path(meta["path"].value) == deployment.dataset_dir / "rbc.zarr"
            hashed = [k.split("/", 1)[1] for k in meta if k.startswith("sha256/")]
            assert hashed, name
            for array in hashed:
                assert meta[f"sha256/{array}"].value == content_hash(group[array]), f"{name}: sha256/{array}"

    # the same, read from the tables with psql (no Dagster code involved)
    rows = pg.psql(f"SELECT status FROM runs WHERE run_id = '{deployment.cli_run_id}'", db=DB)
    assert rows == [["SUCCESS"]]
    rows = pg.psql(
        f"SELECT asset_key, partition FROM event_logs WHERE run_id = '{deployment.cli_run_id}' "
        "AND dagster_event_type = 'ASSET_MATERIALIZATION' ORDER BY asset_key",
        db=DB,
    )
    assert [(key.strip('[]"'), part) for key, part in rows] == [(a, "rbc") for a in sorted(WORLD_ASSETS)]
    assert pg.psql("SELECT tableowner FROM pg_tables WHERE tablename = 'runs'", db=DB) == [[ROLE]]
    # and nothing went to the SQLite files of a default instance
    assert not [p for p in deployment.home.rglob("*") if p.suffix in (".db", ".sqlite")]


LAUNCH = """mutation($params: ExecutionParams!) { launchRun(executionParams: $params) { __typename
  ... on LaunchRunSuccess { run { runId } } ... on PythonError { message stack }
  ... on RunConfigValidationInvalid { errors { message } } ... on InvalidSubsetError { message } } }"""
RUN = """query($id: ID!) { runOrError(runId: $id) { __typename ... on Run { status } } }"""


def test_webserver_and_daemon_on_postgres(pg, deployment, request):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    groups: list[Group] = []
    request.addfinalizer(lambda: stop_all(groups))
    # the commands of docs/production.md, section 4 (loopback instead of 0.0.0.0, a free port)
    webserver = Group(
        [executable("dagster-webserver"), "-h", "127.0.0.1", "-p", str(port), "-w", "workspace.yaml"],
        deployment.base / "webserver.log",
        deployment.env,
        cwd=REPO,
    )
    groups.append(webserver)
    daemon = Group(
        [executable("dagster-daemon"), "run", "-w", "workspace.yaml"],
        deployment.base / "daemon.log",
        deployment.env,
        cwd=REPO,
    )
    groups.append(daemon)
    wait_location_loaded(url, webserver, 60)

    info = graphql(url, "{ instance { info } }")["instance"]["info"]
    assert "PostgresRunStorage" in info and "PostgresEventLogStorage" in info, info
    cli_run = graphql(url, RUN, {"id": deployment.cli_run_id})["runOrError"]
    assert cli_run == {"__typename": "Run", "status": "SUCCESS"}

    params = {
        "selector": {
            "repositoryLocationName": "macro_data",
            "repositoryName": "__repository__",
            "jobName": "build_world",
        },
        "executionMetadata": {"tags": [{"key": "dagster/partition", "value": "nk"}]},
        "runConfigData": IN_PROCESS,
    }
    launched = graphql(url, LAUNCH, {"params": params})["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["runId"]

    deadline = time.monotonic() + RUN_TIMEOUT_S
    status = None
    while time.monotonic() < deadline:
        status = graphql(url, RUN, {"id": run_id})["runOrError"]["status"]
        if status in ("SUCCESS", "FAILURE", "CANCELED"):
            break
        assert daemon.alive(), f"dagster-daemon exited:\n{daemon.log()}"
        time.sleep(1)
    assert status == "SUCCESS", f"run {run_id} is {status}:\n{daemon.log()}"

    # queued by the webserver, launched by the daemon: the run's events are rows in PostgreSQL
    events = {row[0] for row in pg.psql(f"SELECT dagster_event_type FROM event_logs WHERE run_id = '{run_id}'", db=DB)}
    assert {"PIPELINE_ENQUEUED", "PIPELINE_STARTING", "PIPELINE_SUCCESS", "ASSET_MATERIALIZATION"} <= events, events
    assert pg.psql(f"SELECT status FROM runs WHERE run_id = '{run_id}'", db=DB) == [["SUCCESS"]]
    daemons = {row[0] for row in pg.psql("SELECT DISTINCT daemon_type FROM daemon_heartbeats", db=DB)}
    assert "QUEUED_RUN_COORDINATOR" in daemons, daemons
    theta = zarr.open_group(deployment.dataset_dir / "nk.zarr", mode="r")["theta"]
    assert theta.shape[0] == N

    stop_all(groups)
    groups.clear()
    assert not group_members(webserver.pgid) and not group_members(daemon.pgid)
