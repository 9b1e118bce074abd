"""Small static charts as inline SVG, for the validation report.

The report needs four kinds of panel: filled histograms (with a prior density, markers or a
vertical reference line over them), line plots, fan charts (a band and a median) and one stacked
horizontal bar chart. Each is a few paths and text, so it is written here directly: a report's 18
figures of six worlds take about 0.7 s with their percentiles, against 13 CPU-seconds drawn with
matplotlib (most of it laying out tick labels), and they stay sharp at any zoom.

A chart is one ``<svg>`` element without ``xmlns`` (an HTML parser places it in the SVG namespace)
and without any reference: no ``href``, no ``url(...)``, no ids, so many charts can share a page.
Coordinates are written with one decimal, so the output is the same bytes wherever it is drawn.

Axes map data to pixels linearly, or logarithmically (``xlog``); limits are the data's range
widened by 5 % (histograms: their bin edges), and ticks are 1, 2, 2.5 or 5 times a power of ten
(:func:`ticks`), or the powers of ten on a log axis (:func:`log_ticks`).
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field

import numpy as np

# matplotlib's default colour cycle ("tab10"), for several lines in one panel
CYCLE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
FONT = "system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif"
MARGIN = 0.05  # of the data range, on each side of a panel's data limits
STEPS = (1.0, 2.0, 2.5, 5.0)  # tick spacings within a power of ten


def _num(v: float) -> str:
    """A pixel coordinate: one decimal, no "-0.0"."""
    s = f"{v:.1f}"
    return "0.0" if s == "-0.0" else s


def label(v: float) -> str:
    """A tick label: at most four significant digits, no "-0"."""
    s = f"{v:.4g}"
    return "0" if s in ("-0", "0") else s


def ticks(lo: float, hi: float, n: int = 4) -> list[float]:
    """Round values in ``[lo, hi]``: the multiples of the smallest spacing of 1, 2, 2.5 or 5 times a
    power of ten that leaves at most ``n + 1`` of them (at least two for ``n >= 4``)."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo] if math.isfinite(lo) else []
    e = math.floor(math.log10((hi - lo) / n))
    for step in (m * 10.0**k for k in (e - 1, e, e + 1) for m in STEPS):
        first, last = math.ceil(lo / step - 1e-9), math.floor(hi / step + 1e-9)
        if last - first <= n:
            return [float(f"{k * step:.12g}") for k in range(first, last + 1)]
    raise AssertionError("unreachable: 10 ** (e + 1) spaces at most n + 1 values")


def log_ticks(lo: float, hi: float) -> list[float]:
    """The powers of ten in ``[lo, hi]`` (``lo > 0``); where fewer than two fit, 1, 2 and 5 times
    them, and where still fewer than two, :func:`ticks`."""
    k0, k1 = math.ceil(math.log10(lo) - 1e-9), math.floor(math.log10(hi) + 1e-9)
    out = [10.0**k for k in range(k0, k1 + 1)]
    if len(out) < 2:
        candidates = (m * 10.0**k for k in range(k0 - 1, k1 + 1) for m in (1, 2, 5))
        out = sorted(v for v in candidates if lo * (1 - 1e-9) <= v <= hi * (1 + 1e-9))
    return out if len(out) >= 2 else ticks(lo, hi)


def _widen(lo: float, hi: float, log: bool = False) -> tuple[float, float]:
    """The data range with :data:`MARGIN` on each side (in log space on a log axis); a single value
    gets a unit-wide (log: a factor-of-ten) window around it."""
    if log:
        a, b = _widen(math.log10(lo), math.log10(hi))
        return 10.0**a, 10.0**b
    if hi <= lo:
        return lo - 0.5, hi + 0.5
    pad = MARGIN * (hi - lo)
    return lo - pad, hi + pad


