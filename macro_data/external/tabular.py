"""CSV schema check, run after the hash check: header vs the registry's columns, rows, numeric parse.

The file is decoded with the registry's encoding (a UTF-8 byte-order mark is always skipped) and
parsed with the :mod:`csv` module, so quoted column names (``"year","quarter",...``) compare equal to
plain ones. The first row holds the column names; the next ``header_rows`` rows are skipped (FRED-MD
has one transformation-code row, FRED-QD two). Blank rows are ignored. ``.csv.gz``/``.csv.bz2`` are
decompressed on the fly with a cap on the decompressed bytes.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO

from macro_data.external.registry import CsvOptions

DEFAULT_MAX_TEXT_BYTES = 2 << 30
MISSING = {"", "na", "nan", "n/a", ".", "null"}


@dataclass
class TableReport:
    """What the header and body of a CSV look like, and whether they match the registry."""

    ok: bool
    columns: list[str]
    expected: list[str] | None
    problems: list[str] = field(default_factory=list)
    rows: int = 0
    ragged_rows: int = 0
    numeric_columns: list[str] = field(default_factory=list)
    non_numeric: dict[str, int] = field(default_factory=dict)
    missing: dict[str, int] = field(default_factory=dict)
    first_row: list[str] = field(default_factory=list)
    last_row: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        state = "ok" if self.ok else "FAILED: " + "; ".join(self.problems)
        return f"{len(self.columns)} columns, {self.rows} rows, {len(self.numeric_columns)} numeric: {state}"


class _CappedReader(io.RawIOBase):
    """Raw reader that refuses to yield more than ``cap`` bytes (decompression bombs)."""

    def __init__(self, inner: IO[bytes], cap: int):
        self.inner, self.cap, self.n = inner, cap, 0

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        data = self.inner.read(len(b))
        self.n += len(data)
        if self.n > self.cap:
            raise ValueError(f"more than {self.cap} bytes of text after decompression")
        b[: len(data)] = data
        return len(data)


def open_text(path: Path, fmt: str, options: CsvOptions, max_bytes: int = DEFAULT_MAX_TEXT_BYTES) -> IO[str]:
    """A text stream over a csv / csv.gz / csv.bz2 file (BOM skipped, newline='' for the csv module)."""
    if fmt == "csv.gz":
        raw: IO[bytes] = gzip.open(path, "rb")
    elif fmt == "csv.bz2":
        raw = bz2.open(path, "rb")
    else:
        raw = open(path, "rb")
    encoding = "utf-8-sig" if options.encoding == "utf-8" else options.encoding
    buffered = io.BufferedReader(_CappedReader(raw, max_bytes))
    return io.TextIOWrapper(buffered, encoding=encoding, newline="")


def _number(cell: str) -> float | None:
    try:
        x = float(cell)
    except ValueError:
        return None
    return x if math.isfinite(x) else None


def check_table(
    path: Path, fmt: str, options: CsvOptions, expected: Sequence[str] | None, max_bytes: int = DEFAULT_MAX_TEXT_BYTES
) -> TableReport:
    """Parse the header and all rows; compare the header with ``expected`` (None: report only)."""
    exp = list(expected) if expected is not None else None
    try:
        with open_text(path, fmt, options, max_bytes) as f:
            reader = csv.reader(f, delimiter=options.delimiter, skipinitialspace=True)
            header = next(reader, None)
            if header is None:
                return TableReport(False, [], exp, ["the file is empty"])
            columns = [c.strip() for c in header]
            for _ in range(options.header_rows):
                next(reader, None)
            report = TableReport(True, columns, exp)
            bad = [0] * len(columns)
            missing = [0] * len(columns)
            for row in reader:
                if not row or all(not c.strip() for c in row):
                    continue
                if len(row) != len(columns):
                    report.ragged_rows += 1
                    continue
                report.rows += 1
                if report.rows == 1:
                    report.first_row = row[:4]
                report.last_row = row[:4]
                for j, cell in enumerate(row):
                    c = cell.strip()
                    if c.lower() in MISSING:
                        missing[j] += 1
                    elif _number(c) is None:
                        bad[j] += 1
    except (UnicodeDecodeError, ValueError, OSError, EOFError, csv.Error) as exc:
        return TableReport(False, [], exp, [f"cannot parse as {fmt} ({type(exc).__name__}: {exc})"])
    report.numeric_columns = [c for c, b in zip(columns, bad) if b == 0 and report.rows > 0]
    report.non_numeric = {c: b for c, b in zip(columns, bad) if b}
    report.missing = {c: m for c, m in zip(columns, missing) if m}
    report.problems = _header_problems(columns, exp)
    if report.ragged_rows:
        report.problems.append(f"{report.ragged_rows} rows do not have {len(columns)} fields")
    if report.rows == 0:
        report.problems.append("no data rows")
    report.ok = not report.problems
    return report


def _header_problems(columns: list[str], expected: list[str] | None) -> list[str]:
    problems = []
    dupes = sorted({c for c in columns if columns.count(c) > 1})
    if dupes:
        problems.append(f"duplicate column names {dupes}")
    if expected is None or columns == expected:
        return problems
    missing = [c for c in expected if c not in columns]
    extra = [c for c in columns if c not in expected]
    if missing:
        problems.append(f"missing columns {missing}")
    if extra:
        problems.append(f"unexpected columns {extra}")
    if not missing and not extra:
        problems.append(f"columns in a different order: expected {expected}, found {columns}")
    return problems
