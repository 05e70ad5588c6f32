"""The service log (stderr) and `--log -` (stdout) in a file the shell or systemd opened without O_APPEND
(`serve 2>service.log`, systemd's `StandardError=file:`), rotated with logrotate's copytruncate: serve went on
writing at its old offset, so the truncated file began with a hole of NULs as long as what was copied away
(found by the ops probe: 1,242 NUL bytes before the first new line; `du` counted the hole as a sparse block, a
reader took the NULs for a line). serve now puts its stdout and stderr in append mode when they are regular files,
so after a truncation the next line lands at the start."""
import os
import signal
import subprocess
import sys

from .conftest import ROOT
from .test_control import _stop
from .test_serve import free_port, wait_for, wait_ready


def test_a_copytruncated_service_log_gets_no_hole_of_nuls(tmp_path):
    ready, err_path, out_path = tmp_path / "ready", tmp_path / "service.log", tmp_path / "verdicts.jsonl"
    err, out = open(err_path, "wb"), open(out_path, "wb")        # as `2>service.log >verdicts.jsonl`: no O_APPEND
    p = subprocess.Popen([sys.executable, "-m", "engine.cli", "serve", "--data-dir", tmp_path / "data",
                          "--smpp-listen", f"127.0.0.1:{free_port()}", "--sip-listen", "off", "--log", "-",
                          "--control-socket", "off", "--ready-file", ready],
                         cwd=ROOT, stderr=err, stdout=out)
    try:
        wait_ready(p, ready, err_path)
        size = err_path.stat().st_size
        assert size > 0                                          # the start-up lines
        os.truncate(err_path, 0)                                 # logrotate copytruncate (after its copy)
        p.send_signal(signal.SIGHUP)                             # a reload: lines at INFO on telfilter.service
        assert wait_for(lambda: b"rules reloaded" in err_path.read_bytes())
        data = err_path.read_bytes()
        assert not data.startswith(b"\0") and b"\0" not in data, data[:80]
        assert len(data) < size + 4096
    finally:
        _stop(p)
        err.close()
        out.close()
    for fd_path in (err_path, out_path):                         # (and the shell's own descriptors were not changed
        assert b"\0" not in fd_path.read_bytes()                 #  in any other way: the files read as text)


def test_only_a_regular_file_is_put_in_append_mode(tmp_path):
    import fcntl

    from engine.servicelog import append_to_regular_files
    f = open(tmp_path / "x", "wb")
    r, w = os.pipe()
    try:
        append_to_regular_files(f.fileno(), w, 987654)             # (a descriptor not open: left alone)
        assert fcntl.fcntl(f.fileno(), fcntl.F_GETFL) & os.O_APPEND
        assert not fcntl.fcntl(w, fcntl.F_GETFL) & os.O_APPEND
    finally:
        f.close()
        os.close(r)
        os.close(w)
