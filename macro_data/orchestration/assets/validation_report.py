"""Asset ``validation_report``: every validation check on the whole dataset, as JSON and HTML.

Writes ``validation_report.json`` (validated against ``schemas/validation_report.schema.json``)
and the self-contained ``validation_report.html`` next to ``manifest.json``, both atomically. The
report is written even when checks fail (it says what failed and where); the blocking
``validation_report / passed`` check in :mod:`macro_data.orchestration.checks` then fails the run.
"""

import hashlib
import json

import dagster as dg

from macro_data.errors import MacroDataError
from macro_data.orchestration import groups
from macro_data.orchestration.assets.dataset_manifest import dataset_manifest
from macro_data.orchestration.resources.recipe import RecipeResource
from macro_data.orchestration.resources.storage import DatasetRootResource
from macro_data.storage import locations
from macro_data.validation import html as html_report
from macro_data.validation.dataset import validate_dataset
from macro_data.validation.report import (
    REPORT_HTML,
    REPORT_JSON,
    all_checks,
    build_report,
    headline,
    published_report,
    summary_markdown,
    write_report,
)
from macro_data.versioning import code_version

CODE_VERSION = code_version("validation_report")


def _link(location: str):
    return dg.MetadataValue.url(location) if locations.is_remote(location) else dg.MetadataValue.path(location)


def validation_report_asset(real_data: dg.AssetKey | None = None) -> dg.AssetsDefinition:
    """The asset; ``real_data``: the key of the external real-data asset to depend on, once it is wired
    into the code location (e.g. ``AssetKey("us_macro_moments")``); the report reads the verified
    file from the external-data cache either way."""
    deps = [dataset_manifest, *([real_data] if real_data is not None else [])]

    @dg.asset(
        name="validation_report",
        deps=deps,
        group_name=groups.DATASET,
        kinds={"python", "json", "html"},
        tags={"stage": "validation"},
        code_version=CODE_VERSION,
        description=(
            "Validation of the whole dataset: integrity, consistency, reproducibility (re-simulation from scratch), "
            "model identities, statistical sanity and realism against real US data, per world, with a 0-100 "
            "quality score. Writes validation_report.json (schemas/validation_report.schema.json) and a "
            "self-contained validation_report.html (summary, parameter histograms against priors, sample paths, "
            "IRF fan charts, split composition, realism, provenance) next to manifest.json."
        ),
    )
    def validation_report(context: dg.AssetExecutionContext, recipe: RecipeResource, storage: DatasetRootResource):
        try:
            loaded = recipe.load()
            dataset_dir = loaded.dataset_dir(storage.path())
            doc = None if storage.force else published_report(dataset_dir, CODE_VERSION)
            up_to_date = doc is not None
            if doc is None:
                # the world checks the world runs' asset checks computed on this very data are reused
                # (a forced run recomputes everything)
                v = validate_dataset(
                    dataset_dir, external_root=storage.path(), log=context.log.info, reuse=not storage.force
                )
                doc = build_report(v, run_id=context.run.run_id, code_version=CODE_VERSION)
                page = html_report.render(doc, dataset_dir, v.manifest, v.real)
                json_path, html_path = write_report(dataset_dir, doc, page)
            else:
                context.log.info("validation report is up to date for the current manifest: nothing rewritten")
                json_path = locations.join(dataset_dir, REPORT_JSON)
                html_path = locations.join(dataset_dir, REPORT_HTML)
        except MacroDataError as exc:
            raise dg.Failure(description=f"validation_report: {exc}") from exc
        # data version: what the report concludes about which data (not when or how fast)
        verdicts = [(c["world"], c["name"], c["status"], c["message"]) for c in all_checks(doc)]
        version = hashlib.sha256(
            json.dumps([doc["dataset"]["manifest_sha256"], doc["score"]["value"], verdicts], default=str).encode()
        ).hexdigest()
        s = doc["summary"]
        return dg.MaterializeResult(
            metadata={
                "html": _link(html_path),
                "json": _link(json_path),
                "status": doc["status"],
                "headline": headline(doc),
                "up_to_date": up_to_date,
                "score": dg.MetadataValue.int(doc["score"]["value"]),
                "summary": dg.MetadataValue.md(summary_markdown(doc)),
                "checks": s["checks"],
                "passed": s["pass"],
                "warnings": s["warn"],
                "failed": s["fail"],
                "skipped": s["skipped"],
                "external_data": doc["inputs"]["external_data"]["status"],
                "manifest_sha256": doc["dataset"]["manifest_sha256"],
                "wall_time_s": round(doc["seconds"], 3),
            },
            data_version=dg.DataVersion(version),
        )

    return validation_report


validation_report = validation_report_asset()
