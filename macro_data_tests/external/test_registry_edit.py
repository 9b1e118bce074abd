"""Registry edits by pin and register: the edited entry changes, every other byte of the file stays.

The registries here are written the way people write them (and as the shipped one is): comments
between and inside entries, flow mappings with comments after them, a flow sequence wrapped over
two lines, quoted and unquoted strings, long lines, and a mode of the user's choosing.
"""

from __future__ import annotations

import re
import stat

import pytest

from macro_data.external.cache import Cache
from macro_data.external.errors import RegistryError
from macro_data.external.pinning import pin
from macro_data.external.registering import register
from macro_data.external.registry import load_registry
from macro_data.external.registry_edit import update_entry

from .conftest import MACRODATA_COLUMNS, MACRODATA_SHA256, MACRODATA_SIZE, PAYLOAD, make_tar, sha256

HEAD = """# Reference data. Comments here must survive.
version: 1
datasets:
  - name: first
    description: An entry nobody touches, with a description long enough to be folded by a YAML writer that folds lines
    urls:
      # a comment inside the entry
      - https://example.org/data/first.csv   # primary
    filename: first.csv
    sha256: {sha_a}
    size: 10
    format: csv
    csv: {{header_rows: 1}}  # one row of codes after the header
    columns: [year, quarter, realgdp, realcons, realinv, realgovt, realdpi, cpi, m1, tbilrate, unemp, pop, infl,
              realint]
    vintage: "2024-01"
    license: 'single quoted'

  # the entry under review
"""

UNDER_REVIEW = """  - name: later
    description: to be pinned
    urls:
      - {url}   # primary
    filename: macrodata.csv
    pinned: false   # until reviewed
    format: csv
    csv: {{header_rows: 0}}  # plain CSV
    license: public domain
"""

TAIL = """
  # another entry after it
  - name: last
    description: stays as it is
    urls: [https://example.org/last.csv]
    filename: last.csv
    sha256: {sha_b}
    size: 3
    format: csv
    x_note: yes   # a YAML 1.1 boolean to PyYAML, a string to a YAML 1.2 writer
# a comment at the very end
"""


def _text(server) -> tuple[str, str, str]:
    head = HEAD.format(sha_a="a" * 64)
    entry = UNDER_REVIEW.format(url=server.url("/ok/macrodata.csv"))
    tail = TAIL.format(sha_b="b" * 64)
    return head, entry, tail


def test_pin_changes_the_entry_only(env, server, policy):
    reg = env["registry"]
    head, entry, tail = _text(server)
    reg.write_text(head + entry + tail)
    reg.chmod(0o664)
    before = load_registry()
    pin("later", policy=policy)
    text = reg.read_text()
    assert text.startswith(head) and text.endswith(tail)
    columns = ", ".join(MACRODATA_COLUMNS)
    assert text[len(head) : -len(tail)] == (
        "  - name: later\n"
        "    description: to be pinned\n"
        "    urls:\n"
        f"      - {server.url('/ok/macrodata.csv')}   # primary\n"
        "    filename: macrodata.csv\n"
        f"    sha256: {MACRODATA_SHA256}\n"
        f"    size: {MACRODATA_SIZE}\n"
        f"    columns: [{columns}]\n"
        "    format: csv\n"
        "    csv: {header_rows: 0}  # plain CSV\n"
        "    license: public domain\n"
    )
    assert stat.S_IMODE(reg.stat().st_mode) == 0o664  # the user's mode is kept
    after = load_registry()
    assert after.get("first").document == before.get("first").document
    assert after.get("last").document == before.get("last").document and after.get("last").document["x_note"] is True
    e = after.get("later")
    assert (e.sha256, e.size, e.columns) == (MACRODATA_SHA256, MACRODATA_SIZE, tuple(MACRODATA_COLUMNS))
    assert Cache().object_path(e).read_bytes() == PAYLOAD
    # a second pin of unchanged bytes rewrites the same values: the file does not change at all
    pinned = reg.read_text()
    assert pin("later", policy=policy).unchanged
    assert reg.read_text() == pinned


