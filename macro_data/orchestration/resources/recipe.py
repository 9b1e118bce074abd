"""Resource: which dataset recipe a run builds."""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from macro_data.recipes import Recipe, load_recipe


class RecipeResource(dg.ConfigurableResource):
    """The recipe to build: a name in ``datasets/recipes/`` or a path.

    Unset means ``$MACRO_DATA_RECIPE`` at run time, else ``default``.
    """

    recipe: str | None = Field(default=None, description="Recipe name in datasets/recipes/ or a path to a YAML file.")

    def load(self) -> Recipe:
        return load_recipe(self.recipe)
