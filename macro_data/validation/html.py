"""The validation report as one self-contained HTML page (inline CSS, figures as inline SVG).

Sections (each an ``<section id=...>``): ``summary`` (status, score, world x check-group table,
everything that did not pass), ``checks`` (every check with its message and figures),
``parameters`` (per world, histograms of the drawn parameters against their prior densities, and
percentiles of the derived ones), ``trajectories`` (sample paths of the canonical observables),
``irfs`` (fan charts: median and 10-90 % band over draws, per shock and observable), ``splits``
(composition per world), ``realism`` (each world's distribution of standard deviations and
first-order autocorrelations against the real US values), ``provenance`` (recipe, hashes, code
versions, run ids).

Figures are written as SVG by :mod:`macro_data.validation.charts` from the first
:data:`PLOT_SAMPLE` samples of each world (independent prior draws), so memory does not grow with
the dataset and the page is the same bytes wherever it is drawn. Nothing on the page loads from
the network: no scripts, no external style sheets, fonts or images, and URLs in free text are
rendered inert.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np

from macro_data import splits
from macro_data.validation import charts
from macro_data.validation.realism import RealData, world_moments
from macro_data.validation.report import STATUS_WORD, all_checks, headline, not_passed
from macro_data.validation.results import GROUPS
from macro_data.validation.spec import spec_from_manifest
from macro_data.worlds import world_ids
from macro_data.worlds.priors import Prior, PriorError

PLOT_SAMPLE = 2000
N_PATHS = 8
SECTIONS = ("summary", "checks", "parameters", "trajectories", "irfs", "splits", "realism", "provenance")
COLORS = {"pass": "#1a7f37", "warn": "#9a6700", "fail": "#cf222e", "skipped": "#6e7781"}
SPLIT_COLORS = ["#4c72b0", "#55a868", "#8172b2", "#c44e52", "#dd8452"]

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:0 auto;max-width:1180px;
padding:0 18px 40px;color:#1f2328;line-height:1.45}
h1{font-size:1.6em;margin:22px 0 4px}h2{border-bottom:1px solid #d0d7de;padding-bottom:4px;margin-top:34px}
h3{margin:20px 0 6px}table{border-collapse:collapse;margin:8px 0 14px;font-size:.9em}
th,td{border:1px solid #d0d7de;padding:3px 8px;text-align:left;vertical-align:top}th{background:#f6f8fa}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;color:#fff;font-weight:600;font-size:.85em}
.pass{background:#1a7f37}.warn{background:#9a6700}.fail{background:#cf222e}.skipped{background:#6e7781}
.score{font-size:2.4em;font-weight:700;margin-right:14px}.muted{color:#656d76;font-size:.9em}
svg.chart{display:block;max-width:100%;height:auto;border:1px solid #eaeef2;margin:4px 0}
pre{background:#f6f8fa;padding:10px;overflow-x:auto;font-size:.8em;max-height:420px}
details{margin:6px 0}summary{cursor:pointer;font-weight:600}code{font-size:.9em}
nav a{margin-right:12px}td.msg{max-width:640px}
"""


def _text(value) -> str:
    """Escaped text with URLs made inert (the page must not reference the network)."""
    return html.escape(str(value)).replace("://", ":&#8203;//")


def _badge(status: str) -> str:
    return f'<span class="badge {status}">{STATUS_WORD.get(status, status)}</span>'


