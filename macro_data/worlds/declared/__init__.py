"""Declared worlds: linear rational-expectations models written in a YAML model file.

A researcher writes ``datasets/worlds/<world>.yaml`` (format: ``docs/declared_worlds.md``,
schema: ``schemas/world.schema.json``) and :func:`load_world_file` returns a
:class:`DeclaredWorld` that solves it for a whole batch of parameter draws at once. Modules:
:mod:`.expressions` (tokenizer, parser, linear forms, compiler), :mod:`.model_file` (loading and
validation), :mod:`.system` (the canonical-form matrices), :mod:`.solver` (the batched solution),
:mod:`.simulation` (trajectories and IRFs) and :mod:`.world` (the World). No Dagster import here.
"""

from macro_data.errors import WorldFileError
from macro_data.worlds.declared.world import DeclaredWorld, load_world_file

__all__ = ["DeclaredWorld", "WorldFileError", "load_world_file"]
