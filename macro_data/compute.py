"""Where a stage's regions are computed: this process, a local process pool, or a Dask cluster.

A stage splits its samples into disjoint regions aligned to storage chunks and seeding blocks
(:func:`macro_data.pipeline.common.plan_regions`); each region is one task that computes its
samples and writes its own part of the staging arrays, returning only small results (hash
segment digests and counts). Results do not depend on where or in which order regions run, so
every mode gives bit-identical data. A region that fails is retried up to ``retries`` times; if
it still fails, the stage raises and nothing is published.

Modes:

* ``local`` (default): regions run in this process, one after another or ``threads`` at once, or
  with ``processes = N`` in a pool of N worker processes on this machine. Within a region, reading
  the inputs ahead and encoding, hashing and writing the outputs run on threads of their own
  (that work releases the GIL), so a region already keeps about two cores busy; more threads add
  memory (one batch pipeline each) for little speed on a small machine.
* ``dask``: regions are mapped to the workers of a ``distributed`` cluster: an existing scheduler
  at ``scheduler`` (e.g. ``tcp://scheduler:8786``; every worker must see the dataset root and have
  this package installed), or, without an address, a ``LocalCluster`` of ``workers`` processes.
  Dask reschedules the tasks of a worker that dies; ``retries`` bounds re-runs of failing tasks.
"""

from __future__ import annotations

import atexit
import concurrent.futures as cf
import functools
import gc
import multiprocessing
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from macro_data.errors import MacroDataError
from macro_data.memory import limit_malloc_arenas, release_freed_memory

# Default number of worker processes for work split by world (world runs, validation, report
# plots): one per core, but each holds up to a few hundred MiB, so a large machine does not multiply
# that by its core count unasked.
MAX_DEFAULT_WORKERS = 4


def default_workers(limit: int = MAX_DEFAULT_WORKERS) -> int:
    """The cores this process may use, at most ``limit``."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, limit))


def _start_worker(initializer: Callable | None, initargs: tuple) -> None:
    atexit.register(gc.freeze)  # runs before the interpreter's final collection (see spawn_pool)
    if initializer is not None:
        initializer(*initargs)


def spawn_pool(workers: int, initializer: Callable | None = None, initargs: tuple = ()) -> cf.ProcessPoolExecutor:
    """A pool of ``workers`` fresh (spawned, not forked) worker processes, started on first use.

    Spawn: the caller may hold threads (Zarr's I/O loop, Dagster's) and open connections that a fork
    would copy mid-flight. Each worker runs ``initializer(*initargs)`` when it starts, and skips the
    interpreter's garbage collections when it exits: a worker that ran a Dagster run tracks about
    240,000 objects, the collections of its shutdown took about a second (0.1 s without them), and
    whoever shuts the pool down waits for that. Objects are still freed as their references go;
    only cyclic garbage left at exit is not collected, and the operating system reclaims the
    process's memory."""
    return cf.ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_start_worker,
        initargs=(initializer, initargs),
    )


class ComputeError(MacroDataError):
    """A region failed on every attempt."""


@dataclass(frozen=True)
class ComputeConfig:
    mode: Literal["local", "dask"] = "local"
    processes: int = 0  # local: 0 = in this process, N = a pool of N processes
    threads: int = 1  # local in this process: regions computed at once (memory: one batch pipeline per thread)
    scheduler: str | None = None  # dask: address of an existing scheduler
    workers: int = 2  # dask without a scheduler address: LocalCluster size
    retries: int = 2  # further attempts of a failed region
    region_samples: int = 16384  # target samples per region (rounded up to whole chunks and seeding blocks)

    def describe(self) -> str:
        if self.mode == "dask":
            return f"dask ({self.scheduler or f'LocalCluster of {self.workers} workers'})"
        return (
            f"local ({self.processes} processes)" if self.processes else f"local (in process, {self.threads} threads)"
        )


