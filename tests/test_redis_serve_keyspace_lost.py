"""Two `serve` nodes on one Redis that loses its keys (FLUSHALL) between a recipient's 3rd ad, through node A, and
its 4th, through node B: B's is refused AD_FREQUENCY_CAP (node A, idle, puts its counts back within the re-seed
grace: engine/state/redis_reseed.py). Before, B let it through, and two more: the caps started again from zero."""
from .redis_helpers import RedisServer, ports_in
from .test_redis_serve import Node, _hours_config, _one_ad


def test_a_flushall_between_two_nodes_keeps_the_recipients_cap(tmp_path):
    pa, pb, pr = ports_in(21000, 21999, 3)
    srv = RedisServer(tmp_path / "redis", port=pr)
    cfg = _hours_config(tmp_path)
    a, b = Node(tmp_path, "a", srv.url, cfg, port=pa), Node(tmp_path, "b", srv.url, cfg, port=pb)
    try:
        a.start()
        b.start()
        assert [_one_ad(a.port, "84912000444") for _ in range(3)] == [0, 0, 0]
        c = srv.client()
        c.flushall()
        c.close()
        assert _one_ad(b.port, "84912000444") != 0, "the 4th ad was let through after the server lost its keys"
        assert "shared state" in b.dropped("AD_FREQUENCY_CAP")["hits"][0]["detail"]
        assert _one_ad(a.port, "84912000444") != 0
        assert _one_ad(b.port, "84912000445") == 0        # another recipient is not capped
    finally:
        a.stop()
        b.stop()
        srv.stop()
