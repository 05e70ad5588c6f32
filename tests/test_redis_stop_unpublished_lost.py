"""serve's exit status when its stop loses confirmed DNC changes: with the --state server away, what waits to be
published is saved in the data dir for the next start (replication.py's close); when that save fails too (a full
disk) the other nodes never get them. The stop said so at ERROR and exited 0, a clean stop to systemd and to a pool's
supervisor; it exits 1, as when the state itself could not be saved. (The save's failure is injected: the tests run
as root, whom a read-only directory does not stop.)"""
import textwrap

from engine.control_client import request

from .redis_helpers import RedisServer
from .test_serve_stop_signals import serve_then_stop

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
    sock = tmp_path / "c.sock"

    def dnc_change_while_redis_is_away(_serve):
        redis.stop()                            # away: the change below waits to be published
        ans = request(sock, {"cmd": "lists", "op": "add", "kind": "dnc", "value": "84912345678", "channel": "SV"}, 30)
        assert ans.get("ok") is True, ans
    try:
        rc, text = serve_then_stop(tmp_path, "--control-socket", sock, "--state", redis.url, probe=PROBE,
                                   before_stop=dnc_change_while_redis_is_away)
    finally:
        redis.stop()
    assert "not published and not saved" in text, text[-3000:]
    assert rc == 1, (rc, text[-3000:])
