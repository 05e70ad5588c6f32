"""A bind closed for a flood of other requests (dispatch.over_other_rate) is a strike on its (source, system_id)
bind back-off (admission.BindThrottle.closed_for_flood): the flooder's rebind at once waits `bind_backoff`,
doubling per further close even across the binds that succeed between; another account from the same address
(one NAT) and the same account from another address bind at once. Waits are asserted as lower bounds or as
order (which answer came first), never as an upper bound of time."""
import asyncio
import select
import socket
import time

from engine.smpp_proxy import admission
from engine.smpp_proxy.accounts import SmppSettings
from engine.smpp_proxy.codec import encode
from engine.smpp_proxy.codec import pdu as P
from engine.smpp_proxy.harness import ProxyHarness
from tests.test_smpp_proxy import pipe, raw_session, read_raw, wait  # noqa: F401,F811  (pipe: fixture)

BACKOFF = 2.0


def _bind(h, system_id, source="127.0.0.1"):
    s = socket.create_connection(("127.0.0.1", h.port), timeout=10, source_address=(source, 0))
    s.sendall(encode(P.BindTransceiver(sequence_number=1, system_id=system_id, password="secret",
                                       interface_version=0x34)))
    return s


def _flood_until_closed(s):
    s.sendall(b"".join(encode(P.EnquireLink(sequence_number=seq)) for seq in range(2, 12)))
    try:
        while True:
            read_raw(s)
    except ConnectionError:
        pass
    s.close()


def test_a_bind_closed_for_a_flood_waits_its_back_off_to_bind_again_others_do_not(pipe):
    settings = SmppSettings(other_requests_per_second=0.01, other_requests_burst=2, other_requests_refused_close=3,
                            bind_failures_free=3, bind_backoff=BACKOFF, bind_backoff_max=30, bind_timeout=10)
    with ProxyHarness(pipe, accounts=("esme1:secret", "esme2:secret"), settings=settings) as h:
        flooder, r = raw_session(h)
        assert r.command_status == 0
        _flood_until_closed(flooder)
        assert wait(lambda: h.proxy.stats["esme_other_flood_closed"] == 1)
        t0 = time.monotonic()
        again = _bind(h, "esme1")                                   # the flooder, at once: waits its back-off
        neighbour = _bind(h, "esme2")                               # another account behind the same address
        elsewhere = _bind(h, "esme1", source="127.0.0.2")           # the same account from another address
        assert read_raw(neighbour).command_status == 0
        assert read_raw(elsewhere).command_status == 0
        assert select.select([again], [], [], 0)[0] == [], "the flooder's rebind was answered at once"
        assert read_raw(again).command_status == 0                  # then bound, once the back-off has passed
        assert time.monotonic() - t0 >= BACKOFF - 0.05
        assert h.run(lambda: h.proxy.bind_throttle.records[("127.0.0.1", "esme1")].closes) == 1
        for s in (again, neighbour, elsewhere):
            s.close()


def test_an_unbound_connections_flood_is_no_strike(pipe):
    """Only credentials pay: a connection that floods before it binds names no account to slow down."""
    settings = SmppSettings(other_requests_per_second=0.01, other_requests_burst=2, other_requests_refused_close=3)
    with ProxyHarness(pipe, settings=settings) as h:
        s = socket.create_connection(("127.0.0.1", h.port), timeout=10)
        _flood_until_closed(s)
        assert wait(lambda: h.proxy.stats["esme_other_flood_closed"] == 1)
        assert h.run(lambda: dict(h.proxy.bind_throttle.records)) == {}


class _Clock:
    t = 1000.0

    def __call__(self):
        return self.t


class _Job:
    def __init__(self, ok):
        self.ok = ok

    def alive(self):
        return True

    def __call__(self, done):
        done(self.ok)


def test_closes_double_the_back_off_across_successful_binds_and_are_forgotten_with_the_record():
    async def run():
        clock = _Clock()
        th = admission.BindThrottle(free=3, backoff=0.5, backoff_max=30, clock=clock)
        key = ("10.0.0.1", "esme1")
        th.submit("10.0.0.1", "esme1", _Job(True))                  # bound
        th.closed_for_flood("10.0.0.1", "esme1")                    # first close: the first strike
        assert th.records[key].next_at - clock.t == 0.5
        clock.t += 1
        th.submit("10.0.0.1", "esme1", _Job(True))                  # bound again: the close is kept
        assert th.records[key].closes == 1 and th.records[key].failures == 0
        th.closed_for_flood("10.0.0.1", "esme1")
        assert th.records[key].next_at - clock.t == 1.0             # doubled
        clock.t += 2
        th.submit("10.0.0.1", "esme1", _Job(False))                 # a wrong password within bind_failures_free:
        assert th.records[key].next_at - clock.t == 1.0             # no strike, the two closes' back-off again
        for _ in range(2):
            clock.t += 2
            th.submit("10.0.0.1", "esme1", _Job(False))
        assert th.records[key].next_at - clock.t == 2.0             # the third failure: a strike on top
        th.submit("10.0.0.1", "esme2", _Job(False))
        assert th.records[("10.0.0.1", "esme2")].next_at == 0       # another account: its own record
        th.prune()
        assert key in th.records                                     # recent
        clock.t += 31 + 2
        th.prune()
        assert key not in th.records                                 # back-off long passed: forgotten
    asyncio.run(run())


def test_a_close_with_bind_failures_free_zero_is_one_strike():
    clock = _Clock()
    th = admission.BindThrottle(free=0, backoff=0.5, backoff_max=30, clock=clock)
    th.closed_for_flood("10.0.0.1", "esme1")
    assert th.records[("10.0.0.1", "esme1")].next_at - clock.t == 0.5


def test_a_long_run_of_failures_stays_at_the_maximum_back_off():
    """Found writing the close: 2 ** failures grew past what a float holds after ~1,024 failures of one pair
    (8.5 hours of one attacker at a 30 s back-off): OverflowError in the check's callback, its source's queue
    stuck. The doubling stops at MAX_DOUBLINGS."""
    async def run():
        clock = _Clock()
        th = admission.BindThrottle(free=3, backoff=0.5, backoff_max=30, clock=clock)
        th.submit("10.0.0.1", "esme1", _Job(False))
        th.records[("10.0.0.1", "esme1")].failures = 5000
        th.records[("10.0.0.1", "esme1")].next_at = 0
        th.submit("10.0.0.1", "esme1", _Job(False))
        assert th.records[("10.0.0.1", "esme1")].next_at - clock.t == 30
        th.closed_for_flood("10.0.0.1", "esme1")
        assert th.records[("10.0.0.1", "esme1")].next_at - clock.t == 30
    asyncio.run(run())
