"""Adversarial review of concatenated SMS over IMS (msgparts.py): what a peer or an operator's reload can do to parts
held unanswered. Each test names the principle it holds: every MESSAGE answered exactly once, a drop never undone by a
late part, the memory held bounded as said. In process (offline_screen); time is an argument."""
from .sip_helpers import UAC, sent
from .test_sip_message import message, pipe, screen  # noqa: F401 (fixtures)
from .test_sip_message_concat import later, mpart


def test_under_a_shared_store_a_part_coming_while_its_message_settles_is_judged_late(screen, pipe):  # noqa: F811
    """A message judged without all its parts under a shared state store (Redis) settles later; its last part coming
    meanwhile must be judged with the earlier parts' text and verdict (late), not held as a message of its own and
    judged on its fragment alone -- which let it through after its message was dropped."""
    from .test_sip_message import _HeldVerdicts
    held = _HeldVerdicts()
    pipe.state.shared = held
    try:
        scr = screen()
        scr.on_datagram(mpart("WIN BIG ", 1, 2, ref=11), UAC)
        scr.message_parts_expire(later(scr))                            # judged alone: settling
        assert len(held.waiting) == 1
        scr.on_datagram(mpart("see you", 2, 2, ref=11), UAC)            # its last part, meanwhile
        v, done = held.waiting.pop()
        done(v)
        assert [r.status for r, _ in sent(scr)] == [608]
        while held.waiting or scr.message_parts.pending:
            scr.message_parts_expire(later(scr))
            while held.waiting:
                v, done = held.waiting.pop()
                done(v)
        assert [r.status for r, _ in sent(scr)] == [608]                # dropped as its message was
        lines = scr.lines()
        assert [ln["action"] for ln in lines] == ["drop", "drop"] and lines[1].get("late") is True
    finally:
        pipe.state.shared = None


def test_a_tcp_part_whose_connection_closed_is_still_answered_once(screen):
    """(documentation of behaviour) a part held whose TCP connection has gone: answered once, §18.2.2's new
    connection to its sent-by (offline_screen records it as sent)."""
    scr = screen()
    scr.on_datagram(mpart("see you ", 1, 2), UAC)
    scr.message_parts_judge_all()
    assert len(sent(scr)) == 1