def _parameters(world, entry: dict, theta: np.ndarray) -> str:
    priors = entry.get("priors", {})
    drawn = [p for p in world.parameters if p.kind in ("uniform", "integer")]
    out = []
    if drawn:
        panels = []
        for p in drawn:
            x = theta[:, world.index(p.name)]
            lo, hi = (priors.get(p.name) or {}).get("low", p.low), (priors.get(p.name) or {}).get("high", p.high)
            try:
                prior = Prior.from_dict(priors[p.name]) if p.name in priors else Prior(float(lo), float(hi))
            except (PriorError, KeyError, TypeError, ValueError):  # an unreadable entry: the bounds' uniform
                prior = Prior(float(lo), float(hi))
            panel = charts.Panel(p.name if prior.family == "uniform" else f"{p.name} ({prior.family})", y_ticks=False)
            edges = np.linspace(lo, hi, 26)
            if prior.family == "fixed":
                panel.histogram(x, edges, name="draws")
                panel.vline(prior.arg("value"), width=1.5, name="prior")
            elif p.kind == "integer":
                vals = np.arange(int(np.ceil(lo)), int(np.floor(hi)) + 1)
                panel.bars(vals, [(x == v).mean() for v in vals], name="draws")
                panel.ticks_at(vals, np.full(len(vals), 1 / len(vals)), name="prior")
            else:
                top = np.nanmax(panel.histogram(x, edges, density=True, name="draws"), initial=0.0)
                xs = np.linspace(lo, hi, 202)[1:-1]  # inside: a beta density may be infinite at a bound
                density = np.minimum(prior.pdf(xs), 3 * max(top, 1.0 / (hi - lo)))
                panel.line(xs, density, color="#000", width=1.5, name="prior")
            panels.append(panel)
        title = f"{world.name}: drawn parameters ({theta.shape[0]} draws) against their prior densities"
        out.append(charts.figure(panels, 4, title, width=960, panel_height=150))
    derived = [p for p in world.parameters if p.kind == "derived"]
    if derived:
        q = np.percentile(theta[:, [world.index(p.name) for p in derived]], [5, 50, 95], axis=0)
        rows = "".join(
            f"<tr><td>{_text(p.name)}</td><td>{q[0, k]:.4g}</td><td>{q[1, k]:.4g}</td><td>{q[2, k]:.4g}</td></tr>"
            for k, p in enumerate(derived)
        )
        out.append(
            f"<details><summary>{len(derived)} derived parameters (no independent prior): percentiles</summary>"
            f"<table><tr><th>parameter</th><th>p5</th><th>p50</th><th>p95</th></tr>{rows}</table></details>"
        )
    return "\n".join(out)


def _trajectories(world, traj: np.ndarray) -> str:
    n = min(N_PATHS, traj.shape[0])
    panels = []
    for k, o in enumerate(world.observables):
        panel = charts.Panel(f"{o.name} ({o.unit})", xlabel="quarter")
        for i in range(n):
            panel.line(np.arange(traj.shape[1]), traj[i, :, k], color=charts.CYCLE[i % len(charts.CYCLE)], width=0.9)
        panel.hline(0.0)
        panels.append(panel)
    return charts.figure(panels, 3, f"{world.name}: the first {n} sample paths", panel_height=185)


def _irfs(world, irfs: np.ndarray) -> str:
    q10, q50, q90 = np.percentile(irfs, [10, 50, 90], axis=0)
    h = np.arange(irfs.shape[2])
    panels = []
    for j, shock in enumerate(world.shocks):
        for k, o in enumerate(world.observables):
            panel = charts.Panel(f"{o.name} to {shock}")
            panel.band(h, q10[j, :, k], q90[j, :, k], name="10-90 %")
            panel.line(h, q50[j, :, k], width=1.5, name="median")
            panel.hline(0.0)
            panels.append(panel)
    title = f"{world.name}: impulse responses to +1 sd innovations ({irfs.shape[0]} draws)"
    return charts.figure(panels, 3, title)


def _realism(world, moments: dict, real: RealData) -> str:
    panels = []
    for m in ("sd", "autocorr1"):
        for k, o in enumerate(world.observables):
            v = moments[m][:, k]
            v = v[np.isfinite(v)]
            if m == "sd":
                v = v[v > 0]
                bins = np.geomspace(max(v.min(), 1e-3), max(v.max(), 1e-2), 30) if v.size else 10
            else:
                bins = np.linspace(-1, 1, 31)
            title = f"{o.name}: {'sd' if m == 'sd' else 'autocorrelation(1)'}"
            panel = charts.Panel(title, xlog=m == "sd", y_ticks=False)
            panel.histogram(v, bins, name="draws")
            panel.vline(real.moments[o.name][m], color="#cf222e", width=2, name="US data")
            panels.append(panel)
    return charts.figure(panels, 3, f"{world.name}: distribution over draws, US value in red")


