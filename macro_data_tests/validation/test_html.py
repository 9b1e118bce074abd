"""The HTML report: parses, has every section and embedded images, references nothing on the network."""

from __future__ import annotations

import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import pytest

from macro_data.validation import html
from macro_data.validation.dataset import validate_dataset
from macro_data.validation.report import build_report, write_report
from macro_data.worlds import WORLD_IDS

CHROMIUM = Path("/usr/bin/chromium")
URL_ATTRS = {"src", "href", "srcset", "action", "data", "poster", "background", "xlink:href", "formaction"}


class Collector(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.sections: list[str] = []
        self.ids: set[str] = set()
        self.text: list[str] = []
        self.style: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append((tag, a))
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "section":
            self.sections.append(a.get("id"))
        self._in_style = tag == "style"

    def handle_endtag(self, tag):
        if tag == "style":
            self._in_style = False

    def handle_data(self, data):
        (self.style if self._in_style else self.text).append(data)


@pytest.fixture(scope="module")
def rendered(clean_dir, external_root, tmp_path_factory):
    v = validate_dataset(clean_dir, external_root=external_root)
    doc = build_report(v)
    page = html.render(doc, v.dataset_dir, v.manifest, v.real)
    out = tmp_path_factory.mktemp("html")
    json_path, html_path = write_report(out, doc, page)
    return page, Path(html_path), doc


def test_parses_with_every_section(rendered):
    page, _, doc = rendered
    p = Collector()
    p.feed(page)
    p.close()
    assert p.sections == list(html.SECTIONS)
    assert page.lstrip().startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    for w in WORLD_IDS:
        assert f"world-{w}" in p.ids
    text = " ".join(p.text)
    assert f"{doc['score']['value']}/100" in text
    assert "score = round(100 * (0.7 * E + 0.3 * W))" in text
    for w in WORLD_IDS:  # each world appears in the summary table and in the plot sections
        assert text.count(w) >= 5


def test_figures_are_inline_svg(rendered):
    page, _, _ = rendered
    p = Collector()
    p.feed(page)
    assert not [a for t, a in p.tags if t == "img"]
    svgs = re.findall(r"<svg\b.*?</svg>", page, re.S)
    # per world: parameters, trajectories, IRF fan chart, realism; plus the split composition
    assert len(svgs) == 4 * len(WORLD_IDS) + 1
    for svg in svgs:
        root = ET.fromstring(svg)  # well-formed on its own
        assert root.attrib["viewBox"].startswith("0 0 ") and root.find("title").text
        marks = [el for el in root.iter() if el.tag in ("polyline", "polygon")]
        bars = [el for el in root.iter("rect") if "fill-opacity" in el.attrib or el.attrib.get("height") == "16.0"]
        assert marks or bars, root.find("title").text  # something is drawn, not only axes
    titles = [ET.fromstring(svg).find("title").text for svg in svgs]
    for w in WORLD_IDS:
        assert f"{w}: drawn parameters (" in " ".join(titles)
        assert f"{w}: impulse responses to +1 sd innovations" in " ".join(titles)


def test_page_is_the_same_bytes_each_time(rendered, clean_dir, external_root):
    page, _, doc = rendered
    v = validate_dataset(clean_dir, external_root=external_root)
    assert html.render(doc, v.dataset_dir, v.manifest, v.real) == page


def test_no_external_reference(rendered):
    page, _, _ = rendered
    p = Collector()
    p.feed(page)
    assert not [t for t, _ in p.tags if t in ("script", "link", "iframe", "object", "embed", "base")]
    for tag, attrs in p.tags:
        for k, v in attrs.items():
            if k in URL_ATTRS and v is not None:
                assert v.startswith(("data:", "#")), f"<{tag} {k}={v[:60]!r}>"
    assert "url(" not in " ".join(p.style)
    assert not re.search(r"(?i)\b(https?|ftp|wss?):\s*//", page)


def test_sections_hold_their_content(rendered):
    page, _, doc = rendered
    realism = page[page.index('<section id="realism">') : page.index('<section id="provenance">')]
    assert "US percentile in world" in realism and "us_macro_statsmodels" in realism
    prov = page[page.index('<section id="provenance">') :]
    assert doc["dataset"]["manifest_sha256"] in prov and doc["dataset"]["recipe_sha256"] in prov
    for w in WORLD_IDS:
        for stage in ("world_draws", "world_arrays", "world_splits"):
            run_id = doc["provenance"]["worlds"][w]["stages"][stage]["run_id"]
            assert run_id in prov
    splits = page[page.index('<section id="splits">') : page.index('<section id="realism">')]
    assert splits.count("<svg") == 1


def test_realism_section_says_skipped_without_data(clean_dir, tmp_path):
    v = validate_dataset(clean_dir, external_root=tmp_path)
    doc = build_report(v)
    page = html.render(doc, v.dataset_dir, v.manifest, v.real)
    realism = page[page.index('<section id="realism">') : page.index('<section id="provenance">')]
    assert "SKIPPED" in realism and "no verified external data" in realism
    assert "<svg" not in realism


@pytest.mark.skipif(not CHROMIUM.exists(), reason="headless browser /usr/bin/chromium is not installed")
def test_renders_in_a_headless_browser(rendered, tmp_path):
    _, html_path, _ = rendered
    shot = tmp_path / "report.png"
    out = subprocess.run(
        [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            f"--screenshot={shot}",
            "--window-size=1280,4000",
            html_path.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 50_000
    shutil.copyfile(shot, tmp_path / "kept.png")
