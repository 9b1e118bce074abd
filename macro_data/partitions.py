"""Partitions of the asset graph: one partition per simulator world."""

import dagster as dg

from macro_data.worlds import WORLD_IDS

world_partitions = dg.StaticPartitionsDefinition(list(WORLD_IDS))
