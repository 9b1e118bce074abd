"""Automation policy of the all-worlds assets, applied in one place (``definitions.py``).

``DATASET_CONDITION`` is Dagster's ``eager()`` condition gated on the upstream blocking checks:
an all-worlds asset (manifest, validation report) is requested once, when

* at least one upstream world partition was updated since it was last handled, and
* no upstream partition is missing or has a run queued or in progress, and
* every blocking check of the upstream partitions passed.

The scheduled backfill queues one run per world at the same tick, so all of them are "in progress"
until the last one finishes; the manifest is then requested exactly once, after all world
partitions are fresh, and not before. A single world rebuilt by hand also triggers a rebuild (the
manifest itself refuses an inconsistent dataset). The world partitions are every world of the
catalog (built-ins and model files), so for a recipe with a subset of them (the shipped ``default``
and ``paper`` recipes leave out the model-file worlds) the never-built partitions count as missing
and automation waits: build such datasets with ``macro-data build`` or the ``build_dataset_files``
job. Conditions are evaluated by the daemon's
``default_automation_condition_sensor`` (``dagster dev`` starts a daemon; switch the sensor on in
the UI under Automation).
"""

import dagster as dg

DATASET_CONDITION = (
    dg.AutomationCondition.eager() & dg.AutomationCondition.all_deps_blocking_checks_passed()
).with_label("all world partitions fresh, none in progress, blocking checks passed")
