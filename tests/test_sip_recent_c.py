"""recent.Recent on the C extension's RecentCore against the same class on PyRecentCore (the pure-Python methods):
seeded random sequences of every operation, with and without a ttl and a low tier, give the same answers and
leave the same entries in the same order."""
from __future__ import annotations

import random

import pytest

from engine.sip_screen import recent
from engine.sip_screen.recent import Bounded, PyRecentCore, Recent

pytestmark = pytest.mark.skipif(recent.RecentCore is PyRecentCore, reason="no C extension")


class PyRecent(Bounded, PyRecentCore):
    __slots__ = ()


def _state(r):
    return list(r.d.items()), list(r.low.items()), len(r)


@pytest.mark.parametrize("size,ttl,low_min", [(8, None, 0), (6, 5.0, 2), (16, 2.5, 8), (1, None, 0), (3, 0.0, 1)])
def test_recent_twin_agrees(size, ttl, low_min):
    rnd = random.Random(size * 1000 + low_min)
    c, p = Recent(size, ttl, low_min=low_min), PyRecent(size, ttl, low_min=low_min)
    assert isinstance(c, recent.RecentCore) and not isinstance(p, recent.RecentCore)
    now = 0.0
    for step in range(4000):
        now += rnd.choice((0.0, 0.5, 1.0, 3.0))
        key = rnd.choice((rnd.randrange(24), b"k%d" % rnd.randrange(8)))
        op = rnd.randrange(9)
        if op == 0:
            call = ("put", key, step, now)
        elif op == 1:
            call = ("put_low", key, (step, "x"), now)
        elif op == 2:
            call = ("get", key, now)
        elif op == 3:
            call = ("get", key, now, "gone")
        elif op == 4:
            call = ("pop", key) if rnd.random() < 0.5 else ("pop", key, -1)
        elif op == 5:
            call = ("promote", key, step, now)
        elif op == 6:
            call = ("demote", key)
        elif op == 7:
            call = ("add", key)
        else:
            call = ("put", key, None) if rnd.random() < 0.5 else ("get", key)     # `now` left to its default
        kw = {}
        if rnd.random() < 0.2 and call[0] in ("get", "put", "put_low", "promote", "pop"):     # by keyword
            names = {"get": ("key", "now", "default"), "pop": ("key", "default")}.get(call[0], ("key", "value", "now"))
            k = rnd.randrange(1, len(call))
            kw, call = dict(zip(names[k - 1:], call[k:])), call[:k]
        got = getattr(c, call[0])(*call[1:], **kw)
        want = getattr(p, call[0])(*call[1:], **kw)
        assert got == want, (step, call)
        assert _state(c) == _state(p), (step, call)
        assert (key in c) == (key in p)


def test_recent_core_binds_arguments_as_python_does():
    for r in (Recent(4, 1.0), PyRecent(4, 1.0)):
        r.put(b"a", value=1, now=5.0)
        assert r.get(b"a", default="x", now=5.5) == 1 and r.get(b"a", now=9.0, default="x") == "x"
        assert r.pop(b"b", default=0) == 0
        for bad in ((), (b"a", 1, 2, 3), {"nope": 1}, {"key": b"a", "now": 1.0, "default": 1, "x": 2}):
            with pytest.raises(TypeError):
                r.get(**bad) if isinstance(bad, dict) else r.get(*bad)
        with pytest.raises(TypeError):
            r.get(b"a", key=b"a")
        with pytest.raises(TypeError):
            r.put(b"a")


def test_recent_core_refuses_what_is_not_its_shape():
    r = Recent(4)
    r.d = None
    with pytest.raises(TypeError):
        r.get(b"a")
    with pytest.raises(TypeError):
        len(r)
    with pytest.raises(TypeError):
        r.add(b"a")
    r = Recent(4)
    r.d[b"a"] = "not a pair"
    with pytest.raises(TypeError):
        r.get(b"a")


def test_recent_core_len_and_add_are_its_own():
    """len() and add() in C, not call frames of the Python class (an INVITE, its 200 and its BYE each ask whether a
    memory is empty; a 200 adds its transaction to finals_seen); add() on a subclass goes through that subclass's
    put, as the Python add does (AnsweredCalls counts its changes there)."""
    from engine.sip_screen.dialogs import AnsweredCalls
    assert "__len__" not in vars(recent.Bounded) and "add" not in vars(recent.Bounded)
    assert Recent.__len__ is not PyRecentCore.__len__ and Recent.add is recent.RecentCore.add
    for cls in (Recent, PyRecent):
        r = cls(2)
        assert not r and len(r) == 0
        assert r.add(b"a") is True and r.add(b"a") is False and len(r) == 1
        r.put_low(b"b", 1)
        assert len(r) == 2 and r.add(b"c") is True and len(r) == 2 and list(r.d) == [b"a", b"c"]
    for core in (recent.RecentCore, PyRecentCore):
        a = type("A", (recent.Bounded, core), {"__slots__": ("changes",),
                                               "put": lambda self, k, v, now=0.0: (setattr(self, "changes", 1),
                                                                                   core.put(self, k, v, now))[1]})(4)
        a.changes = 0
        assert a.add(b"k") is True and a.changes == 1 and b"k" in a.d
    calls = AnsweredCalls(4)
    assert calls.add(b"k") is True and calls.changes == 1 and calls.add(b"k") is False and calls.changes == 1


def test_digest_is_the_parts_hash():
    for parts in [(), ("a",), ("c1@h", "tag", '"A" <sip:a@h>;tag=1', "84912345678"), (b"x", 1, None), ("\udcff",)]:
        assert recent.digest(*parts) == hash(parts)
    assert recent.digest.__module__ != __name__ and not hasattr(recent.digest, "__code__")     # the C one


def test_ack_key_is_blake2b():
    import hashlib
    for branch, call_id in [("z9hG4bK1", "c1@h"), ("", ""), ("\udcff", "é" * 300)]:
        data = f"{branch}|{call_id}".encode("utf-8", "surrogateescape")
        assert recent.ack_key(branch, call_id) == hashlib.blake2b(data, digest_size=16).digest()


def test_dialog_digest_is_its_python_twin_across_blocks():
    """The C dialog_digest (the shared C BLAKE2b, its rounds unrolled) against py_dialog_digest (hashlib): keys and
    parts of random lengths, so the hashed bytes end on, before and after each 128-byte block boundary."""
    rnd = random.Random(7693)
    for _ in range(600):
        key = bytes(rnd.randrange(256) for _ in range(rnd.choice((0, 16, 32, 127, 128, 129))))
        parts = ["".join(chr(rnd.choice((rnd.randrange(32, 127), rnd.randrange(160, 0x3000), 0xdcff)))
                         for _ in range(rnd.randrange(0, 140))) for _ in range(rnd.randrange(0, 4))]
        assert recent.dialog_digest(key, *parts) == recent.py_dialog_digest(key, *parts), (key, parts)


def test_recent_core_unset_memories_read_as_the_python_twin_reads_them():
    """`d` and `low` of a core not initialised yet raise AttributeError, as PyRecentCore's slots do (they read as None
    in C before): the same answer from either core, and a member Python can read without the generic getattr."""
    for core in (recent.RecentCore, PyRecentCore):
        c = core()
        for name in ("d", "low"):
            with pytest.raises(AttributeError):
                getattr(c, name)
