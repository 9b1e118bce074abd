"""CSV header/schema check: BOM, quoted names, skipped rows, compression, mismatches."""

from __future__ import annotations

import bz2
import gzip

import pytest

from macro_data.external.registry import CsvOptions
from macro_data.external.tabular import check_table

from .conftest import MACRODATA_COLUMNS, macrodata_path

FRED_MD = (
    b"sasdate,RPI,W875RX1,INDPRO\r\n"
    b"Transform:,5,5,5\r\n"
    b"1/1/1959,2583.560,2426.0,21.9616\r\n"
    b"2/1/1959,2593.596,2434.8,22.3917\r\n"
    b",,,\r\n"
)
FRED_QD = b"sasdate,GDPC1,PCECC96\nfactors,1,1\ntransform,5,5\n3/1/1959,3352.129,1999.233\n6/1/1959,3427.667,2036.837\n"


def _write(tmp_path, name, data: bytes):
    p = tmp_path / name
    p.write_bytes(data)
    return p


def test_real_macrodata_header_with_quoted_names():
    t = check_table(macrodata_path(), "csv", CsvOptions(), MACRODATA_COLUMNS)
    assert t.ok and t.columns == MACRODATA_COLUMNS and t.rows == 203
    assert t.numeric_columns == MACRODATA_COLUMNS and t.first_row[:2] == ["1959", "1"]
    assert t.last_row[:2] == ["2009", "3"]


def test_bom_and_crlf_and_quotes(tmp_path):
    p = _write(tmp_path, "b.csv", b'\xef\xbb\xbf"year", "a b",c\r\n2000,1.5,"x"\r\n2001,2,NA\r\n')
    t = check_table(p, "csv", CsvOptions(), ["year", "a b", "c"])
    assert t.ok and t.columns == ["year", "a b", "c"] and t.rows == 2
    assert t.numeric_columns == ["year", "a b"] and t.non_numeric == {"c": 1} and t.missing == {"c": 1}


def test_fred_md_transformation_row_is_skipped(tmp_path):
    p = _write(tmp_path, "md.csv", FRED_MD)
    t = check_table(p, "csv", CsvOptions(header_rows=1), ["sasdate", "RPI", "W875RX1", "INDPRO"])
    assert t.ok and t.rows == 2 and t.numeric_columns == ["RPI", "W875RX1", "INDPRO"]
    unskipped = check_table(p, "csv", CsvOptions(header_rows=0), None)
    assert unskipped.rows == 3 and unskipped.first_row[0] == "Transform:"
    assert unskipped.non_numeric == {"sasdate": 3}  # 'Transform:' and the dates


def test_fred_qd_two_rows_are_skipped(tmp_path):
    p = _write(tmp_path, "qd.csv", FRED_QD)
    t = check_table(p, "csv", CsvOptions(header_rows=2), None)
    assert t.ok and t.rows == 2 and t.first_row[0] == "3/1/1959" and t.numeric_columns == ["GDPC1", "PCECC96"]


@pytest.mark.parametrize(
    "expected, problem",
    [
        (["year", "a"], "unexpected columns ['b']"),
        (["year", "a", "b", "c"], "missing columns ['c']"),
        (["a", "year", "b"], "columns in a different order: expected ['a', 'year', 'b'], found ['year', 'a', 'b']"),
    ],
)
def test_header_mismatches_are_named(tmp_path, expected, problem):
    p = _write(tmp_path, "m.csv", b"year,a,b\n1,2,3\n")
    t = check_table(p, "csv", CsvOptions(), expected)
    assert not t.ok and problem in t.problems


def test_ragged_rows_empty_and_undecodable(tmp_path):
    t = check_table(_write(tmp_path, "r.csv", b"a,b\n1,2\n1,2,3\n"), "csv", CsvOptions(), None)
    assert not t.ok and t.problems == ["1 rows do not have 2 fields"]
    assert check_table(_write(tmp_path, "e.csv", b""), "csv", CsvOptions(), None).problems == ["the file is empty"]
    bad = check_table(_write(tmp_path, "u.csv", b"a,b\n\xff\xfe,1\n"), "csv", CsvOptions(), None)
    assert not bad.ok and "cannot parse as csv (UnicodeDecodeError" in bad.problems[0]
    latin = check_table(_write(tmp_path, "l.csv", b"caf\xe9,b\n1,2\n"), "csv", CsvOptions(encoding="latin-1"), None)
    assert latin.ok and latin.columns == ["caf\u00e9", "b"]


def test_compressed_csv_and_decompression_cap(tmp_path):
    raw = macrodata_path().read_bytes()
    gz = _write(tmp_path, "m.csv.gz", gzip.compress(raw))
    bz = _write(tmp_path, "m.csv.bz2", bz2.compress(raw))
    for p, fmt in ((gz, "csv.gz"), (bz, "csv.bz2")):
        t = check_table(p, fmt, CsvOptions(), MACRODATA_COLUMNS)
        assert t.ok and t.rows == 203
    capped = check_table(gz, "csv.gz", CsvOptions(), MACRODATA_COLUMNS, max_bytes=1000)
    assert not capped.ok and "more than 1000 bytes of text after decompression" in capped.problems[0]
    notgz = check_table(_write(tmp_path, "n.csv.gz", raw), "csv.gz", CsvOptions(), None)
    assert not notgz.ok and "cannot parse as csv.gz" in notgz.problems[0]