@dataclass
class Panel:
    """One plot area: its title, what is drawn in it (in data coordinates) and its axes.

    ``xlog``: a logarithmic x axis (values <= 0 are left out); ``y_ticks=False`` leaves the y axis
    unlabelled (histograms, whose height says nothing the shape does not)."""

    title: str = ""
    xlabel: str = ""
    xlog: bool = False
    y_ticks: bool = True
    marks: list[tuple] = field(default_factory=list)  # (kind, data, style)
    legend: list[tuple[str, str, str]] = field(default_factory=list)  # (kind, colour, text)

    def _add(self, kind: str, data: tuple, style: dict, name: str | None) -> None:
        self.marks.append((kind, data, style))
        if name:
            self.legend.append((kind, style.get("color", "#000"), name))

    def line(self, x, y, color: str = "#4c72b0", width: float = 1.0, name: str | None = None) -> None:
        x, y = np.asarray(x, float), np.asarray(y, float)
        ok = np.isfinite(x) & np.isfinite(y) & ((x > 0) if self.xlog else True)
        self._add("line", (x[ok], y[ok]), {"color": color, "width": width}, name)

    def band(self, x, lo, hi, color: str = "#4c72b0", opacity: float = 0.25, name: str | None = None) -> None:
        x, lo, hi = (np.asarray(a, float) for a in (x, lo, hi))
        ok = np.isfinite(x) & np.isfinite(lo) & np.isfinite(hi)
        self._add("band", (x[ok], lo[ok], hi[ok]), {"color": color, "opacity": opacity}, name)

    def histogram(
        self,
        values,
        bins,
        color: str = "#4c72b0",
        opacity: float = 0.75,
        density: bool = False,
        name: str | None = None,
    ) -> np.ndarray:
        """A filled step histogram of ``values`` (``bins``: edges, or a count over the values' range);
        returns the heights drawn (densities with ``density``)."""
        v = np.asarray(values, float)
        v = v[np.isfinite(v) & ((v > 0) if self.xlog else True)]
        if np.ndim(bins) == 0:
            lo, hi = (float(v.min()), float(v.max())) if v.size else (0.0, 1.0)
            edges = np.geomspace(lo, hi, int(bins) + 1) if self.xlog and lo > 0 else np.linspace(lo, hi, int(bins) + 1)
            if hi <= lo:
                edges = np.linspace(lo - 0.5, hi + 0.5, int(bins) + 1)
        else:
            edges = np.asarray(bins, float)
        heights, _ = np.histogram(v, bins=edges, density=density and v.size > 0)
        heights = heights.astype(float)
        self._add("steps", (edges, heights), {"color": color, "opacity": opacity}, name)
        return heights

    def bars(
        self, x, heights, width: float = 0.8, color: str = "#4c72b0", opacity: float = 0.75, name: str | None = None
    ) -> None:
        x, h = np.asarray(x, float), np.asarray(heights, float)
        self._add("bars", (x, h, width), {"color": color, "opacity": opacity}, name)

    def ticks_at(self, x, y, color: str = "#000", name: str | None = None) -> None:
        """Short horizontal markers at the points ``(x, y)`` (a discrete prior's probabilities)."""
        self._add("ticks", (np.asarray(x, float), np.asarray(y, float)), {"color": color}, name)

    def vline(self, x: float, color: str = "#000", width: float = 1.0, name: str | None = None) -> None:
        if math.isfinite(x) and (x > 0 or not self.xlog):
            self._add("vline", (float(x),), {"color": color, "width": width}, name)

    def hline(self, y: float, color: str = "#000", width: float = 0.5) -> None:
        self._add("hline", (float(y),), {"color": color, "width": width}, None)

    # -- limits -----------------------------------------------------------------------------------

    def limits(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """The data limits ``((x0, x1), (y0, y1))`` the panel is drawn with."""
        xs: list[np.ndarray] = []
        ys: list[np.ndarray] = []
        hist_x = False
        for kind, d, _ in self.marks:
            if kind in ("line", "ticks"):
                xs.append(d[0])
                ys.append(d[1])
            elif kind == "band":
                xs.append(d[0])
                ys += [d[1], d[2]]
            elif kind == "steps":
                xs.append(d[0])
                ys += [d[1], np.zeros(1)]
                hist_x = True
            elif kind == "bars":
                xs += [d[0] - d[2] / 2, d[0] + d[2] / 2]
                ys += [d[1], np.zeros(1)]
            elif kind == "vline":
                xs.append(np.array(d))
            elif kind == "hline":
                ys.append(np.array(d))
        x = np.concatenate(xs) if xs else np.zeros(0)
        y = np.concatenate(ys) if ys else np.zeros(0)
        x, y = x[np.isfinite(x)], y[np.isfinite(y)]
        if self.xlog:
            x = x[x > 0]
        if x.size:
            xl = (float(x.min()), float(x.max()))
            xl = xl if hist_x and xl[1] > xl[0] else _widen(*xl, log=self.xlog)
        else:
            xl = (1.0, 10.0) if self.xlog else (0.0, 1.0)
        if y.size:
            lo, hi = float(y.min()), float(y.max())
            counts = any(k in ("steps", "bars") for k, _, _ in self.marks)
            # a histogram's floor stays on the axis, only its top gets the margin
            yl = (lo, hi + MARGIN * (hi - lo)) if counts and lo == 0 and hi > 0 else _widen(lo, hi)
        else:
            yl = (0.0, 1.0)
        return xl, yl


@dataclass(frozen=True)
class Frame:
    """A panel's plot area in pixels and its data limits: the data-to-pixel map."""

    left: float
    top: float
    width: float
    height: float
    xl: tuple[float, float]
    yl: tuple[float, float]
    xlog: bool

    def x(self, v) -> np.ndarray:
        v = np.asarray(v, float)
        a, b = self.xl
        if self.xlog:
            v, a, b = np.log10(np.maximum(v, 1e-300)), math.log10(a), math.log10(b)
        return np.clip(self.left + (v - a) / (b - a) * self.width, self.left - 1, self.left + self.width + 1)

    def y(self, v) -> np.ndarray:
        v = np.asarray(v, float)
        a, b = self.yl
        return np.clip(self.top + (b - v) / (b - a) * self.height, self.top - 1, self.top + self.height + 1)


def _points(xs: np.ndarray, ys: np.ndarray) -> str:
    return " ".join(f"{_num(a)},{_num(b)}" for a, b in zip(xs.tolist(), ys.tolist(), strict=True))


def _tag(name: str, **attrs) -> str:
    """An empty SVG element; ``stroke_width=1`` is written ``stroke-width="1"``, floats with one decimal."""
    parts = " ".join(f'{k.replace("_", "-")}="{_num(v) if isinstance(v, float) else v}"' for k, v in attrs.items())
    return f"<{name} {parts}/>"


def _text(x: float, y: float, s: str, size: float, anchor: str = "middle", weight: str = "") -> str:
    w = f' font-weight="{weight}"' if weight else ""
    return f'<text x="{_num(x)}" y="{_num(y)}" font-size="{size:g}" text-anchor="{anchor}"{w}>{html.escape(s)}</text>'


def _line(x1: float, x2: float, y1: float, y2: float, color: str = "#555", width: float = 1.0) -> str:
    return _tag("line", x1=float(x1), x2=float(x2), y1=float(y1), y2=float(y2), stroke=color, stroke_width=f"{width:g}")


def _polygon(xs: np.ndarray, ys: np.ndarray, color: str, opacity: float) -> str:
    return _tag("polygon", fill=color, fill_opacity=f"{opacity:g}", stroke="none", points=_points(xs, ys))


def _draw_marks(p: Panel, f: Frame) -> list[str]:
    out = []
    for kind, d, s in p.marks:
        c = s.get("color", "#000")
        if kind == "line" and d[0].size:
            points = _points(f.x(d[0]), f.y(d[1]))
            out.append(_tag("polyline", fill="none", stroke=c, stroke_width=f"{s['width']:g}", points=points))
        elif kind == "band" and d[0].size:
            xs = np.concatenate([d[0], d[0][::-1]])
            ys = np.concatenate([d[2], d[1][::-1]])
            out.append(_polygon(f.x(xs), f.y(ys), c, s["opacity"]))
        elif kind == "steps":
            edges, h = d
            xs = np.repeat(edges, 2)
            ys = np.concatenate([[0.0], np.repeat(h, 2), [0.0]])
            out.append(_polygon(f.x(xs), f.y(ys), c, s["opacity"]))
        elif kind == "bars":
            x, h, width = d
            x0, x1, y0, y1 = f.x(x - width / 2), f.x(x + width / 2), f.y(np.zeros_like(h)), f.y(h)
            out += [
                _tag("rect", x=a, y=min(t, b), width=r - a, height=abs(b - t), fill=c, fill_opacity=f"{s['opacity']:g}")
                for a, r, b, t in zip(x0.tolist(), x1.tolist(), y0.tolist(), y1.tolist(), strict=True)
            ]
        elif kind == "ticks":
            px, py = f.x(d[0]), f.y(d[1])
            half = max(4.0, f.width / max(len(px), 1) / 4)
            out += [_line(a - half, a + half, b, b, c, 1.5) for a, b in zip(px.tolist(), py.tolist(), strict=True)]
        elif kind == "vline":
            x = float(f.x(d[0]))
            out.append(_line(x, x, f.top, f.top + f.height, c, s["width"]))
        elif kind == "hline":
            y = float(f.y(d[0]))
            out.append(_line(f.left, f.left + f.width, y, y, c, s["width"]))
    return out


def _axes(p: Panel, f: Frame) -> list[str]:
    bottom = f.top + f.height
    out = [
        _tag("rect", x=f.left, y=f.top, width=f.width, height=f.height, fill="none", stroke="#555", stroke_width="0.8")
    ]
    for v in log_ticks(*f.xl) if p.xlog else ticks(*f.xl):
        x = float(f.x(v))
        out += [_line(x, x, bottom, bottom + 3), _text(x, bottom + 12, label(v), 8)]
    if p.y_ticks:
        for v in ticks(*f.yl):
            y = float(f.y(v))
            out += [_line(f.left - 3, f.left, y, y), _text(f.left - 5, y + 3, label(v), 8, anchor="end")]
    if p.title:
        out.append(_text(f.left + f.width / 2, f.top - 5, p.title, 10))
    if p.xlabel:
        out.append(_text(f.left + f.width / 2, bottom + 24, p.xlabel, 9))
    return out


def _legend(entries: list[tuple[str, str, str]], right: float, top: float) -> list[str]:
    """Entries stacked in the top-right corner of a panel whose plot area ends at ``right``."""
    width = 22 + 5.5 * max(len(t) for _, _, t in entries)
    x0 = right - width - 4
    out = [
        _tag(
            "rect",
            x=x0,
            y=top + 4,
            width=width,
            height=13.0 * len(entries) + 4,
            fill="#fff",
            fill_opacity="0.85",
            stroke="#ccc",
            stroke_width="0.6",
        )
    ]
    for i, (kind, c, t) in enumerate(entries):
        y = top + 14 + 13 * i
        if kind in ("steps", "bars", "band"):
            out.append(_tag("rect", x=x0 + 4, y=y - 6, width="12", height="7", fill=c, fill_opacity="0.6"))
        else:
            out.append(_line(x0 + 4, x0 + 16, y - 3, y - 3, c, 1.5))
        out.append(_text(x0 + 20, y, t, 8, anchor="start"))
    return out


def _svg(width: int, height: int, title: str) -> list[str]:
    return [
        f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'font-family="{FONT}" fill="#1f2328"><title>{html.escape(title)}</title>',
        f'<rect width="{width}" height="{height}" fill="#fff"/>',
    ]


def figure(panels: list[Panel], cols: int, title: str, width: int = 880, panel_height: int = 170) -> str:
    """``panels`` in rows of ``cols`` under ``title``, as one ``<svg>`` ``width`` pixels wide; the
    first panel that has named marks carries the legend."""
    cols = max(1, min(cols, len(panels)))
    rows = -(-len(panels) // cols)
    head, pad_l, pad_r, pad_t, pad_b = 26, 46, 16, 18, 30
    cell_w = width / cols
    height = head + rows * panel_height
    out = [*_svg(width, height, title), _text(width / 2, 17, title, 12, weight="600")]
    legend_done = False
    for i, p in enumerate(panels):
        r, c = divmod(i, cols)
        xl, yl = p.limits()
        left = c * cell_w + (pad_l if p.y_ticks else 24)
        f = Frame(
            left,
            head + r * panel_height + pad_t,
            (c + 1) * cell_w - pad_r - left,
            panel_height - pad_t - pad_b - (12 if p.xlabel else 0),
            xl,
            yl,
            p.xlog,
        )
        out += _draw_marks(p, f) + _axes(p, f)
        if p.legend and not legend_done:
            out += _legend(p.legend, f.left + f.width, f.top)
            legend_done = True
    out.append("</svg>")
    return "\n".join(out)


def stacked_bars(
    rows: list[str], parts: list[str], fractions: np.ndarray, colors: list[str], xlabel: str, width: int = 720
) -> str:
    """Horizontal bars, one per row, each split into ``parts`` by ``fractions`` (rows x parts, each row
    summing to at most 1), with a legend of the parts under the axis."""
    fractions = np.asarray(fractions, float)
    bar, pad_l, pad_r, head = 22, 90, 20, 8
    height = head + bar * len(rows) + 62
    plot_w = width - pad_l - pad_r
    out = _svg(width, height, xlabel)
    for i, name in enumerate(rows):
        y = head + bar * i
        left = 0.0
        for j in range(len(parts)):
            w = float(fractions[i, j]) * plot_w
            if w > 0:
                out.append(_tag("rect", x=pad_l + left, y=y + 3.0, width=w, height=bar - 6.0, fill=colors[j]))
            left += w
        out.append(_text(pad_l - 6, y + bar / 2 + 3, name, 9, anchor="end"))
    axis_y = head + bar * len(rows)
    out.append(_line(pad_l, pad_l + plot_w, axis_y, axis_y, width=0.8))
    for v in ticks(0.0, 1.0):
        x = pad_l + v * plot_w
        out += [_line(x, x, axis_y, axis_y + 3), _text(x, axis_y + 13, label(v), 8)]
    out.append(_text(pad_l + plot_w / 2, axis_y + 27, xlabel, 9))
    x = pad_l
    for j, name in enumerate(parts):
        out.append(_tag("rect", x=float(x), y=axis_y + 38.0, width="12", height="8", fill=colors[j]))
        out.append(_text(x + 16, axis_y + 46, name, 9, anchor="start"))
        x += 28 + 6 * len(name)
    out.append("</svg>")
    return "\n".join(out)
