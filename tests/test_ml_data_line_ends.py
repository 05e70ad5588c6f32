"""Labelled files as spreadsheets save them: lines ended by a carriage return alone ("CSV (Macintosh)") are read
as lines, a first line with a bare carriage return inside is no header, and UTF-16 ("Unicode Text") is refused
with what to do (each used to end every `ml` command in csv's traceback), and so are a workbook and a compressed
file."""
import bz2
import gzip
import io
import lzma
import subprocess
import sys
import zipfile

import pytest

from engine.ml.data import DataError, read_dataset

from .conftest import ROOT

ROWS = [("spam", "WINNER!! You have won a 1000 cash prize. Call 09061701461 to claim"),
        ("ham", "Ok lar, see you at the cinema at 8")]


@pytest.mark.parametrize("name,sep", [("cr.csv", ","), ("cr.tsv", "\t"), ("cr.txt", "\t")])
@pytest.mark.parametrize("header", [True, False])
def test_carriage_return_line_ends_are_lines(tmp_path, name, sep, header):
    p = tmp_path / name
    p.write_bytes("".join(f"{a}{sep}{b}\r" for a, b in ([("label", "text")] if header else []) + ROWS).encode())
    ds = read_dataset(p)
    assert (ds.labels, ds.texts, ds.errors) == ([1, 0], [t for _, t in ROWS], [])


def test_a_bare_carriage_return_in_the_first_line_is_no_header(tmp_path):
    p = tmp_path / "x.csv"
    p.write_bytes(b"spam,Win a prize now\rcall 0900 123 456\nham,see you at the cinema at 8\n")
    ds = read_dataset(p)
    assert ds.texts[-1] == "see you at the cinema at 8"


def test_utf16_is_refused_with_what_to_do(tmp_path):
    p = tmp_path / "unicode.txt"
    p.write_bytes("label\ttext\r\n".encode("utf-16") + "".join(f"{a}\t{b}\r\n" for a, b in ROWS).encode("utf-16-le"))
    with pytest.raises(DataError, match=r"unicode\.txt:1: UTF-16 text .*save the file as UTF-8"):
        read_dataset(p)
    r = subprocess.run([sys.executable, "-m", "engine.cli", "ml", "eval", "--data-dir", str(tmp_path / "dd"),
                        "--data", str(p)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.startswith("telfilter ml eval: error: ") and "UTF-16" in r.stderr


@pytest.mark.parametrize("name,pack,why", [
    ("labelled.xlsx", lambda b: _zip(b), "ZIP archive"),
    ("labelled.tsv.gz", lambda b: gzip.compress(b), "compressed"),
    ("labelled.tsv.xz", lambda b: lzma.compress(b), "compressed"),
    ("labelled.tsv.bz2", lambda b: bz2.compress(b), "compressed")])
def test_a_workbook_or_a_compressed_file_is_refused_as_what_it_is(tmp_path, name, pack, why):
    """Each of their lines was "not valid UTF-8 ... (save the file as UTF-8)", the first 1,000 of them."""
    p = tmp_path / name
    p.write_bytes(pack("".join(f"{a}\t{b}\n" for a, b in ROWS * 50).encode()))
    with pytest.raises(DataError, match=f"{name}:1: .*{why}"):
        read_dataset(p)


def _zip(b: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("xl/sheet1.xml", b)
    return buf.getvalue()