def test_register_appends_the_entry_only(env, server):
    reg = env["registry"]
    original = "".join(_text(server))
    reg.write_text(original)
    local = env["tmp"] / "series.csv"
    local.write_bytes(b"date,on,no,2024-01-01\n2000-01-01,1,2,3\n")  # names a YAML 1.1 reader would misread
    register("series", local, license="in-house")
    e = load_registry().get("series")
    assert e.kind == "manual" and e.columns == ("date", "on", "no", "2024-01-01")  # strings, not True/False/date
    stamp = e.document["registered_at"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", stamp)
    end_of_last_entry = original.index("# a comment at the very end")
    assert reg.read_text() == (
        original[:end_of_last_entry] + "\n"
        "  - name: series\n"
        "    kind: manual\n"
        "    description: Local file series.csv registered with `macro-data register`\n"
        "    filename: series.csv\n"
        f"    sha256: {sha256(local.read_bytes())}\n"
        f"    size: {len(local.read_bytes())}\n"
        "    format: csv\n"
        "    csv: {header_rows: 0}\n"
        '    columns: [date, "on", "no", "2024-01-01"]\n'
        "    license: in-house\n"
        f'    registered_at: "{stamp}"\n' + original[end_of_last_entry:]
    )
    assert Cache().object_path(e).read_bytes() == local.read_bytes()


def test_pin_of_an_archive_fills_in_its_members_in_place(env, server, policy):
    small = b"a,b\n1,2\n"
    data = make_tar([("data/small.csv", small, {}), ("README", b"read me", {})])
    url = server.serve("/arch.tar.gz", data)
    reg = env["registry"]
    head = "version: 1\ndatasets:\n"
    entry = (
        "- name: arch\n"
        "  description: an archive\n"
        f"  urls: [{url}]\n"
        "  filename: arch.tar.gz\n"
        "  pinned: false\n"
        "  format: tar.gz\n"
        "  members:\n"
        "    data/small.csv: {}  # the table\n"
        "    README:\n"
        "      size: 7  # known already\n"
    )
    reg.write_text(head + entry)
    pin("arch", policy=policy)
    assert reg.read_text() == head + (
        "- name: arch\n"
        "  description: an archive\n"
        f"  urls: [{url}]\n"
        "  filename: arch.tar.gz\n"
        f"  sha256: {sha256(data)}\n"
        f"  size: {len(data)}\n"
        "  format: tar.gz\n"
        "  members:\n"
        # inside the edited entry ruamel.yaml writes one space before the comment of a flow mapping
        f"    data/small.csv: {{sha256: {sha256(small)}, size: {len(small)}, columns: [a, b]}} # the table\n"
        "    README:\n"
        f"      sha256: {sha256(b'read me')}\n"
        "      size: 7  # known already\n"
    )
    e = load_registry().get("arch")
    assert (Cache().members_dir(e) / "data" / "small.csv").read_bytes() == small


def test_a_flow_style_list_is_rewritten_whole_with_its_comments(env, server):
    reg = env["registry"]
    reg.write_text(
        "# top comment\nversion: 1\n"
        "datasets: [{name: m, description: d, kind: manual, filename: m.csv, sha256: "
        + "c" * 64
        + ", size: 3, format: csv}]  # all in one line\n"
    )
    local = env["tmp"] / "x.csv"
    local.write_bytes(b"x\n1\n")
    register("x", local)
    text = reg.read_text()
    assert text.startswith("# top comment\n") and "# all in one line" in text
    assert load_registry().names == ["m", "x"]


def test_an_edit_that_would_make_the_registry_invalid_writes_nothing(env, server, policy):
    reg = env["registry"]
    head, entry, tail = _text(server)
    reg.write_text(head + entry + tail)
    original = reg.read_bytes()
    with pytest.raises(RegistryError, match=r"entry 'later' \(#2\), field size: size 0 must be > 0"):
        update_entry(reg, "later", lambda doc: doc.update(size=0))
    with pytest.raises(RegistryError, match=r"no entry named 'nope'; nothing was written"):
        update_entry(reg, "nope", lambda doc: None)
    assert reg.read_bytes() == original
