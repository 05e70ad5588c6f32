"""benchmarks.state_bench's memory per counter key in Redis writes every key it divides by. It called the
batch script without the batch token the script now takes last (engine/state/redis_store.py), so the first
call's answer was kept under 'tf:b:bench' and every later call was taken as already settled: 500 of 50,000
keys were written and the quick run printed 1.9 B per key (the README quotes 149). Nothing is timed here."""
from benchmarks.state_bench import memory_per_key

from .redis_helpers import RedisServer


class _Spy:
    """The server's client, noting how many counter keys there are whenever the bench flushes them."""

    def __init__(self, srv):
        self.srv, self.counts = srv, []

    def client(self):
        c, counts = self.srv.client(), self.counts

        class C(type(c)):
            def flushall(self, *a, **k):
                counts.append(sum(1 for k_ in self.scan_iter(count=1000) if k_.startswith(b"tf:c:")))
                return super().flushall(*a, **k)
        c.__class__ = C
        return c


def test_memory_per_key_writes_every_key_it_divides_by(tmp_path):
    srv = RedisServer(tmp_path / "r")
    try:
        spy = _Spy(srv)
        out = memory_per_key(spy, 1500)
        assert spy.counts[-1] == 1500, spy.counts          # the counter keys there at the end, before the flush
        assert out["keys"] == 1500 and out["redis_keys"] == 1500
    finally:
        srv.stop()
