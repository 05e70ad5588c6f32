"""serve's exit status when its stop loses confirmed DNC changes: with the --state server away, what waits to be
published is saved in the data dir for the next start (replication.py's close); when that save fails too (a full
disk) the other nodes never get them. The stop said so at ERROR and exited 0, a clean stop to systemd and to a pool's
supervisor; it exits 1, as when the state itself could not be saved. (The save's failure is injected: the tests run
as root, whom a read-only directory does not stop.)"""
import signal
import subprocess
import sys
import textwrap

from engine.control_client import request

from .conftest import ROOT
from .redis_helpers import RedisServer
from .test_serve import free_port, wait_ready

PROBE = textwrap.dedent("""
    import errno, sys
    import engine.state.unpublished as unpublished

    def full_disk(self):
        raise OSError(errno.ENOSPC, "No space left on device")

    unpublished._Unpublished.save_unpublished = full_disk
    sys.argv = ["telfilter", *sys.argv[1:]]
    from engine.cli import main
    sys.exit(main())
""")


def test_a_stop_that_neither_publishes_nor_saves_a_confirmed_dnc_change_is_not_clean(tmp_path):
    redis = RedisServer(tmp_path / "redis")
    err_path, ready, sock = tmp_path / "stderr.log", tmp_path / "ready", tmp_path / "c.sock"
    with open(err_path, "w") as err:
        p = subprocess.Popen([sys.executable, "-c", PROBE, "serve", "--data-dir", tmp_path / "data", "--smpp-listen",
                              f"127.0.0.1:{free_port()}", "--sip-listen", "off", "--log", tmp_path / "v.jsonl",
                              "--ready-file", ready, "--control-socket", sock, "--state", redis.url],
                             cwd=ROOT, stderr=err, stdout=subprocess.DEVNULL)
        try:
            wait_ready(p, ready, err_path)
            redis.stop()                        # away: the change below waits to be published
            ans = request(sock, {"cmd": "lists", "op": "add", "kind": "dnc", "value": "84912345678",
                                 "channel": "SV"}, 30)
            assert ans.get("ok") is True, ans
            p.send_signal(signal.SIGTERM)
            rc = p.wait(60)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait(10)
            redis.stop()
    text = err_path.read_text()
    assert "not published and not saved" in text, text[-3000:]
    assert rc == 1, (rc, text[-3000:])
