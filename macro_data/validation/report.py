"""The validation report as a JSON document (``validation_report.json``), and its text summaries.

The document (schema: ``schemas/validation_report.schema.json``) holds every check with its
inputs, figures and status, per world and overall, the 0-100 score (:mod:`.score`, formula
included in the document), the external data used for the realism comparison, and the dataset's
provenance (recipe, hashes, code versions, run ids). It is written next to ``manifest.json``
atomically (temporary file, fsync, rename), like the manifest.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

from macro_data import schemas
from macro_data.errors import MacroDataError
from macro_data.pipeline.manifest import git_commit, package_version
from macro_data.storage import locations
from macro_data.validation.dataset import REPORT_HTML, REPORT_JSON, Validation
from macro_data.validation.reproducibility import SUBSET_SIZE
from macro_data.validation.results import GROUPS, STATUS_ORDER, jsonable, worst
from macro_data.validation.score import score
from macro_data.validation.statistics import STAT_SAMPLE

SCHEMA_VERSION = "1.0.0"
STATUS_WORD = {"pass": "PASS", "warn": "WARN", "fail": "FAIL", "skipped": "SKIPPED"}


class ReportError(MacroDataError):
    """A validation report that does not match its schema (a bug in the validator)."""


def _summary(results) -> dict:
    out = {"checks": len(results), "pass": 0, "warn": 0, "fail": 0, "skipped": 0}
    for r in results:
        out[r.status] += 1
    return out


def build_report(v: Validation, run_id: str = "local", code_version: str = "unknown") -> dict:
    m = v.manifest
    worlds = {}
    for w in m.get("worlds", {}):
        rs = v.for_world(w)
        worlds[w] = {
            "status": worst(r.status for r in rs),
            "score": score(rs)["value"],
            "summary": _summary(rs),
            "groups": {g: worst(r.status for r in rs if r.group == g) for g in GROUPS if any(r.group == g for r in rs)},
            "checks": [r.as_dict() for r in rs],
        }
    dataset_checks = v.for_world(None)
    external = (
        {"status": "used", **v.real.source, "moments": v.real.moments}
        if v.real is not None
        else {"status": "skipped", "reason": v.real_reason}
    )
    prov_worlds = {}
    for w, e in m.get("worlds", {}).items():
        prov_worlds[w] = {
            "stages": {
                s: {k: (p or {}).get(k) for k in ("run_id", "code_version", "data_version", "written_at")}
                for s, p in (e.get("provenance") or {}).items()
            },
            "arrays": {a: spec.get("sha256") for a, spec in (e.get("arrays") or {}).items()},
        }
    doc = {
        "schema_version": SCHEMA_VERSION,
        "dataset": {
            "name": (m.get("dataset") or {}).get("name"),
            "version": (m.get("dataset") or {}).get("version"),
            "created_at": (m.get("dataset") or {}).get("created_at"),
            "manifest_sha256": v.manifest_sha256,
            "recipe_sha256": m.get("recipe_sha256"),
            "T": m.get("T"),
            "H": m.get("H"),
            "worlds": list(m.get("worlds", {})),
            "n_samples": {w: e.get("n_samples") for w, e in m.get("worlds", {}).items()},
        },
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "validator": {
            "package_version": package_version(),
            "git_commit": git_commit(),
            "code_version": code_version,
            "run_id": run_id,
        },
        "status": overall(r.status for r in v.results),
        "score": score(v.results),
        "summary": _summary(v.results),
        "inputs": {
            "reproducibility_subset_size": SUBSET_SIZE,
            "statistics_sample": STAT_SAMPLE,
            "subset_indices": v.subset_indices,
            "external_data": external,
        },
        "dataset_checks": [r.as_dict() for r in dataset_checks],
        "worlds": worlds,
        "provenance": {
            "recipe": m.get("recipe"),
            "recipe_sha256": m.get("recipe_sha256"),
            "manifest_sha256": v.manifest_sha256,
            "package": m.get("package"),
            "seeding": m.get("seeding"),
            "hash": m.get("hash"),
            "manifest": m.get("provenance"),
            "worlds": prov_worlds,
        },
        "seconds": round(v.seconds, 3),
    }
    return jsonable(doc)


def validate_report(doc: dict) -> None:
    errors = schemas.errors("validation_report", doc)
    if errors:
        lines = [f"{schemas.location(e)}: {e.message[:300]}" for e in errors[:10]]
        raise ReportError(
            "validation report does not match schemas/validation_report.schema.json:\n  " + "\n  ".join(lines)
        )


def all_checks(doc: dict) -> list[dict]:
    return [*doc["dataset_checks"], *(c for w in doc["worlds"].values() for c in w["checks"])]


def not_passed(doc: dict) -> list[dict]:
    return sorted(
        (c for c in all_checks(doc) if c["status"] != "pass"),
        key=lambda c: (-STATUS_ORDER[c["status"]], c["world"] or "", c["name"]),
    )


def overall(statuses) -> str:
    """The dataset's verdict: ``fail``, ``warn`` or ``pass``. A skipped check (a comparison that could
    not run, e.g. without external data) does not stop the rest from passing; :func:`headline` says
    how many were skipped."""
    worst_seen = worst(statuses)
    return "pass" if worst_seen == "skipped" else worst_seen


def headline(doc: dict) -> str:
    """``PASSED``, ``PASSED (6 checks skipped)``, ``WARNINGS (2)`` or ``FAILED (3)``, with the skip count."""
    s = doc["summary"]
    skipped = f"{s['skipped']} check{'s' if s['skipped'] != 1 else ''} skipped" if s["skipped"] else ""
    if doc["status"] == "fail":
        word = f"FAILED ({s['fail']} failed" + (f", {skipped})" if skipped else ")")
    elif doc["status"] == "warn":
        word = f"WARNINGS ({s['warn']} warnings" + (f", {skipped})" if skipped else ")")
    else:
        word = "PASSED" + (f" ({skipped})" if skipped else "")
    return word


def summary_markdown(doc: dict) -> str:
    """Markdown for the Dagster UI: the status table and every check that did not pass."""
    groups = list(GROUPS)
    lines = [
        f"**{headline(doc)}**, score **{doc['score']['value']}/100** "
        f"({doc['summary']['pass']} passed, {doc['summary']['warn']} warnings, {doc['summary']['fail']} failed, "
        f"{doc['summary']['skipped']} skipped)",
        "",
        "| world | score | " + " | ".join(groups) + " |",
        "|---|---|" + "---|" * len(groups),
    ]
    for w, e in doc["worlds"].items():
        lines.append(
            f"| {w} | {e['score']} | " + " | ".join(STATUS_WORD.get(e["groups"].get(g, ""), "-") for g in groups) + " |"
        )
    bad = not_passed(doc)
    if bad:
        lines += ["", "| status | world | check | message |", "|---|---|---|---|"]
        for c in bad[:40]:
            lines.append(
                f"| {STATUS_WORD[c['status']]} | {c['world'] or '(dataset)'} | {c['name']} | "
                f"{c['message'][:300].replace('|', '/')} |"
            )
    return "\n".join(lines)


def _reused_line(doc: dict) -> list[str]:
    reused = [c for c in all_checks(doc) if (c.get("origin") or {}).get("computed") == "reused"]
    if not reused:
        return []
    return [
        f"{len(reused)} world checks reused from earlier computations on the same data (see each check's origin); "
        f"`macro-data validate` without --reuse recomputes everything"
    ]


def summary_text(doc: dict, verbose: bool = False) -> str:
    """A readable plain-text summary (for the command line)."""
    d = doc["dataset"]
    groups = list(GROUPS)
    width = max([len(w) for w in doc["worlds"]] + [9])
    out = [
        f"dataset {d['name']} {d['version']}: {headline(doc)}, score {doc['score']['value']}/100 "
        f"({doc['summary']['checks']} checks: {doc['summary']['pass']} passed, {doc['summary']['warn']} warnings, "
        f"{doc['summary']['fail']} failed, {doc['summary']['skipped']} skipped; {doc['seconds']:.1f} s)",
        *_reused_line(doc),
        "",
        f"{'world':<{width}}  score  " + "  ".join(f"{g:<15}" for g in groups),
    ]
    for w, e in doc["worlds"].items():
        out.append(
            f"{w:<{width}}  {e['score']:>5}  "
            + "  ".join(f"{STATUS_WORD.get(e['groups'].get(g, ''), '-'):<15}" for g in groups)
        )
    for c in doc["dataset_checks"]:
        out.append(f"{'(dataset)':<{width}}  {c['name']}: {STATUS_WORD[c['status']]}")
    bad = not_passed(doc)
    if bad:
        out.append("")
        for c in bad:
            out.append(f"{STATUS_WORD[c['status']]:<7} {c['world'] or '(dataset)'} {c['name']}: {c['message']}")
    if verbose:
        out.append("")
        for c in all_checks(doc):
            if c["status"] == "pass":
                out.append(f"PASS    {c['world'] or '(dataset)'} {c['name']}: {c['message']}")
    return "\n".join(out)


def write_report(dataset_dir: str | Path, doc: dict, html: str) -> tuple[str, str]:
    """Validate and write ``validation_report.json`` and ``.html`` next to the manifest, atomically
    (each file: temporary file, fsync, rename; one PUT on object storage). Returns their locations."""
    validate_report(doc)
    json_path, html_path = locations.join(dataset_dir, REPORT_JSON), locations.join(dataset_dir, REPORT_HTML)
    locations.write_bytes_atomic(html_path, html.encode("utf-8"))
    locations.write_bytes_atomic(json_path, (json.dumps(doc, indent=1, allow_nan=False) + "\n").encode("utf-8"))
    return json_path, html_path


def published_report(dataset_dir: str | Path, code_version: str) -> dict | None:
    """The report already published for the dataset's current manifest by this validator version
    (nothing to redo), or ``None``."""
    json_path, html_path = locations.join(dataset_dir, REPORT_JSON), locations.join(dataset_dir, REPORT_HTML)
    manifest_path = locations.join(dataset_dir, "manifest.json")
    try:
        if not (locations.exists(json_path) and locations.exists(html_path) and locations.exists(manifest_path)):
            return None
        doc = json.loads(locations.read_bytes(json_path))
        manifest_sha = hashlib.sha256(locations.read_bytes(manifest_path)).hexdigest()
        if doc["dataset"]["manifest_sha256"] == manifest_sha and doc["validator"]["code_version"] == code_version:
            return doc
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None
