"""`telfilter report` over damaged or repeated inputs: a compressed log damaged in the middle (not only cut short)
is a malformed input named by file and line, the lines before it counted; the same log named twice (a path and a
symlink to it, or the path repeated by a glob) is read once."""
import gzip
import json
import os
from datetime import timedelta, timezone

from engine.report import make_report

HANOI = timezone(timedelta(hours=7))


def _text(n):
    return "".join(json.dumps({"ts": f"2026-03-01T09:{i:02d}:00+07:00", "kind": "sms", "action": "allow",
                               "score": 0, "sender": "84901234567", "hits": []}) + "\n" for i in range(n))


def test_a_gzip_damaged_in_the_middle_is_named_and_the_report_still_written(tmp_path):
    text = _text(50)
    one = gzip.compress(text.encode())
    damaged = bytearray(one)
    damaged[len(damaged) // 2] ^= 0xFF                  # a flipped byte in the deflate stream (a bad disk block)
    damaged[len(damaged) // 2 + 1] ^= 0xFF
    (tmp_path / "v.log.2.gz").write_bytes(bytes(damaged))
    (tmp_path / "v.log.1.gz").write_bytes(one)
    s = make_report([tmp_path / "v.log.1.gz", tmp_path / "v.log.2.gz"], tmp_path / "out", HANOI, progress=False,
                    with_plots=False)
    assert s["totals"]["sms"]["allow"] >= 50            # the good log whole, and what came before the damage
    assert s["inputs"]["malformed"] == 1
    where, why = s["inputs"]["malformed_lines"][0].split(": ", 1)
    assert where.startswith(f"{tmp_path / 'v.log.2.gz'}:") and where.rsplit(":", 1)[1].isdigit(), where
    assert "unreadable from here on" in why
    assert (tmp_path / "out" / "summary.json").exists()


def test_a_cut_gzip_names_the_line_it_stops_at(tmp_path):
    (tmp_path / "cut.gz").write_bytes(gzip.compress(_text(50).encode())[:-40])
    s = make_report([tmp_path / "cut.gz"], tmp_path / "out", HANOI, progress=False, with_plots=False)
    n = s["totals"]["sms"]["allow"]
    assert 0 < n < 50
    # counted lines 1..n; the line the stream broke in is n+1 (the one it could not finish)
    assert s["inputs"]["malformed_lines"] == [
        f"{tmp_path / 'cut.gz'}:{n + 1}: unreadable from here on: EOFError: Compressed file ended before the "
        "end-of-stream marker was reached"]


def test_the_same_log_named_twice_is_counted_once(tmp_path):
    (tmp_path / "v.log").write_text(_text(10))
    os.symlink(tmp_path / "v.log", tmp_path / "current.log")
    s = make_report([tmp_path / "v.log", tmp_path / "current.log", tmp_path / "v.log"], tmp_path / "out", HANOI,
                    progress=False, with_plots=False)
    assert s["totals"]["sms"]["allow"] == 10
    assert s["records"] == 10
    assert s["inputs"]["repeated_logs"] == [f"{tmp_path / 'current.log'} (the same file as {tmp_path / 'v.log'})",
                                            f"{tmp_path / 'v.log'} (the same file as {tmp_path / 'v.log'})"]


def test_a_log_being_compressed_by_logrotate_is_read_once(tmp_path):
    """logrotate's `compress` writes verdicts.log.1.gz beside verdicts.log.1 and removes the latter only when done:
    `--log verdicts.log*` meanwhile named both, and the lines of the compressed copy were counted twice (all of
    them once it was whole, those written so far while it was cut)."""
    text = _text(50)
    (tmp_path / "v.log").write_text(_text(3))
    (tmp_path / "v.log.1").write_text(text)
    whole = gzip.compress(text.encode())
    for name, data in (("whole", whole), ("cut", whole[:len(whole) // 2])):
        (tmp_path / "v.log.1.gz").write_bytes(data)
        s = make_report([tmp_path / "v.log", tmp_path / "v.log.1", tmp_path / "v.log.1.gz"], tmp_path / name,
                        HANOI, progress=False, with_plots=False)
        assert s["totals"]["sms"]["allow"] == 53, name
        assert s["inputs"]["malformed"] == 0, s["inputs"]["malformed_lines"]
        assert s["inputs"]["repeated_logs"] == [
            f"{tmp_path / 'v.log.1.gz'} (a compressed copy of {tmp_path / 'v.log.1'}, which is read: this one is left "
            "out)"]     # it said "…, read instead", which a day-one audit read as the .gz being read in its place


def test_a_compressed_log_that_is_no_copy_of_the_plain_one_is_read_too(tmp_path):
    (tmp_path / "v.log.1").write_text(_text(5))
    (tmp_path / "v.log.1.gz").write_bytes(gzip.compress(_text(7).replace("+07:00", "+00:00").encode()))
    s = make_report([tmp_path / "v.log.1", tmp_path / "v.log.1.gz"], tmp_path / "out", HANOI, progress=False,
                    with_plots=False)
    assert s["totals"]["sms"]["allow"] == 12 and s["inputs"]["repeated_logs"] == []