def _splits_plot(doc: dict) -> str:
    worlds = list(doc["worlds"])
    fractions = np.zeros((len(worlds), len(splits.LABELS)))
    for i, w in enumerate(worlds):
        c = next((c for c in doc["worlds"][w]["checks"] if c["name"] == "consistency.splits"), None)
        counts = (c or {}).get("figures", {}).get("counts") or {}
        total = max(sum(counts.values()), 1)
        fractions[i] = [counts.get(name, 0) / total for name in splits.LABELS]
    return charts.stacked_bars(worlds, list(splits.LABELS), fractions, SPLIT_COLORS, "fraction of samples")


# ---- page ---------------------------------------------------------------------------------------


def _figures_text(figures: dict) -> str:
    text = json.dumps(figures, indent=1)
    return f"<details><summary>figures</summary><pre>{_text(text[:6000])}</pre></details>" if figures else ""


def _summary(doc: dict) -> str:
    groups = list(GROUPS)
    head = "".join(f"<th>{g}</th>" for g in groups)
    rows = []
    for w, e in doc["worlds"].items():
        cells = "".join(f"<td>{_badge(e['groups'][g]) if g in e['groups'] else '-'}</td>" for g in groups)
        rows.append(f'<tr><td><a href="#world-{_text(w)}">{_text(w)}</a></td><td>{e["score"]}</td>{cells}</tr>')
    bad = not_passed(doc)
    bad_rows = "".join(
        f"<tr><td>{_badge(c['status'])}</td><td>{_text(c['world'] or '(dataset)')}</td>"
        f"<td><code>{_text(c['name'])}</code></td><td class=msg>{_text(c['message'])}</td></tr>"
        for c in bad
    )
    s = doc["summary"]
    return (
        f'<section id="summary"><h2>Summary</h2>'
        f'<p><span class="score">{doc["score"]["value"]}/100</span>{_badge(doc["status"])} '
        f"{s['checks']} checks: {s['pass']} passed, {s['warn']} warnings, {s['fail']} failed, "
        f"{s['skipped']} skipped.</p>"
        f'<p class="muted">Score: {_text(doc["score"]["formula"])}.</p>'
        f"<table><tr><th>world</th><th>score</th>{head}</tr>{''.join(rows)}</table>"
        + (
            "<h3>Not passed</h3><table><tr><th>status</th><th>world</th><th>check</th><th>message</th></tr>"
            f"{bad_rows}</table>"
            if bad
            else "<p>Every check passed.</p>"
        )
        + "</section>"
    )


def _origin(c: dict) -> str:
    """Computed by this run, or reused from an earlier computation on the same data (which run, when)."""
    o = c.get("origin") or {}
    if o.get("computed") != "reused":
        return "now" if o else "-"
    return _text(f"reused: {o.get('by') or '?'}, run {o.get('run_id') or '?'}, {o.get('computed_at') or '?'}")


def _checks(doc: dict) -> str:
    rows = "".join(
        f"<tr><td>{_badge(c['status'])}</td><td>{_text(c['world'] or '(dataset)')}</td>"
        f"<td><code>{_text(c['name'])}</code></td><td>{c['severity']}</td>"
        f"<td class=msg>{_text(c['message'])}{_figures_text(c['figures'])}</td>"
        f"<td>{c['seconds']:.2f}</td><td>{_origin(c)}</td></tr>"
        for c in all_checks(doc)
    )
    return (
        f'<section id="checks"><h2>All checks</h2><p class="muted">Error-level groups (integrity, consistency, '
        f"reproducibility, identities) must pass for the data to be used; statistics and realism are warnings. "
        f"<i>computed</i>: by this validation (now), or reused from the run that computed it on exactly the "
        f"same stored data, code and environment.</p>"
        f"<table><tr><th>status</th><th>world</th><th>check</th><th>severity</th><th>message</th><th>s</th><th>computed</th></tr>"
        f"{rows}</table></section>"
    )


