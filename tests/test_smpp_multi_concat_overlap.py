"""Parts of one concatenated message sent in PDUs with different but overlapping destinations (found by review37):
the proxy groups parts by their destinations, so a submit_sm part 1/2 to A and a submit_multi part 2/2 to A and B,
or submit_multi parts to {A, B} and {A, C}, were judged apart, each on its fragment, while the handset they share
joins them (it goes by originator, reference and total): 'Click phish.exa' + 'mple/verify ...' on A's screen whole,
both forwarded. Now (submit_concat.py `_overlaps`, concat.py `Handsets`) both are refused whole while the first
waits for its parts; when the first was judged already (its timeout passed), the second is refused when the text
the shared handset would show drops, and forwarded when it does not."""
import time

from engine.smpp_proxy.accounts import SmppSettings
from engine.smpp_proxy.codec import constants as C
from engine.smpp_proxy.codec import encode
from engine.smpp_proxy.codec import pdu as P
from engine.smpp_proxy.concat import Handsets
from engine.smpp_proxy.harness import ProxyHarness
from tests.test_smpp_multi_concat import HAM, SPAM, TWO, _multi, _udh
from tests.test_smpp_proxy import pipe, raw_session, read_raw  # noqa: F401  (pipe: fixture)
from tests.test_smpp_text_evasion import _statuses


def _sm(seq, body, dest=TWO[0][3]):
    return encode(P.SubmitSm(sequence_number=seq, source_addr="84901234567", destination_addr=dest,
                             esm_class=0x40, short_message=body))


def test_a_submit_sm_part_and_a_submit_multi_part_to_it_and_another_are_one_message_for_it(pipe):
    with ProxyHarness(pipe, settings=SmppSettings(concat_timeout=1.0)) as h:
        s, _ = raw_session(h)
        s.sendall(_sm(31, _udh(0x55, 2, 1) + SPAM[:15].encode()))
        s.sendall(_multi(32, _udh(0x55, 2, 2) + SPAM[15:].encode(), dests=TWO))
        assert _statuses(s, [31, 32]) == [C.ESME_RSUBMITFAIL, C.ESME_RSUBMITFAIL]
        time.sleep(1.5)                                     # past the timeout: nothing of either was sent
        assert h.sim.submits() == []
        assert h.proxy.stats["concat_overlap_refused"] == 1


def test_submit_multi_parts_to_overlapping_destinations_are_one_message_for_the_shared_one(pipe):
    with ProxyHarness(pipe, settings=SmppSettings(concat_timeout=1.0)) as h:
        s, _ = raw_session(h)
        other = (TWO[0], (1, 1, 1, "84912345670"))
        s.sendall(_multi(41, _udh(0x56, 2, 1) + SPAM[:15].encode(), dests=TWO))
        s.sendall(_multi(42, _udh(0x56, 2, 2) + SPAM[15:].encode(), dests=other))
        assert all(st != 0 for st in _statuses(s, [41, 42]))
        s.sendall(_multi(43, _udh(0x56, 2, 2) + SPAM[15:].encode(), dests=other))   # sent again: refused too
        assert _statuses(s, [43]) == [C.ESME_RSUBMITFAIL]
        time.sleep(1.5)
        assert h.sim.submits() == []


def test_a_part_to_a_handset_whose_earlier_part_went_out_alone_is_judged_with_it(pipe):
    # the first part alone (its timeout passed: judged on its fragment, sent); the second, in a submit_multi to
    # that handset and another, would complete the link on the first one's screen: refused
    with ProxyHarness(pipe, settings=SmppSettings(concat_timeout=0.5)) as h:
        s, _ = raw_session(h)
        s.sendall(_sm(51, _udh(0x57, 2, 1) + SPAM[:15].encode()))
        assert _statuses(s, [51]) == [0]
        s.sendall(_multi(52, _udh(0x57, 2, 2) + SPAM[15:].encode(), dests=TWO))
        assert _statuses(s, [52]) == [C.ESME_RSUBMITFAIL]
        time.sleep(1.0)
        assert len(h.sim.submits()) == 1                    # the first fragment only


