"""`serve --workers N`'s stop (engine/supervisor.py) reaches a worker the supervisor was starting when the SIGTERM came.
The supervisor passes SIGTERM on to the workers it has; one whose Popen was under way (fork, exec: its handle not yet
kept) was not among them: it came up and served on, the pool waited for it until --drain-timeout + 15 s, then
SIGKILLed it (not drained, its crash spools left, exit 1). Here the SIGTERM lands just as worker 1's Popen returns,
before the supervisor keeps its handle."""
import os
import subprocess
import sys
import textwrap
import time

from .conftest import ROOT
from .redis_helpers import RedisServer
from .test_serve import free_port

PROBE = textwrap.dedent("""
    import os, signal, subprocess, sys
    real = subprocess.Popen

    class Landing(real):                        # SIGTERM as worker 1's Popen returns (its handler runs here)
        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            if kw.get("env", {}).get("TELFILTER_WORKER") == "1":
                os.kill(os.getpid(), signal.SIGTERM)

    subprocess.Popen = Landing
    sys.argv = ["telfilter", *sys.argv[1:]]     # (the workers' command line is the supervisor's)
    from engine.cli import main
    sys.exit(main(sys.argv[1:]))
""")


def test_a_sigterm_while_a_worker_is_being_started_stops_that_worker_too(tmp_path):
    redis = RedisServer(tmp_path / "redis")
    err_path, logs = tmp_path / "stderr.log", tmp_path / "logs"
    logs.mkdir()
    try:
        with open(err_path, "w") as err:
            p = subprocess.Popen([sys.executable, "-c", PROBE, "serve", "--data-dir", tmp_path / "data",
                                  "--smpp-listen", f"127.0.0.1:{free_port()}", "--sip-listen", "off",
                                  "--log", logs / "v.jsonl", "--control-socket", "off", "--workers", "2",
                                  "--state", redis.url, "--drain-timeout", "2"],
                                 cwd=ROOT, stderr=err, stdout=subprocess.DEVNULL)
            t0 = time.monotonic()
            try:
                rc = p.wait(60)
            finally:
                if p.poll() is None:
                    p.kill()
                    p.wait(10)
        text = err_path.read_text()
        assert "did not stop: killing it" not in text, text[-3000:]
        assert rc == 0 and time.monotonic() - t0 < 17, (rc, text[-3000:])
        assert not [n for n in os.listdir(logs) if ".spool." in n], sorted(os.listdir(logs))
    finally:
        redis.stop()
