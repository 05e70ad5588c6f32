"""A verdict log given as a pipe (`--log <(xzcat old.xz)`, a FIFO) to `report` or `verdicts`: read whole with the
progress bar on (a terminal's default), and refused where it would have to be read twice (`verdicts --message-id`)."""
import json
import os
import subprocess
import sys
import threading
from datetime import datetime, timedelta, timezone

import pytest

from engine.report.reader import Malformed, read_verdicts

from .conftest import ROOT

T0 = datetime(2026, 11, 1, tzinfo=timezone.utc)


def _body(n: int) -> bytes:
    return "".join(json.dumps({"ts": (T0 + timedelta(seconds=i)).isoformat(), "kind": "sms", "action": "allow",
                               "sender": "0912000111", "recipient": "0912000999", "hits": [], "n": i}) + "\n"
                   for i in range(n)).encode()


def _fifo_with(tmp_path, body: bytes, name="pipe"):
    fifo = tmp_path / name
    os.mkfifo(fifo)
    w = threading.Thread(target=lambda: fifo.write_bytes(body), daemon=True)
    w.start()
    return fifo, w


@pytest.mark.parametrize("merged", [False, True])
def test_a_pipe_is_read_whole_with_the_progress_bar_on(tmp_path, merged):
    """The bar asked the pipe its position every 16k lines (a pipe has none: `Illegal seek`), and the log was cut
    there: `PIPE:16385: unreadable from here on`, the other 23,616 lines not read."""
    fifo, w = _fifo_with(tmp_path, _body(40000))
    other = tmp_path / "b.jsonl"
    other.write_bytes(_body(3))
    bad = Malformed()
    got = list(read_verdicts([str(fifo), str(other)], bad, progress=True, merged=merged))
    w.join(10)
    assert bad.count == 0 and len(got) == 40003, (bad.shown, len(got))


def test_verdicts_message_id_refuses_a_pipe(tmp_path):
    """--message-id reads its logs twice: a FIFO given was emptied by the first pass, and the second pass's open waited
    for a writer for ever (a hung command); it is refused as '-' is, naming the log."""
    log = tmp_path / "v.jsonl"
    log.write_bytes(_body(3))
    fifo, w = _fifo_with(tmp_path, _body(5))
    try:
        r = subprocess.run([sys.executable, "-m", "engine.cli", "verdicts", "--log", str(log), str(fifo),
                            "--message-id", "X", "--no-progress"], cwd=ROOT, capture_output=True, text=True,
                           timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail("verdicts --message-id with a FIFO log hung")
    finally:
        if w.is_alive():            # (refused before reading: let the writer go)
            with open(fifo, "rb") as f:
                f.read()
        w.join(10)
    assert r.returncode == 2 and f"{fifo}" in r.stderr and "--message-id" in r.stderr, (r.returncode, r.stderr)


def test_verdicts_message_id_says_a_directory_is_a_directory_not_a_pipe(tmp_path):
    """The pipe refusal took every log that was no regular file for a pipe: a directory given by mistake was said to
    be 'a pipe, read once' (the user looks for a FIFO that is not there); it is said as without --message-id."""
    d = tmp_path / "logs"
    d.mkdir()
    r = subprocess.run([sys.executable, "-m", "engine.cli", "verdicts", "--data-dir", str(tmp_path / "data"), "--log",
                        str(d), "--message-id", "X", "--no-progress"], cwd=ROOT, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2 and "Is a directory" in r.stderr and "pipe" not in r.stderr, (r.returncode, r.stderr)
