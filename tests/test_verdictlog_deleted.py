"""The verdict log file deleted under a running serve (an on-call engineer's `rm verdicts.jsonl` to free a full disk,
a cleanup script, the log directory removed), found by the ops probe: serve went on writing into the deleted file
(its space never freed, every line unreadable, lost at the stop), /healthz 200, telfilter_verdict_log_lost_lines_total
0 and not a word in the service log -- a silent drop of every verdict line until someone sent SIGUSR2.

Now the writer sees that its file has no name any more (st_nlink 0, checked before each write: an fstat every
FLUSH_S at most) and opens the log's path again, saying so; when it cannot (the directory is gone), it says that,
/healthz is 503 (`disk writes failing: verdict_log`), and it holds the lines and tries again, as on a full disk, until
it can. The ops walkthrough found those lines went into the deleted file: lost, lost_lines 0, a directory made again
got only the lines judged after it."""
import json
import logging
import shutil

from engine.disktrouble import trouble
from engine.logwriters import FileOut
from tests.test_smpp_proxy import wait


def _write(f, n0, n):
    f.write("".join(json.dumps({"kind": "sms", "n": i}) + "\n" for i in range(n0, n0 + n)))
    f.flush()


def _ns(path):
    try:
        return [json.loads(x)["n"] for x in path.read_text().splitlines()]
    except FileNotFoundError:
        return []


def test_a_deleted_verdict_log_is_made_again_at_its_path(tmp_path, caplog):
    path = tmp_path / "verdicts.jsonl"
    f = FileOut(str(path), spool=True)
    try:
        _write(f, 0, 5)
        assert wait(lambda: _ns(path) == list(range(5)))
        path.unlink()
        with caplog.at_level(logging.WARNING, logger="telfilter"):
            _write(f, 5, 5)
            assert wait(lambda: _ns(path) == list(range(5, 10)))
        assert any("was deleted" in r.getMessage() and str(path) in r.getMessage() for r in caplog.records)
        _write(f, 10, 5)                                    # and the writer goes on there
        assert wait(lambda: _ns(path) == list(range(5, 15)))
        assert not trouble("verdict_log").failing
    finally:
        f.drain()


def test_a_verdict_log_whose_directory_was_removed_is_said_and_made_again_once_it_is_back(tmp_path, caplog):
    d = tmp_path / "logs"
    d.mkdir()
    path = d / "verdicts.jsonl"
    f = FileOut(str(path))
    try:
        _write(f, 0, 3)
        assert wait(lambda: _ns(path) == list(range(3)))
        shutil.rmtree(d)
        _write(f, 3, 3)
        assert wait(lambda: trouble("verdict_log").failing)              # /healthz 503 names verdict_log
        _write(f, 6, 3)
        d.mkdir()
        _write(f, 9, 3)
        with caplog.at_level(logging.WARNING, logger="telfilter"):
            assert wait(lambda: _ns(path) == list(range(3, 12)))  # held meanwhile (they went into the deleted file)
        assert "those held while it could not be made are written now" in caplog.text
        assert wait(lambda: not trouble("verdict_log").failing)
        assert f.lost_lines == 0
    finally:
        f.drain()


def test_lines_held_for_a_removed_log_directory_at_the_stop_are_counted_lost(tmp_path, caplog):
    d = tmp_path / "logs"
    d.mkdir()
    path = d / "verdicts.jsonl"
    f = FileOut(str(path), spool=True)
    try:
        _write(f, 0, 2)
        assert wait(lambda: _ns(path) == list(range(2)))
        shutil.rmtree(d)
        _write(f, 2, 4)
        assert wait(lambda: trouble("verdict_log").failing)
    finally:
        with caplog.at_level(logging.ERROR, logger="telfilter"):
            f.drain()
    assert f.lost_lines == 4                                # telfilter_verdict_log_lost_lines_total
    # its crash spool went with the directory: not said to keep them for the next start
    assert any("4 lines" in r.getMessage() and r.getMessage().endswith("; lost") for r in caplog.records)


def test_each_try_at_a_removed_log_directory_is_one_failed_write(tmp_path, monkeypatch):
    """telfilter_disk_write_errors_total counts the writes a writer could not make: a try while the directory is
    gone is one (it was said, and counted, twice: as a deleted log and as lines held)."""
    monkeypatch.setattr(FileOut, "RETRY_S", 60.0)          # one try, then the stop's
    d = tmp_path / "logs"
    d.mkdir()
    f = FileOut(str(d / "verdicts.jsonl"))
    try:
        _write(f, 0, 1)
        assert wait(lambda: _ns(d / "verdicts.jsonl") == [0])
        before = trouble("verdict_log").errors
        shutil.rmtree(d)
        _write(f, 1, 1)
        assert wait(lambda: trouble("verdict_log").failing)
    finally:
        f.drain()
    assert trouble("verdict_log").errors - before == 2     # the try, and the stop's last one
    assert f.lost_lines == 1
