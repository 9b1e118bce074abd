"""Resource: where datasets are written."""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from macro_data import paths


class DatasetRootResource(dg.ConfigurableResource):
    """The output root; datasets go to ``<root>/<recipe name>/<version>/``.

    Unset means ``$MACRO_DATA_ROOT`` at run time, else ``./datasets/build``. ``replace`` and
    ``force`` are the build policies of :mod:`macro_data.pipeline.release` and
    :mod:`macro_data.pipeline.stage`.
    """

    root: str | None = Field(default=None, description="Output root folder for generated datasets.")
    replace: bool = Field(
        default=False,
        description="Rebuild a published version from a different recipe (built beside it, swapped in by the "
        "manifest once complete). Without it, a recipe other than the version's is refused.",
    )
    force: bool = Field(
        default=False,
        description="Rebuild stages (and the manifest and report) even when what is published is up to date.",
    )

    def path(self) -> str:
        """The root as a string: a local path or an object-storage URL such as ``s3://bucket/prefix``.

        A root no stage could use (control characters such as NUL, an unknown URL scheme) fails the
        step with a message naming the setting, before anything is written.
        """
        root = self.root or str(paths.data_root())
        problem = root_problem(root)
        if problem is not None:
            where = "resource config storage.root" if self.root else "$MACRO_DATA_ROOT"
            raise dg.Failure(description=f"{where}: {problem}")
        return root


def root_problem(root: str) -> str | None:
    """Why ``root`` cannot hold datasets, or None."""
    if any(ord(c) < 32 or ord(c) == 127 for c in root):
        return f"{root!r} contains control characters"
    if "://" in root:
        import fsspec

        scheme = root.split("://", 1)[0]
        if scheme not in fsspec.available_protocols():
            return f"{root!r} has the unknown URL scheme {scheme!r} (object storage roots look like s3://bucket/prefix)"
    return None
