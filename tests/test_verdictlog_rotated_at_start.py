"""logrotate rotating the verdict log while serve starts: its rename lands after serve opened the log and its
SIGUSR2 (`systemctl kill -s USR2`, contrib/logrotate.conf) before the event loop takes the signal, when serve
ignores it (the default action would end the process). The reopen was lost: serve wrote the rotated file
(verdicts.jsonl.1) until the next rotation, a day later, and the log's path had nothing. Once the loop takes SIGUSR2,
serve reopens a log whose path no longer names the file it writes. Here the rotation is made during the start, after
the log was opened (as serve_files.take_over runs)."""
import os
import textwrap

from .test_serve import wait_for
from .test_serve_stop_signals import serve_then_stop

PROBE = textwrap.dedent("""
    import os, signal, sys
    import engine.serve as serve
    real = serve.take_over

    def rotated_then_take_over(*a, **kw):       # logrotate, now: the rename, then its SIGUSR2
        log = sys.argv[sys.argv.index("--log") + 1]
        os.rename(log, log + ".1")
        os.kill(os.getpid(), signal.SIGUSR2)
        return real(*a, **kw)

    serve.take_over = rotated_then_take_over
    sys.argv = ["telfilter", *sys.argv[1:]]
    from engine.cli import main
    sys.exit(main())
""")


def _writes(pid, log):
    """Whether process `pid` has `log` open (the verdict log's descriptor, or the rotated file's)."""
    fds = f"/proc/{pid}/fd"
    names = []
    for fd in os.listdir(fds):
        try:
            names.append(os.readlink(f"{fds}/{fd}"))
        except OSError:
            pass
    return str(log) in names


def test_a_rotation_while_serve_starts_is_followed_once_it_takes_sigusr2(tmp_path):
    log, seen = tmp_path / "logs" / "v.jsonl", {}

    def reopened(p):
        seen["new file"] = wait_for(lambda: _writes(p.pid, log) and not _writes(p.pid, f"{log}.1"), 15)
    rc, text = serve_then_stop(tmp_path, probe=PROBE, before_stop=reopened)
    assert rc == 0 and seen["new file"], (rc, text[-2000:])
    assert "verdict log reopened" in text, text[-2000:]