def _provenance(doc: dict) -> str:
    p = doc["provenance"]
    rows = []
    for w, e in p["worlds"].items():
        for stage, s in e["stages"].items():
            rows.append(
                f"<tr><td>{_text(w)}</td><td>{_text(stage)}</td><td><code>{_text(s.get('run_id'))}</code></td>"
                f"<td><code>{_text(s.get('code_version'))}</code></td><td><code>{_text(str(s.get('data_version'))[:16])}</code></td>"
                f"<td>{_text(s.get('written_at'))}</td></tr>"
            )
    arrays = "".join(
        f"<tr><td>{_text(w)}</td><td>{_text(a)}</td><td><code>{_text(h)}</code></td></tr>"
        for w, e in p["worlds"].items()
        for a, h in e["arrays"].items()
    )
    v = doc["validator"]
    return (
        f'<section id="provenance"><h2>Provenance</h2><table>'
        f"<tr><th>manifest sha256</th><td><code>{_text(p['manifest_sha256'])}</code></td></tr>"
        f"<tr><th>recipe sha256</th><td><code>{_text(p['recipe_sha256'])}</code></td></tr>"
        f"<tr><th>package</th><td>{_text(json.dumps(p.get('package')))}</td></tr>"
        f"<tr><th>content hash</th><td>{_text((p.get('hash') or {}).get('algorithm'))}</td></tr>"
        f"<tr><th>seeding</th><td>{_text((p.get('seeding') or {}).get('algorithm'))}, block size "
        f"{_text((p.get('seeding') or {}).get('block_size'))}</td></tr>"
        f"<tr><th>validator</th><td>macro_data {_text(v['package_version'])}, commit {_text(v['git_commit'])}, "
        f"code version {_text(v['code_version'])}, run {_text(v['run_id'])}</td></tr>"
        f"<tr><th>manifest run</th><td>{_text(json.dumps(p.get('manifest')))}</td></tr></table>"
        f"<h3>Stages</h3><table><tr><th>world</th><th>stage</th><th>run id</th><th>code version</th>"
        f"<th>data version</th><th>written</th></tr>{''.join(rows)}</table>"
        f"<details><summary>Array content hashes</summary><table><tr><th>world</th><th>array</th><th>sha256</th></tr>"
        f"{arrays}</table></details>"
        f"<details><summary>Recipe</summary><pre>{_text(json.dumps(p['recipe'], indent=1))}</pre></details></section>"
    )


FIGURES = ("parameters", "trajectories", "irfs")  # a world's figures drawn from its data alone


def _anchor(w: str) -> str:
    return f'<h3 id="world-{_text(w)}">{_text(w)}</h3>'


def _world_figures(w: str, dataset_dir: str, manifest: dict) -> dict[str, str]:
    """World ``w``'s part of each section of :data:`FIGURES` ("" where none)."""
    if w not in world_ids():
        return {"parameters": _anchor(w) + "<p>unknown world: nothing to plot</p>", "trajectories": "", "irfs": ""}
    try:
        spec = spec_from_manifest(manifest, w, dataset_dir)
        group = spec.open()
        m = min(PLOT_SAMPLE, spec.n)
        theta = np.asarray(group["theta"][:m], dtype=np.float64)
        traj = np.asarray(group["trajectories"][:m], dtype=np.float64)
        irfs = np.asarray(group["irfs"][:m], dtype=np.float64)
    except Exception as exc:  # noqa: BLE001 - the checks report why; the page says it cannot plot
        msg = f"<p>{_text(w)}: cannot plot ({_text(type(exc).__name__)}: {_text(exc)})</p>"
        return {"parameters": _anchor(w) + msg, "trajectories": msg, "irfs": msg}
    finite = np.isfinite(traj).all(axis=(1, 2)) & np.isfinite(irfs).all(axis=(1, 2, 3))
    return {
        "parameters": _anchor(w) + _parameters(spec.world, manifest["worlds"][w], theta),
        "trajectories": f"<h3>{_text(w)}</h3>" + _trajectories(spec.world, traj[finite]),
        "irfs": f"<h3>{_text(w)}</h3>" + (_irfs(spec.world, irfs[finite]) if finite.any() else "<p>no finite IRFs</p>"),
    }


