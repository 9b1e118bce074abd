"""Helpers for the operations tests: real servers in their own process groups, stopped for sure.

Every process the tests start (``dagster dev``, ``dagster-webserver``, ``dagster-daemon``, the Dagster
CLI, Chromium) leads a new session/process group and is stopped by group id: SIGTERM, then
SIGKILL after a bound, then a check that no live process of the group is left. (PostgreSQL
detaches from its group by design; test_postgres.py stops it with pg_ctl and its postmaster pid.)
Temporary files of those processes (Dagster's gRPC sockets and workspace files) go to a
``TMPDIR`` inside the test's own temporary directory.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import requests
import yaml
import zarr

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
TERM_GRACE_S = 20.0  # dagster dev forwards the shutdown to webserver/daemon and waits for them
KILL_GRACE_S = 5.0


def executable(name: str) -> str:
    """An entry point of this environment (next to the running Python), else from PATH."""
    candidate = BIN / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"executable {name!r} not found next to {sys.executable} nor on PATH")
    return found


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _sigint_not_ignored() -> None:
    # Children inherit an ignored SIGINT (as in a shell's background job), and Dagster maps SIGTERM
    # onto its SIGINT handler, so it would ignore SIGTERM too. A handled SIGINT resets to the
    # default in the child at exec. (No preexec_fn: it is unsafe with threads.)
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes whose process group is ``pgid``."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # fields after the parenthesised command: state ppid pgrp ...
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            members.append(int(entry.name))
    return members


class Group:
    """A command running as the leader of its own process group, its output in a log file."""

    def __init__(self, cmd: list[str], log: Path, env: dict | None = None, cwd: Path | None = None):
        self.cmd, self.log_path = cmd, log
        self._log = open(log, "wb")  # noqa: SIM115 - open as long as the process runs
        _sigint_not_ignored()
        # a new session: the child leads its own process group
        self.proc = subprocess.Popen(
            cmd,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
        self.pgid = self.proc.pid

    def log(self, tail: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-tail:]
        except OSError:
            return ""

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> list[int]:
        """SIGTERM the group, SIGKILL what is left after a bound; returns pids that survived both."""
        deadline = time.monotonic() + TERM_GRACE_S
        self._signal(signal.SIGTERM)
        while time.monotonic() < deadline and group_members(self.pgid):
            self._reap()
            time.sleep(0.2)
        if group_members(self.pgid):
            self._signal(signal.SIGKILL)
            deadline = time.monotonic() + KILL_GRACE_S
            while time.monotonic() < deadline and group_members(self.pgid):
                self._reap()
                time.sleep(0.1)
        self._reap(block=True)
        self._log.close()
        return group_members(self.pgid)

    def _signal(self, sig: int) -> None:
        try:
            os.killpg(self.pgid, sig)
        except ProcessLookupError:
            pass

    def _reap(self, block: bool = False) -> None:
        try:
            self.proc.wait(timeout=KILL_GRACE_S if block else 0)
        except subprocess.TimeoutExpired:
            pass


def run(cmd: list[str], env: dict, timeout: float, cwd: Path = REPO) -> subprocess.CompletedProcess:
    """Run a command to completion in its own process group; on timeout, kill the whole group."""
    _sigint_not_ignored()
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env,
        cwd=cwd,
        start_new_session=True,
        text=True,
        errors="replace",
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"{' '.join(cmd[:4])} ... did not finish in {timeout:.0f}s:\n{out[-3000:]}")
    finally:
        if group_members(proc.pid):  # children left behind by the command
            os.killpg(proc.pid, signal.SIGKILL)
    return subprocess.CompletedProcess(cmd, proc.returncode, out, "")


def run_ok(cmd: list[str], env: dict, timeout: float, cwd: Path = REPO) -> str:
    done = run(cmd, env, timeout, cwd)
    assert done.returncode == 0, f"{' '.join(cmd)} exited {done.returncode}:\n{done.stdout[-4000:]}"
    return done.stdout


# Runs execute in one process: the code location's executor (macro_data.orchestration.definitions) is the
# in-process one; the run config states it with its defaults.
IN_PROCESS = {"execution": {"config": {}}}
RUN_ID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def cli_materialize(env: dict, select: str, partition: str | None = None, timeout: float = 90) -> str:
    """``dagster asset materialize -m macro_data`` in a subprocess; returns the id of its successful run."""
    import json

    cmd = [
        executable("dagster"),
        "asset",
        "materialize",
        "-m",
        "macro_data",
        "--select",
        select,
        "--config-json",
        json.dumps(IN_PROCESS),
    ]
    if partition:
        cmd += ["--partition", partition]
    out = run_ok(cmd, env, timeout)
    ids = re.findall(rf" - ({RUN_ID}) - \d+ - RUN_SUCCESS", out)
    assert len(ids) == 1, f"no single RUN_SUCCESS in the output of {' '.join(cmd)}:\n{out[-3000:]}"
    return ids[0]


def dagster_env(home: Path, tmp: Path, recipe: Path, root: Path, **extra: str) -> dict:
    """The environment of a Dagster process: its instance, recipe, data root and a private TMPDIR."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "MACRO_DATA_"))}
    # offline: nothing in these tests may reach beyond loopback
    env.update(
        DAGSTER_HOME=str(home),
        MACRO_DATA_RECIPE=str(recipe),
        MACRO_DATA_ROOT=str(root),
        TMPDIR=str(tmp),
        MACRO_DATA_OFFLINE="1",
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        PYTHONUNBUFFERED="1",
        **extra,
    )
    return env