def _run_region(fn: Callable, job: Any) -> Any:
    """One attempt of a region on a Dask worker (Dask retries it)."""
    limit_malloc_arenas()
    try:
        return fn(job)
    finally:
        release_freed_memory()


def _attempts(fn: Callable, job: Any, retries: int) -> Any:
    limit_malloc_arenas()  # in pool workers too: a build opts in to the allocator policy, an import never does
    last: Exception | None = None
    for _ in range(retries + 1):
        try:
            return fn(job)
        except MacroDataError:
            raise  # bad input or a refused write: retrying cannot help
        except Exception as exc:  # noqa: BLE001 - any other failure of a region is retried, then reported
            last = exc
        finally:
            release_freed_memory()
    raise ComputeError(f"{job} failed {retries + 1} times; last error: {type(last).__name__}: {last}") from last


_clusters: dict[tuple, Any] = {}


def _dask_client(config: ComputeConfig):
    try:
        from distributed import Client, LocalCluster
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ComputeError(
            "compute mode 'dask' needs the 'distributed' package (pip install 'dask[distributed]')"
        ) from exc
    if config.scheduler:
        return Client(config.scheduler, set_as_default=False), False
    key = ("local", config.workers)
    if key not in _clusters:  # one cluster per process and size, reused by later stages
        cluster = LocalCluster(
            n_workers=config.workers, threads_per_worker=1, processes=True, dashboard_address=":0", silence_logs=40
        )
        _clusters[key] = (cluster, Client(cluster, set_as_default=False))
        atexit.register(_close_clusters)
    return _clusters[key][1], True


def _close_clusters() -> None:
    for cluster, client in _clusters.values():
        client.close()
        cluster.close()
    _clusters.clear()


def run_regions(
    fn: Callable[[Any], Any],
    jobs: Sequence[Any],
    config: ComputeConfig | None = None,
    on_done: Callable[[Any, Any], None] | None = None,
) -> list[Any]:
    """``[fn(job) for job in jobs]`` computed per ``config``; ``on_done(job, result)`` as each finishes."""
    config = config or ComputeConfig()
    limit_malloc_arenas()  # before the region threads start (see macro_data.memory)
    results: dict[int, Any] = {}

    def done(i: int, result: Any) -> None:
        results[i] = result
        if on_done is not None:
            on_done(jobs[i], result)

    if config.mode == "local" and config.processes <= 0 and config.threads <= 1:
        for i, job in enumerate(jobs):
            done(i, _attempts(fn, job, config.retries))
    elif config.mode == "local":
        if config.processes > 0:
            pool: cf.Executor = spawn_pool(config.processes)
        else:
            pool = cf.ThreadPoolExecutor(max_workers=config.threads, thread_name_prefix="region")
        try:
            futures = {pool.submit(_attempts, fn, job, config.retries): i for i, job in enumerate(jobs)}
            for fut in cf.as_completed(futures):
                done(futures[fut], fut.result())
        finally:
            pool.shutdown(wait=True, cancel_futures=True)  # on failure: drop queued regions, finish running ones
    elif config.mode == "dask":
        from distributed import as_completed

        client, shared = _dask_client(config)
        try:
            futures = client.map(functools.partial(_run_region, fn), list(jobs), retries=config.retries, pure=False)
            index = {f.key: i for i, f in enumerate(futures)}
            for fut in as_completed(futures, loop=client.loop):
                if fut.status != "finished":
                    try:
                        fut.result()
                    except Exception as exc:
                        client.cancel(futures)
                        raise ComputeError(
                            f"{jobs[index[fut.key]]} failed after {config.retries} retries on the "
                            f"cluster: {type(exc).__name__}: {exc}"
                        ) from exc
                done(index[fut.key], fut.result())
        finally:
            if not shared:
                client.close()
    else:
        raise ComputeError(f"unknown compute mode {config.mode!r} (known: local, dask)")
    return [results[i] for i in range(len(jobs))]
