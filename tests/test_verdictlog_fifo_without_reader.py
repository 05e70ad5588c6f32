"""`--log FIFO` (README: a log that is not a regular file) whose FIFO has no reader: the open blocked, waiting for
one. At start serve hung before it listened, saying nothing; in a SIGUSR2 reopen (the FIFO's reader gone and not
back) the worker thread stayed in open() and serve, once "stopped", never exited (asyncio.run waits for its
executor's threads: probed, still running after SIGTERM). Now such an open fails at once with a clear error:
exit 2 at start, "verdict log not reopened" in a reopen, and the stop ends."""
import errno
import os
import threading

import pytest

from engine.logwriters import FileOut


def _open_in_a_thread(path, seconds=3.0):
    got = {}

    def run():
        try:
            got["file"] = FileOut(path, spool=True)
        except OSError as e:
            got["error"] = e
    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    if t.is_alive():        # blocked in open(): a reader lets it go, so the test process does not keep it
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        t.join(5)
        got.get("file") and got["file"].drain()
        os.close(fd)
        pytest.fail(f"opening a FIFO with no reader blocked for {seconds} s")
    return got


def test_a_fifo_with_no_reader_is_an_error_not_a_wait(tmp_path):
    fifo = tmp_path / "verdicts.fifo"
    os.mkfifo(fifo)
    got = _open_in_a_thread(fifo)
    e = got.get("error")
    assert isinstance(e, OSError) and e.errno == errno.ENXIO, got
    assert "no reader" in str(e) and str(fifo) in str(e)


def test_a_fifo_with_a_reader_is_written_blocking(tmp_path):
    fifo = tmp_path / "verdicts.fifo"
    os.mkfifo(fifo)
    r = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        got = _open_in_a_thread(fifo)
        f = got["file"]
        assert os.get_blocking(f.fd)        # as before: the writer thread's writes wait for the reader
        f.write('{"a": 1}\n')
        f.drain()
        assert os.read(r, 100) == b'{"a": 1}\n'
    finally:
        os.close(r)