def _world_realism(doc: dict, w: str, dataset_dir: str, manifest: dict, real: RealData) -> str:
    """World ``w``'s part of the realism section: its moments against the US data, with the check's table."""
    if w not in world_ids():
        return ""
    try:
        spec = spec_from_manifest(manifest, w, dataset_dir)
        group = spec.open()
        moments = world_moments(spec, group)
    except Exception as exc:  # noqa: BLE001 - as in _world_figure
        return f"<p>{_text(w)}: cannot plot ({_text(type(exc).__name__)}: {_text(exc)})</p>"
    rc = next((c for c in doc["worlds"][w]["checks"] if c["name"] == "realism.us_moments"), None)
    rows = ""
    for o, ms in ((rc or {}).get("figures", {}).get("moments") or {}).items():
        for mname, e in ms.items():
            wp = e["world_percentiles"]
            rows += (
                f"<tr><td>{_text(o)}</td><td>{mname}</td><td>{e['real']:.3g}</td><td>{wp['p5']:.3g}</td>"
                f"<td>{wp['p50']:.3g}</td><td>{wp['p95']:.3g}</td><td>{e['rank']:.1f}</td></tr>"
            )
    return (
        f"<h3>{_text(w)} {_badge(rc['status']) if rc else ''}</h3>"
        + _realism(spec.world, moments, real)
        + f"<table><tr><th>observable</th><th>moment</th><th>US</th><th>world p5</th><th>p50</th>"
        f"<th>p95</th><th>US percentile in world</th></tr>{rows}</table>"
    )


def render(
    doc: dict,
    dataset_dir: str | Path,
    manifest: dict,
    real: RealData | None,
) -> str:
    """The HTML page for report ``doc`` of the dataset at ``dataset_dir`` (its figures as inline SVG,
    from the first :data:`PLOT_SAMPLE` samples of each world)."""
    d = doc["dataset"]
    ext = doc["inputs"]["external_data"]
    worlds = list(doc["worlds"])
    drawn = {w: _world_figures(w, str(dataset_dir), manifest) for w in worlds}
    params = [drawn[w]["parameters"] for w in worlds]
    trajs = [drawn[w]["trajectories"] for w in worlds if drawn[w]["trajectories"]]
    fans = [drawn[w]["irfs"] for w in worlds if drawn[w]["irfs"]]
    realism = [_world_realism(doc, w, str(dataset_dir), manifest, real) for w in worlds] if real else []
    realism = [r for r in realism if r]
    if real is None:
        realism = [f"<p>{_badge('skipped')} {_text(ext.get('reason', 'no verified external data'))}</p>"]
    else:
        realism.insert(
            0,
            f"<p>US data: {_text(ext.get('entry'))} (sha256 <code>{_text(ext.get('sha256'))}</code>), "
            f"{_text(ext.get('sample', {}).get('start'))}-{_text(ext.get('sample', {}).get('end'))}, output "
            f"method {_text(ext.get('output_method'))}. Simulated paths have T = {_text(d['T'])} quarters "
            f"from the steady state (short paths understate sd and bias autocorrelations down); rbc's "
            f"inflation and rate are consumption growth and a real return by design.</p>",
        )
    nav = "".join(f'<a href="#{s}">{s}</a>' for s in SECTIONS)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Validation report: {_text(d["name"])} {_text(d["version"])}</title><style>{CSS}</style></head>
<body>
<h1>Validation report: {_text(d["name"])} {_text(d["version"])} {_badge(doc["status"])}</h1>
<p><strong>{_text(headline(doc))}</strong></p>
<p class="muted">{len(doc["worlds"])} worlds, T = {_text(d["T"])}, H = {_text(d["H"])}; samples
{_text(", ".join(f"{w} {n}" for w, n in d["n_samples"].items()))}. Validated {_text(doc["created_at"])} in
{doc["seconds"]:.1f} s. Manifest sha256 <code>{_text(d["manifest_sha256"][:16])}...</code></p>
<nav>{nav}</nav>
{_summary(doc)}
{_checks(doc)}
<section id="parameters"><h2>Parameters against their priors</h2>
<p class="muted">First {PLOT_SAMPLE} draws of each world (independent prior draws, invalid ones rejected).</p>
{"".join(params)}</section>
<section id="trajectories"><h2>Sample trajectories</h2>{"".join(trajs)}</section>
<section id="irfs"><h2>Impulse responses</h2><p class="muted">Median and 10-90 % band over draws, per shock
and observable.</p>{"".join(fans)}</section>
<section id="splits"><h2>Split composition</h2>{_splits_plot(doc)}</section>
<section id="realism"><h2>Realism: US data against each world</h2>{"".join(realism)}</section>
{_provenance(doc)}
</body></html>
"""