def write_instance_yaml(home: Path, **settings) -> Path:
    """``dagster.yaml`` of a test instance: no telemetry, no first-visit dialog, plus ``settings``."""
    home.mkdir(parents=True, exist_ok=True)
    doc = {"telemetry": {"enabled": False}, "nux": {"enabled": False}, **settings}
    path = home / "dagster.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def wait_http(url: str, server: Group, timeout: float) -> requests.Response:
    """Poll ``url`` until it answers 200; fail early if the server process died."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if not server.alive():
            pytest.fail(f"server exited with {server.proc.returncode} before answering {url}:\n{server.log()}")
        try:
            r = requests.get(url, timeout=2)
            if r.status_code == 200:
                return r
            last = f"HTTP {r.status_code}"
        except requests.RequestException as exc:
            last = repr(exc)
        time.sleep(0.5)
    pytest.fail(f"{url} not answering after {timeout:.0f}s ({last}):\n{server.log()}")


def graphql(base: str, query: str, variables: dict | None = None) -> dict:
    r = requests.post(f"{base}/graphql", json={"query": query, "variables": variables or {}}, timeout=30)
    r.raise_for_status()
    body = r.json()
    assert not body.get("errors"), body["errors"]
    return body["data"]


def wait_location_loaded(url: str, server: Group, timeout: float) -> None:
    """Wait until the webserver answers and its code locations have a final load status."""
    deadline = time.monotonic() + timeout
    wait_http(f"{url}/server_info", server, timeout)
    # the webserver answers before the code server has loaded the location
    while True:
        data = graphql(url, "{ workspaceOrError { ... on Workspace { locationEntries { loadStatus } } } }")
        statuses = [e["loadStatus"] for e in data["workspaceOrError"]["locationEntries"]]
        if statuses and "LOADING" not in statuses:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"code location still loading after {timeout:.0f}s:\n{server.log()}")
        time.sleep(0.5)


def stop_all(groups: list[Group]) -> None:
    """Stop the groups in reverse start order; fail if any process survived SIGKILL."""
    survivors = {" ".join(g.cmd[:2]): g.stop() for g in reversed(groups)}
    assert not any(survivors.values()), f"processes survived SIGKILL: {survivors}"


def content_hash(array: zarr.Array) -> str:
    """The array's content hash, recomputed from its decoded values per the algorithm it declares."""
    values = np.asarray(array[...])
    le = np.ascontiguousarray(values, dtype=values.dtype.newbyteorder("<"))
    algorithm = array.attrs.get("hash_algorithm")
    if algorithm == "sha256-segments-256/v1":
        digests = b"".join(hashlib.sha256(le[i : i + 256].tobytes()).digest() for i in range(0, le.shape[0], 256))
        return hashlib.sha256(digests).hexdigest()
    if algorithm in (None, "sha256-c-order-le/v1"):
        return hashlib.sha256(le.tobytes()).hexdigest()
    pytest.fail(f"unknown hash algorithm {algorithm!r}: teach this test to recompute it")


# --- headless browser -------------------------------------------------------------------------

BROWSER_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
WINDOW = (1400, 1000)


def browser() -> str | None:
    for path in BROWSER_CANDIDATES:
        if os.access(path, os.X_OK):
            return path
    return None


def chromium(url: str, profile: Path, env: dict, *action: str, budget_ms: int = 15000, timeout: float = 60) -> str:
    """Run headless Chromium once on ``url`` (``action``: ``--screenshot=PATH`` or ``--dump-dom``); returns stdout."""
    exe = browser()
    if exe is None:
        pytest.skip("no headless browser (/usr/bin/chromium) on this machine")
    cmd = [
        exe,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
        f"--virtual-time-budget={budget_ms}",
        *action,
        url,
    ]
    done = run(cmd, env, timeout)
    assert done.returncode == 0, f"chromium exited {done.returncode} on {url}:\n{done.stdout[-3000:]}"
    return done.stdout


def page_text(dom: str) -> str:
    """Visible text of a dumped DOM: scripts and styles dropped, tags turned into spaces."""
    dom = re.sub(r"(?is)<(script|style)\b.*?</\1>", " ", dom)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", dom))


def image_stats(png: Path) -> dict:
    """What tells a rendered page from a blank one: size, distinct colours, luminance spread, ink."""
    from PIL import Image

    with Image.open(png) as im:
        rgb = im.convert("RGB")
    pixels = np.asarray(rgb, dtype=np.uint8).reshape(-1, 3)
    packed = (pixels[:, 0].astype(np.uint32) << 16) | (pixels[:, 1].astype(np.uint32) << 8) | pixels[:, 2]
    values, counts = np.unique(packed, return_counts=True)
    lum = np.asarray(rgb.convert("L"), dtype=np.float64)
    return {
        "size": rgb.size,
        "colours": int(values.size),
        "lum_std": float(lum.std()),
        "ink": float(1.0 - counts.max() / packed.size),
    }  # share of pixels not in the dominant colour


def assert_not_blank(png: Path) -> dict:
    s = image_stats(png)
    assert s["size"] == WINDOW, s
    assert s["colours"] >= 64 and s["lum_std"] >= 8.0 and s["ink"] >= 0.03, f"{png.name} looks blank: {s}"
    return s
