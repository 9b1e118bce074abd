"""The report's SVG charts: round ticks, the data-to-pixel map, and well-formed, self-contained SVG."""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from macro_data.validation import charts

finite = st.floats(min_value=-1e9, max_value=1e9, allow_nan=False, allow_infinity=False)


@settings(max_examples=300, deadline=None)
@given(finite, finite)
def test_ticks_are_few_round_evenly_spaced_values_inside_the_range(a, b):
    lo, hi = min(a, b), max(a, b)
    if hi - lo < 1e-6 * max(abs(lo), abs(hi), 1e-300):
        return  # a range narrower than float spacing allows for labels
    t = charts.ticks(lo, hi)
    assert 2 <= len(t) <= 5, t
    assert all(lo - 1e-9 * (hi - lo) <= v <= hi + 1e-9 * (hi - lo) for v in t)
    steps = np.diff(t)
    assert np.allclose(steps, steps[0], rtol=1e-6)
    mantissa = steps[0] / 10.0 ** math.floor(math.log10(steps[0]))
    assert any(math.isclose(mantissa, m, rel_tol=1e-6) for m in (1, 2, 2.5, 5, 10)), steps[0]
    assert all(math.isclose(v / steps[0], round(v / steps[0]), abs_tol=1e-6) for v in t)  # multiples of the step


def test_ticks_known_cases():
    assert charts.ticks(0, 1) == [0, 0.25, 0.5, 0.75, 1]
    assert charts.ticks(-0.5, 10.5) == [0, 2.5, 5, 7.5, 10]
    assert charts.ticks(0.985, 0.995) == [0.986, 0.988, 0.99, 0.992, 0.994]
    assert charts.ticks(-1, 1) == [-1, -0.5, 0, 0.5, 1]
    assert charts.ticks(2, 2) == [2] and charts.ticks(float("nan"), 1) == []


def test_log_ticks_are_powers_of_ten_or_one_two_five():
    assert charts.log_ticks(0.05, 20) == [0.1, 1, 10]
    assert charts.log_ticks(1.5, 60) == [2, 5, 10, 20, 50]
    lin = charts.log_ticks(0.3, 0.9)  # one 1-2-5 value only: linear ticks
    assert lin == charts.ticks(0.3, 0.9)


def test_labels_have_no_negative_zero_and_four_significant_digits():
    assert charts.label(-0.0) == "0" and charts.label(-1e-320) == "-1e-320"
    assert charts.label(0.98754321) == "0.9875" and charts.label(2.5e-5) == "2.5e-05"


def test_frame_maps_limits_to_the_plot_area_edges():
    f = charts.Frame(left=10, top=20, width=100, height=50, xl=(-1.0, 3.0), yl=(0.0, 2.0), xlog=False)
    assert f.x([-1.0, 1.0, 3.0]).tolist() == [10, 60, 110]
    assert f.y([0.0, 0.5, 2.0]).tolist() == [70, 57.5, 20]  # y grows downwards in SVG
    log = charts.Frame(left=0, top=0, width=90, height=10, xl=(0.1, 100.0), yl=(0, 1), xlog=True)
    assert np.allclose(log.x([0.1, 1.0, 10.0, 100.0]), [0, 30, 60, 90])
    # a value beyond the limits stays at the edge (one pixel out), never outside the figure
    assert f.x([1e9]).tolist() == [111] and f.y([-1e9]).tolist() == [71]


def test_panel_limits_widen_lines_and_keep_histograms_on_their_floor():
    p = charts.Panel()
    p.line([0, 10], [1, 3])
    (x0, x1), (y0, y1) = p.limits()
    assert (x0, x1) == pytest.approx((-0.5, 10.5)) and (y0, y1) == pytest.approx((0.9, 3.1))
    h = charts.Panel()
    heights = h.histogram([0.1, 0.2, 0.2, 0.9], np.linspace(0, 1, 11))
    assert heights.tolist() == [0, 1, 2, 0, 0, 0, 0, 0, 0, 1]
    (x0, x1), (y0, y1) = h.limits()
    assert (x0, x1) == (0, 1) and y0 == 0 and y1 == pytest.approx(2.1)
    d = charts.Panel()
    dens = d.histogram(np.random.default_rng(0).uniform(0, 2, 4000), np.linspace(0, 2, 5), density=True)
    assert float(np.sum(dens * 0.5)) == pytest.approx(1.0)  # a density integrates to one over the bins


def _numbers(svg: str) -> list[float]:
    coords = []
    for el in ET.fromstring(svg).iter():
        for k in ("x", "y", "x1", "x2", "y1", "y2"):
            if k in el.attrib:
                coords.append(float(el.attrib[k]))
        if "points" in el.attrib:
            coords += [float(v) for pair in el.attrib["points"].split() for v in pair.split(",")]
    return coords


def test_figure_is_well_formed_self_contained_svg_inside_its_view_box():
    rng = np.random.default_rng(1)
    a, b, c = charts.Panel("a <&> b", xlabel="quarter"), charts.Panel("hist", y_ticks=False), charts.Panel(xlog=True)
    a.line(np.arange(50), rng.normal(size=50), name="path")
    a.band(np.arange(50), -np.ones(50), np.ones(50), name="band")
    a.line([0, 1, 2], [np.nan, np.inf, 1.0])  # non-finite points are left out
    a.hline(0.0)
    b.histogram(rng.normal(size=500), np.linspace(-1, 1, 11), density=True)  # values outside the bins too
    b.vline(50.0)  # far outside the bins: the x limits widen to hold it
    c.histogram(np.exp(rng.normal(size=500)), 20)
    c.histogram(np.array([]), 5)  # nothing to draw
    svg = charts.figure([a, b, c], 2, "title & more")
    root = ET.fromstring(svg)
    assert root.tag == "svg" and "xmlns" not in svg  # the HTML parser places it in the SVG namespace
    _, _, width, height = (float(v) for v in root.attrib["viewBox"].split())
    nums = _numbers(svg)
    assert nums and all(-1 <= v <= max(width, height) + 1 for v in nums)
    xs = [float(v) for el in root.iter() for k, v in el.attrib.items() if k in ("x", "x1", "x2")]
    assert max(xs) <= width and min(xs) >= 0
    assert not re.search(r"href|url\(|\bid=", svg)
    texts = [t.text for t in root.iter("text")]
    assert "a <&> b" in texts and "title & more" in texts and "quarter" in texts
    assert {"path", "band"} <= set(texts)  # the legend
    assert len(list(root.iter("polyline"))) == 2
    assert charts.figure([a, b, c], 2, "title & more") == svg  # the same bytes every time


def test_stacked_bars_widths_are_the_fractions():
    svg = charts.stacked_bars(["w1", "w2"], ["p", "q"], np.array([[0.75, 0.25], [0.5, 0.5]]), ["#111", "#222"], "f")
    root = ET.fromstring(svg)
    bars = [r for r in root.iter("rect") if r.attrib.get("height") == "16.0"]
    widths = [float(r.attrib["width"]) for r in bars]
    assert widths[0] / widths[1] == pytest.approx(3.0, rel=1e-3) and widths[2] == pytest.approx(widths[3], rel=1e-3)
    assert sum(widths[:2]) == pytest.approx(sum(widths[2:]), abs=0.2)
