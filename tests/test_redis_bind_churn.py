"""`max_binds` across processes (engine/state/pool.py) counts the binds held, not the binds made: an ESME that binds,
sends and unbinds again and again (one bind at a time) is never refused. Before, a bind that ended was written back
only at the next refresh (every BEAT s), so each bind of the second added one: with `serve --workers 2` and the
default max_binds 16, three ESMEs reconnecting every few milliseconds were refused ESME_RBINDFAIL ("max_binds across
the pool") from 1.6 s on, 126 times in 9 s, where one process alone never refuses them."""
import time

from engine.state import pool as pool_mod

from .redis_helpers import redis_server  # noqa: F401
from .test_redis_receipts import Pool, url  # noqa: F401
from .test_smpp_receipts import Esme
from .test_smpp_proxy import wait


def test_binds_made_one_after_another_are_never_refused(tmp_path, url, monkeypatch):  # noqa: F811
    monkeypatch.setattr(pool_mod, "BEAT", 60.0)         # no refresh during the test: the release alone frees a slot
    with Pool(tmp_path, url) as pool:
        proxy = pool.proxies[0]
        proxy.accounts["esme1"].max_binds = 2
        refused = 0
        t0 = time.monotonic()
        for _ in range(6):
            try:
                e = Esme(type("H", (), {"port": proxy.port})())
            except AssertionError:              # the bind refused
                refused += 1
                continue
            e.s.close()
            assert wait(lambda: not proxy.binds["esme1"], 2)
            time.sleep(0.05)                    # (the release's round trip)
        assert time.monotonic() - t0 < 30
        assert refused == 0
