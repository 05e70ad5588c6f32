"""An ESME's unbind (or half-close) judges the concatenated messages it has parts waiting in, before its
unbind_resp: those only. The other binds' messages keep waiting for their parts, and finding its own costs what
it has waiting, not what every bind has: a walk over all waiting messages held the loop ~15 ms per unbind with
20,000 of other accounts' waiting (a bind + unbind loop from one ESME starved every other)."""
from engine.smpp_proxy.accounts import SmppSettings
from engine.smpp_proxy.codec import encode
from engine.smpp_proxy.codec import pdu as P
from engine.smpp_proxy.concat import Reassembly
from engine.smpp_proxy.harness import ProxyHarness
from tests.test_smpp_inline_safety_verdict import _part
from tests.test_smpp_proxy import pipe, raw_session, read_raw, wait  # noqa: F401,F811  (pipe: fixture)


class _Timer:
    def cancel(self):
        pass


def test_an_unbind_judges_its_own_waiting_parts_only(pipe):
    st = SmppSettings(concat_timeout=60)
    with ProxyHarness(pipe, accounts=("esme1:secret", "esme2:pw2"), settings=st) as h:
        other, _ = raw_session(h, "esme2", "pw2")
        other.sendall(_part(2, 1, 2, b"part one of the other bind's message", ref=7))
        s, _ = raw_session(h)
        s.sendall(_part(2, 1, 2, b"part one of this bind's message", ref=8))
        assert wait(lambda: len(h.proxy.concat.pending) == 2)
        s.sendall(encode(P.Unbind(sequence_number=3)))
        first, second = read_raw(s), read_raw(s)
        assert (first.sequence_number, first.command_status) == (2, 0)      # its part: judged, answered first
        assert second.command_id == P.UnbindResp(sequence_number=0).command_id
        assert len(h.proxy.concat.pending) == 1                         # the other bind's still waits for its part
        other.sendall(_part(3, 2, 2, b" and its second part", ref=7))
        assert {read_raw(other).sequence_number for _ in range(2)} == {2, 3}
        assert wait(lambda: not h.proxy.concat.pending)


class _Watched(dict):
    """The table of waiting messages, counting the keys any walk over it yields (the cost that grew with it)."""
    yielded = 0

    def __iter__(self):
        for k in super().__iter__():
            self.yielded += 1
            yield k


def test_an_unbind_costs_its_own_waiting_messages_not_everyones(pipe):
    st = SmppSettings(concat_timeout=600, max_pending_concat=30_000)
    with ProxyHarness(pipe, accounts=("esme1:secret",), settings=st) as h:
        s, _ = raw_session(h)
        assert wait(lambda: h.proxy.binds.get("esme1"))
        sess = h.proxy.binds["esme1"][0]
        others = object()               # another bind's 20,000 messages, each waiting for its second part

        def fill():
            for i in range(20_000):
                h.proxy.concat.add(("other", i), 2, 1, (others, None, "x", False), st.max_pending_concat,
                                   lambda k: _Timer())
            h.proxy.concat.pending = _Watched(h.proxy.concat.pending)

        def unbinds(n):
            for _ in range(n):
                h.proxy.judge_parts_of(sess)
            return h.proxy.concat.pending.yielded

        h.run(fill)
        walked = h.run(unbinds, 200)
        assert len(h.proxy.concat.pending) == 20_000          # none of them judged
        assert walked == 0, f"200 unbinds walked {walked} waiting messages of another bind"


def test_at_the_byte_bound_a_new_part_pushes_out_the_oldest_without_a_walk_over_all():
    """Over `max_pending_concat_bytes` the oldest other messages are judged: found a step or two into the table.
    A copy of every waiting key was made for each new part (20,000 keys a part once the bound was reached)."""
    judged = []
    r = Reassembly(due=lambda key: judged.append(r.take(key)))
    peer = object()
    for i in range(20_000):
        r.add(i, 2, 1, (peer, None, "x"), 30_000, lambda k: _Timer(), size=100, max_size=2_000_000)
    r.pending = _Watched(r.pending)
    for i in range(20_000, 20_100):                 # each new part holds 100 bytes more: the oldest goes
        r.add(i, 2, 1, (peer, None, "x"), 30_000, lambda k: _Timer(), size=100, max_size=2_000_000)
    assert [c.ordered()[0][2] for c in judged] == ["x"] * 100 and r.size == 2_000_000
    assert 0 not in r.pending and 99 not in r.pending and 100 in r.pending and 20_099 in r.pending
    assert r.pending.yielded <= 2 * 100, r.pending.yielded


def test_the_index_of_a_peers_messages_follows_its_parts():
    r = Reassembly(due=lambda key: None)
    a, b = object(), object()
    r.add("m", 3, 1, (a, None, "x"), 10, lambda k: _Timer())
    r.add("m", 3, 2, (a, None, "y"), 10, lambda k: _Timer())
    assert r.by_peer == {a: {"m": 2}}
    p3 = (b, None, "z")
    r.add("m", 3, 2, p3, 10, lambda k: _Timer())            # part 2 again, from another bind: b holds it now
    assert r.by_peer == {a: {"m": 1}, b: {"m": 1}}
    assert r.drop_part("m", 2, p3) and r.by_peer == {a: {"m": 1}}
    judged = []
    r.due = lambda key: judged.append(r.take(key))
    r.judge_of(b)
    assert not judged                                       # b has no part waiting any more
    r.judge_of(a)
    assert len(judged) == 1 and r.by_peer == {} and not r.pending
