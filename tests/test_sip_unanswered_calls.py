"""(Named for the file set this change could add; the subject is the answered-call memory.) Calls with no final
response cannot flush the answered-call memory: an INVITE's entry in `answered` waits in the tier forgotten first
(recent.Recent.put_low) until a 200 from where it went promotes it. Before, every allowed INVITE went into the
ordinary tier and only a 3xx-6xx demoted it, so INVITEs a next hop black-holes (no final at all) pushed the
calls in progress out of the bound: their re-INVITE was judged as a new call and their BYE recorded no duration.
The calls not answered yet keep `PENDING_CALLS` places (Recent.low_min) whatever the answered ones hold, so
answered calls whose BYE never passes here (no record_route) cannot crowd out a call that is ringing. Each on
every path a datagram takes (full parse, Python fast path, C fast path, C pump)."""
from datetime import timedelta

import pytest

from engine.app import build
from engine.sip_screen.recent import Recent

from .test_sip_answer_origin import UAS, WAYS, Way


@pytest.fixture
def pipe(tmp_path):
    return build(data_dir=tmp_path, with_model=False, persist=False)


@pytest.mark.parametrize("way", WAYS)
def test_invites_that_never_get_a_final_do_not_push_an_answered_call_out(pipe, way, monkeypatch):
    import engine.sip_screen.server as S
    monkeypatch.setattr(S, "ANSWERED", 8)
    w = Way(pipe, way, monkeypatch)
    w.respond(w.call("long-1"), 200, UAS)                       # answered: the call is up
    for n in range(30):                                         # then 30 INVITEs the next hop never answers
        w.call(f"blackholed-{n}")
    assert len(w.scr.answered) == 8 and len(w.scr.answered.low) == 7
    w.now += timedelta(minutes=20)
    ((re_inv, _),) = w.in_dialog("INVITE", "long-1", 2)
    assert re_inv.method == "INVITE" and w.scr.stats["reinvite_unknown_dialog"] == 0     # not judged again
    ((bye, _),) = w.in_dialog("BYE", "long-1", 3)
    assert bye.method == "BYE" and [d for _c, d in w.durations] == [1200.0]


@pytest.mark.parametrize("way", WAYS)
def test_a_ringing_call_keeps_its_place_when_the_memory_is_full_of_answered_calls(pipe, way, monkeypatch):
    """Without record_route no BYE passes here: answered calls stay until the bound pushes them out. A call
    still ringing must not be the one pushed (it keeps one of the places of calls not answered yet)."""
    import engine.sip_screen.server as S
    monkeypatch.setattr(S, "ANSWERED", 8)                        # 4 places kept for calls not answered yet
    w = Way(pipe, way, monkeypatch)
    for n in range(8):
        w.respond(w.call(f"up-{n}"), 200, UAS)                   # the memory full of answered calls
    ringing = w.call("ringing-1")
    for n in range(3):                                           # more INVITEs meanwhile, unanswered
        w.call(f"later-{n}")
    w.respond(ringing, 200, UAS)                                 # its answer still answers it
    w.now += timedelta(minutes=5)
    ((bye, _),) = w.in_dialog("BYE", "ringing-1", 2)
    assert [d for _c, d in w.durations] == [300.0]
    # and a flood of unanswered INVITEs then leaves the answered calls their places (8 - 4)
    for n in range(40):
        w.call(f"flood-{n}")
    ((bye, _),) = w.in_dialog("BYE", "up-7", 2)
    assert [d for _c, d in w.durations] == [300.0, 300.0]


def test_recent_put_low_is_forgotten_first_and_promote_makes_it_ordinary():
    r = Recent(6, low_min=2)
    for k in "abc":
        r.put(k, k)                                              # ordinary entries
    for k in "xyz":
        r.put_low(k, k)                                          # the tier forgotten first
    r.put_low("w", "w")                                          # full: the oldest low one goes
    assert list(r.d) == ["a", "b", "c"] and list(r.low) == ["y", "z", "w"]
    r.promote("y", "Y")                                          # promoted: no longer forgotten first
    assert list(r.d) == ["a", "b", "c", "y"] and list(r.low) == ["z", "w"]
    r.put_low("v", "v")
    assert list(r.d) == ["a", "b", "c", "y"] and list(r.low) == ["w", "v"] and r.get("y") == "Y"
    r.put("w", "W")                                              # put promotes too
    assert list(r.d) == ["a", "b", "c", "y", "w"] and list(r.low) == ["v"]


def test_recent_low_entries_keep_low_min_places_whatever_the_ordinary_ones_hold():
    r = Recent(4, low_min=2)
    for k in "abcd":
        r.put(k, k)
    r.put_low("x", "x")                                          # below its 2 places: an ordinary one goes
    r.put_low("y", "y")
    assert list(r.d) == ["c", "d"] and list(r.low) == ["x", "y"]
    r.put_low("z", "z")                                          # at them: the oldest low one goes
    assert list(r.d) == ["c", "d"] and list(r.low) == ["y", "z"]
    assert Recent(8, low_min=100).low_min == 4                  # never more than half the bound
