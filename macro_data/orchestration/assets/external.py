"""Dagster assets of the external-data layer (group ``external``).

- ``external_dataset``: one partition per registry entry. The partitions are dynamic
  (:data:`EXTERNAL_PARTITIONS`): the registry is not read when the code location loads, so a
  malformed registry cannot stop it loading; the sensors of :mod:`macro_data.orchestration.sensors` add and remove
  partitions as entries are added and removed (no reload). Materializing a partition reads the
  registry, fetches and verifies the entry (see :mod:`macro_data.external.fetch`); a malformed
  registry fails the run with the registry's error (file, line or entry and field, problem). The
  metadata shows URL, mirror used, sha256, size, rows, columns and path; the data version is the
  file's sha256.
- ``cached_file_verified``: a blocking asset check that re-hashes every cached file of the registry
  (and archive members); in a partition's run that partition's file must be present and intact. A
  corrupt file is quarantined and the check fails. (The check is deliberately not partitioned:
  partitioned asset checks are a Dagster preview feature and cannot run on their own.)
- ``us_macro_moments``: the US macro table as canonical observables (output gap in percent,
  annualized inflation, annualized T-bill rate; see :mod:`macro_data.external.real_data`) and their
  moments, written to ``<root>/external/derived/us_macro_moments.json`` for checking simulated worlds
  against reality.

Module-level ``assets``, ``asset_checks`` and ``resources``; the registry file is the resource's
(``$MACRO_DATA_REGISTRY`` by default).
"""

import json
from pathlib import Path

import dagster as dg

from macro_data.external import real_data
from macro_data.external.errors import RegistryError
from macro_data.external.fetch import FetchResult
from macro_data.external.registry import Entry, Registry
from macro_data.files import atomic_write
from macro_data.orchestration.resources.external import ExternalDataResource
from macro_data.versioning import code_version

GROUP = "external"
SOURCE_ENTRY = real_data.SOURCE_ENTRY
MOMENTS_FILE = "us_macro_moments.json"
EXTERNAL_PARTITIONS = dg.DynamicPartitionsDefinition(name="external_dataset")
"""One partition per registry entry, kept in step with the registry by the sensors (no code reload)."""


def load_registry_or_fail(external_data: ExternalDataResource) -> Registry:
    """The resource's registry; a registry that does not load fails the step with its error (file, where, what)."""
    try:
        return external_data.registry()
    except RegistryError as exc:
        raise dg.Failure(description=f"the external-data registry cannot be used: {exc}") from exc


# Files whose content decides what each asset publishes (and so its code version).
def _fetch_metadata(entry: Entry, r: FetchResult) -> dict:
    md: dict = {
        "entry": dg.MetadataValue.text(entry.name),
        "description": dg.MetadataValue.text(entry.description),
        "cache": dg.MetadataValue.text(r.cache),
        "sha256": dg.MetadataValue.text(r.sha256),
        "size_bytes": dg.MetadataValue.int(r.size),
        "path": dg.MetadataValue.path(str(r.path)),
        "format": dg.MetadataValue.text(entry.format),
        "entry_sha256": dg.MetadataValue.text(r.entry_sha256),
        "license": dg.MetadataValue.text(entry.license or ""),
        "source": dg.MetadataValue.text(entry.source or ""),
        "attempts": dg.MetadataValue.int(len(r.attempts)),
        "seconds": dg.MetadataValue.float(round(r.seconds, 3)),
    }
    if r.url:
        md["url"] = dg.MetadataValue.url(r.final_url or r.url)
        md["mirror_index"] = dg.MetadataValue.int(r.mirror_index or 0)
        md["mirror_url"] = dg.MetadataValue.url(r.url)
        if r.redirects:
            md["redirects"] = dg.MetadataValue.json(r.redirects)
    else:
        md["url"] = dg.MetadataValue.text(f"(cache {r.cache}; see provenance for the original download)")
    t = r.table
    if t is not None:
        md["dagster/row_count"] = dg.MetadataValue.int(t.rows)
        md["rows"] = dg.MetadataValue.int(t.rows)
        md["columns"] = dg.MetadataValue.text(", ".join(t.columns))
        md["dagster/column_schema"] = dg.TableSchema(
            columns=[dg.TableColumn(c, "float" if c in t.numeric_columns else "string") for c in t.columns]
        )
        md["schema_check"] = dg.MetadataValue.text(t.summary())
    if r.members:
        md["members"] = dg.MetadataValue.json([m.to_dict() for m in r.members])
        md["members_path"] = dg.MetadataValue.path(str(r.members_dir))
    if r.quarantined:
        md["quarantined"] = dg.MetadataValue.json(r.quarantined)
    return md


def _atomic_json(path: Path, doc: dict) -> None:
    atomic_write(path, (json.dumps(doc, indent=1, sort_keys=True) + "\n").encode("utf-8"))


def _moments_markdown(summary: dict) -> str:
    lines = ["| observable | sd | autocorr(1) | units |", "|---|---|---|---|"]
    for name, m in summary["moments"]["observables"].items():
        lines.append(f"| {name} | {m['sd']:.3f} | {m['autocorr1']:.3f} | {summary['units'][name]} |")
    return "\n".join(lines)


