"""The Dagster shell: assets, asset checks, partitions, jobs, schedules, sensors, automation and
resources, assembled in :mod:`.definitions`. Everything here only wires the plain-Python core
(``worlds``, ``storage``, ``pipeline``, ``validation``, ``external``) together and attaches metadata;
no core module imports this package (an import contract in ``pyproject.toml`` checks it).

Not named ``defs``: ``macro_data.defs`` is the code location's Definitions object, which Dagster's
module loader (``-m macro_data``) finds as an attribute of the package.
"""
