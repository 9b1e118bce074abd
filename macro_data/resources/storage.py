"""Resource: where datasets are written."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from pydantic import Field

from macro_data import paths


class DatasetRootResource(dg.ConfigurableResource):
    """The output root; datasets go to ``<root>/<recipe name>/<version>/``.

    Unset means ``$MACRO_DATA_ROOT`` at run time, else ``datasets/build`` under the project.
    """

    root: str | None = Field(default=None, description="Output root folder for generated datasets.")

    def path(self) -> Path:
        return Path(self.root) if self.root else paths.data_root()
