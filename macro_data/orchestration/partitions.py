"""Partitions of the asset graph: one partition per world of the catalog.

The catalog (built-ins, model files, registered worlds) is read when the code location loads, so
a new model file appears as a partition after a reload of the code location (no code change). A
broken model file is still a partition: materializing it fails with the file's error.
"""

import dagster as dg

from macro_data.worlds import world_ids

world_partitions = dg.StaticPartitionsDefinition(list(world_ids()))