def test_ham_parts_to_overlapping_destinations_after_the_first_was_judged_go_out(pipe):
    # the same shape with an ordinary text: the joined text does not drop, so nothing is refused
    with ProxyHarness(pipe, settings=SmppSettings(concat_timeout=0.5)) as h:
        s, _ = raw_session(h)
        s.sendall(_sm(61, _udh(0x58, 2, 1) + HAM[:40].encode()))
        assert _statuses(s, [61]) == [0]
        s.sendall(_multi(62, _udh(0x58, 2, 2) + HAM[40:].encode(), dests=TWO))
        assert _statuses(s, [62]) == [0]
        assert h.proxy.stats["concat_overlap_refused"] == 0


def test_messages_with_one_reference_to_disjoint_destinations_are_apart(pipe):
    # an ESME's reference numbers are per destination: the same reference to other handsets is another message
    with ProxyHarness(pipe, settings=SmppSettings(concat_timeout=2.0)) as h:
        s, _ = raw_session(h)
        s.sendall(_sm(71, _udh(0x59, 2, 1) + HAM[:40].encode(), dest="84912345670"))
        s.sendall(_multi(72, _udh(0x59, 2, 1) + HAM[:40].encode(), dests=TWO))
        s.sendall(_sm(73, _udh(0x59, 2, 2) + HAM[40:].encode(), dest="84912345670"))
        s.sendall(_multi(74, _udh(0x59, 2, 2) + HAM[40:].encode(), dests=TWO))
        assert _statuses(s, [71, 72, 73, 74]) == [0, 0, 0, 0]
        assert h.proxy.stats["concat_overlap_refused"] == 0


def test_handsets_keeps_at_most_its_bound_and_sees_only_live_messages():
    hs = Handsets()
    a, b = ("acct", "84901234567", "84912345678", 7, 2), ("acct", "84901234567", ("multi", "x", "y"), 7, 2)
    hs.add(a, ["84912345678"], 7, 2, bound=3)
    assert hs.clash(b, ["x", "84912345678"], 7, 2, live=lambda k: True) == ("84912345678", a)
    assert hs.clash(b, ["84912345678"], 8, 2, live=lambda k: True) is None        # another reference
    assert hs.clash(b, ["84912345678"], 7, 2, live=lambda k: False) is None       # the other is gone
    assert hs.clash(a, ["84912345678"], 7, 2, live=lambda k: True) is None        # itself
    hs.add(b, ["p", "q", "r"], 7, 2, bound=3)
    assert len(hs.by) == 3 and hs.clash(b, ["84912345678"], 7, 2, live=lambda k: True) is None   # forgotten


_THIRDS = ("Click phish", ".exam", "ple/verify to keep your account")    # any two of them read harmless


def test_a_late_part_is_judged_with_the_parts_another_message_put_on_its_handset(pipe):
    # S part 1/3 to A (judged alone at its timeout, sent), M part 2/3 to {A, B} (with S's part 1: harmless),
    # S part 3/3 to A (late: with S's part 1 only, harmless): A would show the link whole. Found by review57:
    # the late part was judged with its own message's parts alone
    with ProxyHarness(pipe, settings=SmppSettings(concat_timeout=0.5)) as h:
        s, _ = raw_session(h)
        s.sendall(_sm(91, _udh(0x5a, 3, 1) + _THIRDS[0].encode()))
        assert _statuses(s, [91]) == [0]
        s.sendall(_multi(92, _udh(0x5a, 3, 2) + _THIRDS[1].encode(), dests=TWO))
        s.sendall(_sm(93, _udh(0x5a, 3, 3) + _THIRDS[2].encode()))
        assert _statuses(s, [92, 93]) == [C.ESME_RSUBMITFAIL, C.ESME_RSUBMITFAIL]   # M still waited: both
        time.sleep(1.0)
        assert [p.short_message[6:] for p in h.sim.submits()] == [_THIRDS[0].encode()]


