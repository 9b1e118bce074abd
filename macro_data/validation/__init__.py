"""Validation of macro_data datasets: plain Python (no Dagster), one module per concern.

- :mod:`.results`          :class:`CheckResult` (name, group, world, severity, status, figures, message)
- :mod:`.spec`             what a world's store should hold (from a recipe or a manifest)
- :mod:`.integrity`        arrays open, layouts, chunks decode (crc32c), no NaN/Inf, content hashes
- :mod:`.consistency`      parameters valid, splits right, manifest agrees with the stores
- :mod:`.reproducibility`  a seed-chosen subset redrawn and re-simulated from scratch, bit for bit
- :mod:`.identities`       convolution identity (linear worlds), zero lower bound, regime labels
- :mod:`.statistics`       warning level: stationarity, scale, IRF decay, rejections, splits, zlb, regimes
- :mod:`.realism`          warning level: real US moments against each world's distribution
- :mod:`.score`            the 0-100 quality score (formula in its docstring)
- :mod:`.dataset`          validate a dataset folder: every check, every world
- :mod:`.report`           the JSON document (``schemas/validation_report.schema.json``) and text summaries
- :mod:`.html`             the self-contained HTML page

Error-level groups (integrity, consistency, reproducibility, identities) decide whether the data
may be used; warning-level groups (statistics, realism) flag data that is intact but looks odd.
The Dagster asset checks (:mod:`macro_data.orchestration.checks`), the ``validation_report`` asset and
``macro-data validate`` are thin layers over these modules.
"""