def build_external_assets(source_entry: str = SOURCE_ENTRY) -> tuple[list, list]:
    """``(assets, asset_checks)``: ``us_macro_moments`` is computed from the entry ``source_entry``."""

    @dg.asset(
        name="external_dataset",
        partitions_def=EXTERNAL_PARTITIONS,
        group_name=GROUP,
        kinds={"csv", "http"},
        code_version=code_version("external_dataset"),
        description="A reference dataset from datasets/external.yaml (one partition per entry), downloaded from "
        "its mirrors and verified (size, sha256, archive members, CSV header) before use; "
        "provenance in <root>/external/provenance.jsonl.",
    )
    def external_dataset(
        context: dg.AssetExecutionContext, external_data: ExternalDataResource
    ) -> dg.MaterializeResult:
        name = context.partition_key
        try:
            entry = load_registry_or_fail(external_data).get(name)
        except RegistryError as exc:  # a partition whose entry was removed from the registry
            raise dg.Failure(description=str(exc)) from exc
        result = external_data.fetch(name, run_id=context.run.run_id)
        context.log.info(f"{name}: {result.cache}, sha256 {result.sha256}, {result.size} bytes at {result.path}")
        return dg.MaterializeResult(metadata=_fetch_metadata(entry, result), data_version=dg.DataVersion(result.sha256))

    @dg.asset_check(
        asset=external_dataset,
        name="cached_file_verified",
        blocking=True,
        description="Re-hashes the cached files of the registry (and extracted archive members) against their "
        "sha256 and size; in a partition's run, that partition's file must be present and intact. A "
        "corrupt file is quarantined (so the next materialization downloads it again) and fails the check.",
    )
    def cached_file_verified(
        context: dg.AssetCheckExecutionContext, external_data: ExternalDataResource
    ) -> dg.AssetCheckResult:
        partition = context.run.tags.get("dagster/partition")
        load_registry_or_fail(external_data)
        statuses = external_data.verify_all(run_id=context.run.run_id)
        by_name = {st.name: st for st in statuses}
        corrupt = [st.name for st in statuses if not st.ok]
        problems = [f"{n}: corrupt ({by_name[n].detail})" for n in corrupt]
        if partition is not None:
            st = by_name.get(partition)
            if st is None:
                problems.append(f"{partition}: not in the registry")
            elif st.status not in ("ok", "member-repaired"):
                problems.append(f"{partition}: {st.status} ({st.detail})")
        counts: dict[str, int] = {}
        for st in statuses:
            counts[st.status] = counts.get(st.status, 0) + 1
        summary = ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
        return dg.AssetCheckResult(
            passed=not problems,
            description="; ".join(problems) or f"cache intact: {summary}",
            metadata={
                "partition": partition or "(all)",
                "counts": dg.MetadataValue.json(counts),
                "problems": dg.MetadataValue.json(problems),
                "entries": dg.MetadataValue.json(
                    {st.name: {"status": st.status, "detail": st.detail, "path": str(st.path or "")} for st in statuses}
                ),
            },
        )

    @dg.asset(
        name="us_macro_moments",
        group_name=GROUP,
        kinds={"python", "json"},
        code_version=code_version("us_macro_moments"),
        deps=[dg.AssetDep(external_dataset, partition_mapping=dg.SpecificPartitionsPartitionMapping([source_entry]))],
        description="US quarterly data 1959Q2-2009Q3 as the canonical observables (output: 100 x log deviation "
        "of real GDP from its HP trend, lambda 1600; inflation: 400 x dlog CPI; rate: 3-month "
        "T-bill, annualized; inflation and rate as deviations from their means) with sd and "
        "first-order autocorrelation per observable, for checking simulated worlds against reality.",
    )
    def us_macro_moments(
        context: dg.AssetExecutionContext, external_data: ExternalDataResource
    ) -> dg.MaterializeResult:
        entry = load_registry_or_fail(external_data).get(source_entry)
        result = external_data.fetch(source_entry, run_id=context.run.run_id)
        summary = real_data.summarize(
            result.path, source_name=source_entry, source_sha256=result.sha256, options=entry.csv
        )
        out = external_data.root() / "external" / "derived" / MOMENTS_FILE
        _atomic_json(out, summary)
        md = {
            "path": dg.MetadataValue.path(str(out)),
            "source_sha256": dg.MetadataValue.text(result.sha256),
            "sample": dg.MetadataValue.text(
                f"{summary['sample']['start']}-{summary['sample']['end']} ({summary['sample']['quarters']} quarters)"
            ),
            "output_method": dg.MetadataValue.text(f"{summary['output_method']} (lambda {summary['hp_lambda']})"),
            "moments": dg.MetadataValue.md(_moments_markdown(summary)),
            "correlation": dg.MetadataValue.json(summary["moments"]["correlation"]),
            "levels_mean": dg.MetadataValue.json(summary["levels_mean"]),
        }
        for name, m in summary["moments"]["observables"].items():
            md[f"{name}_sd"] = dg.MetadataValue.float(m["sd"])
            md[f"{name}_autocorr1"] = dg.MetadataValue.float(m["autocorr1"])
        return dg.MaterializeResult(metadata=md, data_version=dg.DataVersion(summary["summary_sha256"]))

    return [external_dataset, us_macro_moments], [cached_file_verified]


assets, asset_checks = build_external_assets()
resources = {"external_data": ExternalDataResource()}

__all__ = ["EXTERNAL_PARTITIONS", "GROUP", "asset_checks", "assets", "build_external_assets", "resources"]
