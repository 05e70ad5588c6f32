"""smpp_proxy.filetail.Tail: the whole lines appended to a file since the last look, a line longer than one read
skipped (it used to be read again at every look, every line after it never reached)."""
import logging

from engine.smpp_proxy.filetail import Tail


def test_appended_whole_lines_only(tmp_path):
    p = tmp_path / "reports.jsonl"
    p.write_bytes(b"old\n")
    t = Tail(p)
    assert t.lines() == []
    with open(p, "ab") as f:
        f.write(b"one\ntw")
    assert t.lines() == [b"one"]
    with open(p, "ab") as f:
        f.write(b"o\n")
    assert t.lines() == [b"two"]


def test_a_replaced_file_is_read_from_its_start(tmp_path):
    p = tmp_path / "dnc.delta"
    p.write_bytes(b"a\nb\n")
    t = Tail(p)
    q = tmp_path / "new"
    q.write_bytes(b"c\n")
    q.replace(p)
    assert t.lines() == [b"c"]


def test_a_line_longer_than_a_read_is_skipped_and_said(tmp_path, caplog):
    p = tmp_path / "reports.jsonl"
    p.write_bytes(b"")
    t = Tail(p)
    with open(p, "ab") as f:
        f.write(b"x" * 2500 + b"\nafter\n")
    got = []
    with caplog.at_level(logging.WARNING, logger="telfilter.smpp"):
        for _ in range(5):
            got += t.lines(most=1000)
    assert got == [b"after"]
    assert sum("left out" in r.getMessage() for r in caplog.records) == 1


def test_a_line_cut_by_the_read_after_a_skip_is_not_skipped(tmp_path):
    p = tmp_path / "reports.jsonl"
    p.write_bytes(b"")
    t = Tail(p)
    with open(p, "ab") as f:          # the long line ends inside a read; the next line crosses that read's end
        f.write(b"x" * 1500 + b"\n" + b"y" * 700 + b"\nz\n")
    got = []
    for _ in range(6):
        got += t.lines(most=1000)
    assert got == [b"y" * 700, b"z"]