def test_a_late_part_after_the_other_message_went_out_is_judged_with_its_parts(pipe):
    # the same with M judged (and sent) before S's late part, and the other way round: M's late part after S's
    for first, second in ((_sm, _multi), (_multi, _sm)):
        with ProxyHarness(pipe, settings=SmppSettings(concat_timeout=0.3)) as h:
            s, _ = raw_session(h)
            first_kw, second_kw = ({} if first is _sm else {"dests": TWO}), ({} if second is _sm else {"dests": TWO})
            s.sendall(first(101, _udh(0x5b, 3, 1) + _THIRDS[0].encode(), **first_kw))
            assert _statuses(s, [101]) == [0]
            s.sendall(second(102, _udh(0x5b, 3, 2) + _THIRDS[1].encode(), **second_kw))
            assert _statuses(s, [102]) == [0]
            s.sendall(first(103, _udh(0x5b, 3, 3) + _THIRDS[2].encode(), **first_kw))
            assert _statuses(s, [103]) == [C.ESME_RSUBMITFAIL]
            assert h.proxy.stats["concat_overlap_refused"] == 1
            time.sleep(0.2)
            assert len(h.sim.submits()) == 2                # the two harmless thirds only


def test_handsets_keeps_the_last_messages_of_each_handset():
    hs = Handsets()
    keys = [("acct", "84901234567", ("multi", "a", str(i)), 7, 2) for i in range(6)]
    for k in keys:
        hs.add(k, ["a", k[2][2]], 7, 2, bound=100)
    assert [o for _, o in hs.others(keys[5], ["a"], 7, 2, live=lambda k: True)] == keys[2:5]   # PER_HANDSET 4
    hs.add(keys[2], ["a"], 7, 2, bound=100)                 # again: once, the newest
    assert hs.by[("acct", "84901234567", "a", 7, 2)] == (keys[3], keys[4], keys[5], keys[2])


def test_a_message_waiting_for_its_parts_is_judged_with_those_another_message_put_on_its_handset(pipe):
    # S part 1/3 to A (judged alone, sent), then M parts 2/3 and 3/3 to {A, B}: M's own text ('.exam' +
    # 'ple/verify ...') is harmless, A shows the link whole. Found by review57: only M's first part was checked
    with ProxyHarness(pipe, settings=SmppSettings(concat_timeout=0.5)) as h:
        s, _ = raw_session(h)
        s.sendall(_sm(111, _udh(0x5c, 3, 1) + _THIRDS[0].encode()))
        assert _statuses(s, [111]) == [0]
        s.sendall(_multi(112, _udh(0x5c, 3, 2) + _THIRDS[1].encode(), dests=TWO))
        s.sendall(_multi(113, _udh(0x5c, 3, 3) + _THIRDS[2].encode(), dests=TWO))
        assert _statuses(s, [112, 113]) == [C.ESME_RSUBMITFAIL, C.ESME_RSUBMITFAIL]
        time.sleep(0.8)
        assert len(h.sim.submits()) == 1


def test_messages_refused_at_a_handset_do_not_push_out_one_that_was_sent_there(pipe):
    # S part 1/3 to A sent; four submit_multi parts to {A, Xi} with its reference, refused (overlap), fill A's
    # slots (Handsets.PER_HANDSET); once they are forgotten, M parts 2/3 and 3/3 to {A, B} must still be read
    # with S's part 1. Found by review57: the refused ones pushed S out, M went out on its own text
    with ProxyHarness(pipe, settings=SmppSettings(concat_timeout=0.3)) as h:
        s, _ = raw_session(h)
        s.sendall(_sm(121, _udh(0x5d, 3, 1) + _THIRDS[0].encode()))
        assert _statuses(s, [121]) == [0]
        for i in range(4):
            s.sendall(_multi(122 + i, _udh(0x5d, 3, 2) + b"ok", dests=(TWO[0], (1, 1, 1, "8491234560%d" % i))))
        assert _statuses(s, [122, 123, 124, 125]) == [C.ESME_RSUBMITFAIL] * 4
        time.sleep(0.5)                                     # the refused ones forgotten (concat_timeout)
        s.sendall(_multi(131, _udh(0x5d, 3, 2) + _THIRDS[1].encode(), dests=TWO))
        s.sendall(_multi(132, _udh(0x5d, 3, 3) + _THIRDS[2].encode(), dests=TWO))
        assert _statuses(s, [131, 132]) == [C.ESME_RSUBMITFAIL, C.ESME_RSUBMITFAIL]
        time.sleep(0.5)
        assert len(h.sim.submits()) == 1
