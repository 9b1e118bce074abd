"""Importing the package or any core module changes no process-wide setting; a build opts in.

Each check runs in a fresh interpreter, so nothing imported earlier by the test session counts.
The allocator probe is itself checked: after the build's explicit opt-in it must see the change.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

# The package itself, and every module of the core, the reading side and the CLI (walked); the
# Dagster shell is left to Dagster's own import behaviour.
CORE = [
    "macro_data",
    "macro_data.read",
    "macro_data.worlds",
    "macro_data.storage",
    "macro_data.pipeline",
    "macro_data.validation",
    "macro_data.external",
    "macro_data.cli",
    "macro_data.compute",
    "macro_data.memory",
    "macro_data.recipes",
    "macro_data.splits",
    "macro_data.progress",
]
# Third-party libraries the core imports: what they set on import is theirs, so it is in place
# before the first snapshot.
DEPENDENCIES = [
    "numpy",
    "scipy.linalg",
    "scipy.sparse.linalg",
    "scipy.optimize",
    "numba",
    "zarr",
    "numcodecs",
    "google_crc32c",
    "jsonschema",
    "requests",
    "urllib3",
    "yaml",
    "ruamel.yaml",
    "filelock",
]

PROBE = textwrap.dedent("""
    import ctypes, json, logging, os, pkgutil, signal, sys, tempfile, threading, warnings, importlib

    def settings():
        root = logging.getLogger()
        try:
            import numpy as np
            np_err, np_print = np.geterr(), np.get_printoptions()
        except ImportError:
            np_err = np_print = None
        umask = os.umask(0o022); os.umask(umask)
        return {
            "environ": dict(os.environ),
            "signals": {s.name: repr(signal.getsignal(s)) for s in signal.valid_signals()
                        if isinstance(s, signal.Signals)},
            "root_logger": [root.level, [repr(h) for h in root.handlers]],
            "warnings": [repr(f) for f in warnings.filters],
            "excepthook": repr(sys.excepthook),
            "numpy": [repr(np_err), repr(np_print)],
            "umask": umask,
            "cwd": os.getcwd(),
            "threads": sorted(t.name for t in threading.enumerate()),
        }

    def malloc_heaps():
        # Four threads malloc at once; glibc gives each a new arena unless arenas are capped.
        libc = ctypes.CDLL(None)
        if not hasattr(libc, "malloc_info"):
            return None
        libc.malloc.restype = ctypes.c_void_p
        libc.free.argtypes = [ctypes.c_void_p]
        barrier = threading.Barrier(5)
        blocks = []
        def work():
            blocks.append(libc.malloc(4096))
            barrier.wait()
            barrier.wait()
        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads:
            t.start()
        barrier.wait()
        libc.fopen.restype = ctypes.c_void_p
        libc.fopen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
        libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
        libc.fclose.argtypes = [ctypes.c_void_p]
        path = tempfile.mktemp()
        fp = libc.fopen(path.encode(), b"w")
        libc.malloc_info(0, fp)
        libc.fclose(fp)
        barrier.wait()
        for t in threads:
            t.join()
        for b in blocks:
            libc.free(b)
        text = open(path).read()
        os.unlink(path)
        return text.count("<heap nr=")

    deps, ours = sys.argv[2].split(","), sys.argv[3:]
    for name in deps:
        importlib.import_module(name)
    before = settings()
    for name in ours:
        module = importlib.import_module(name)
        if name != "macro_data":  # the package's own __init__ only; its subpackages are listed
            for info in pkgutil.walk_packages(getattr(module, "__path__", []), name + "."):
                if not info.name.endswith(".__main__"):  # a program, not a module to import
                    importlib.import_module(info.name)
    after = settings()
    if sys.argv[1] == "opt-in":
        from macro_data.memory import limit_malloc_arenas
        limit_malloc_arenas()
    print(json.dumps({"changed": {k: [before[k], after[k]] for k in before if before[k] != after[k]},
                      "heaps": malloc_heaps()}))
""")


def probe(mode: str, modules: list[str]) -> dict:
    env = {k: v for k, v in __import__("os").environ.items() if k != "MALLOC_ARENA_MAX"}
    out = subprocess.run(
        [sys.executable, "-c", PROBE, mode, ",".join(DEPENDENCIES), *modules],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_importing_the_core_changes_no_process_setting():
    seen = probe("import", CORE)
    assert seen["changed"] == {}, seen["changed"]
    if seen["heaps"] is None:
        pytest.skip("no glibc malloc_info here: allocator settings cannot be observed")
    assert seen["heaps"] > 1, f"threads share {seen['heaps']} malloc arena(s) after a mere import"


def test_a_build_opts_in_to_the_allocator_policy_and_the_probe_sees_it():
    seen = probe("opt-in", ["macro_data.memory"])
    if seen["heaps"] is None:
        pytest.skip("no glibc malloc_info here: allocator settings cannot be observed")
    assert seen["heaps"] == 1
