"""Resource: where a world's regions are computed (this process, a process pool, or Dask)."""

from __future__ import annotations

import os

import dagster as dg
from pydantic import Field

from macro_data.compute import ComputeConfig, ComputeError


class ComputeResource(dg.ConfigurableResource):
    """Compute mode of the world stages; see :mod:`macro_data.compute`.

    Unset fields fall back to environment variables at run time: ``MACRO_DATA_COMPUTE`` (``local`` or
    ``dask``), ``MACRO_DATA_PROCESSES``, ``MACRO_DATA_THREADS``, ``MACRO_DATA_DASK_SCHEDULER`` and
    ``MACRO_DATA_DASK_WORKERS``.
    """

    mode: str | None = Field(default=None, description="local (default) or dask")
    processes: int | None = Field(default=None, description="local mode: worker processes (0 = this process)")
    threads: int | None = Field(default=None, description="local mode in this process: regions computed at once")
    scheduler: str | None = Field(default=None, description="dask mode: scheduler address, e.g. tcp://host:8786")
    workers: int | None = Field(default=None, description="dask mode without a scheduler: LocalCluster workers")
    retries: int = Field(default=2, description="further attempts of a failed region before the stage fails")
    region_samples: int = Field(default=16384, description="samples per task (rounded up to whole chunks and blocks)")

    def config(self) -> ComputeConfig:
        env = os.environ
        mode = self.mode or env.get("MACRO_DATA_COMPUTE", "local")
        if mode not in ("local", "dask"):
            raise ComputeError(
                f"compute mode must be 'local' or 'dask' (resource config compute.mode or "
                f"$MACRO_DATA_COMPUTE); got {mode!r}"
            )

        def number(field: str, value: int | None, var: str, default: str, minimum: int) -> int:
            # out-of-range values are refused, not reinterpreted (workers=0 would wait for a worker forever)
            where = f"resource config compute.{field}" if value is not None else f"${var}"
            if value is None:
                try:
                    value = int(env.get(var, default))
                except ValueError:
                    raise ComputeError(f"{where} must be an integer; got {env.get(var)!r}") from None
            if value < minimum:
                raise ComputeError(f"{where} must be >= {minimum}; got {value}")
            return value

        return ComputeConfig(
            mode=mode,  # type: ignore[arg-type]
            processes=number("processes", self.processes, "MACRO_DATA_PROCESSES", "0", 0),
            threads=number("threads", self.threads, "MACRO_DATA_THREADS", "1", 1),
            scheduler=self.scheduler or env.get("MACRO_DATA_DASK_SCHEDULER") or None,
            workers=number("workers", self.workers, "MACRO_DATA_DASK_WORKERS", "2", 1),
            retries=number("retries", self.retries, "", "", 0),
            region_samples=number("region_samples", self.region_samples, "", "", 1),
        )
