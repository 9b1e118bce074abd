"""Resource: where datasets are written."""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from macro_data import paths


class DatasetRootResource(dg.ConfigurableResource):
    """The output root; datasets go to ``<root>/<recipe name>/<version>/``.

    Unset means ``$MACRO_DATA_ROOT`` at run time, else ``datasets/build`` under the project.
    """

    root: str | None = Field(default=None, description="Output root folder for generated datasets.")

    def path(self) -> str:
        """The root as a string: a local path or an object-storage URL such as ``s3://bucket/prefix``."""
        return self.root or str(paths.data_root())
