"""World ids: the built-ins and the rule every other id follows."""

import re

BUILTIN_IDS: tuple[str, ...] = ("lss", "var", "nk", "rbc", "switching", "zlb")
# Ids become partition keys, store names (<world>.zarr) and schema keys: keep them path- and key-safe.
WORLD_ID = re.compile(r"[a-z][a-z0-9_]{0,63}")
