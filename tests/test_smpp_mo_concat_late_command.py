"""A late part of a concatenated 5656 message whose parts alone made no command (judged at `concat_timeout` with
what had arrived: SHORTCODE_SYNTAX_ERROR, nothing put in force) is judged on the whole text known then, as a late
part for an ESME is: the report or DNC change it completes is recorded once, and the subscriber told. Before, the
late part was acknowledged "not applied again" though nothing had been applied: a report whose first part reached
5656 after its second (an SMSC retrying one part) was lost, its reporter told only that the syntax was wrong.
A late part after a command that was put in force is still acknowledged and not applied again
(test_smpp_mo_concat: test_a_late_report_part_is_acknowledged_and_not_counted_twice)."""
from engine.smpp_proxy.accounts import DEFAULT_REPLIES
from tests.test_smpp_mo_concat import (REPORTER, answers, confirmations, deliver, gsm_parts, mo, proxy,  # noqa: F401
                                       reports, verdicts)
from tests.test_smpp_proxy import pipe, wait  # noqa: F401  (pipe: fixture)

SYNTAX = DEFAULT_REPLIES["SHORTCODE_SYNTAX_ERROR"]


def _syntax_error_judged(h, n_answers):
    """The message judged at the timeout with what arrived: a syntax error, told; its part(s) answered."""
    assert wait(lambda: len(h.sim.mo_responses) == n_answers, 3)
    assert wait(lambda: confirmations(h) == [SYNTAX], 3)


def test_a_report_whose_first_part_comes_late_is_recorded_whole(proxy, pipe):
    h, buf = proxy(concat_timeout=0.5)
    p1, p2 = gsm_parts(["S 0987000333 lua dao ", "vay tien nhanh lai suat thap"], ref=0x63)
    s2 = deliver(h, mo(p2, dc=0))
    _syntax_error_judged(h, 1)
    s1 = deliver(h, mo(p1, dc=0))
    assert wait(lambda: confirmations(h) == [SYNTAX, DEFAULT_REPLIES["SPAM_REPORTED"]], 3)
    assert answers(h) == {s2: [0], s1: [0]}
    assert [(r["reported"], r["content"]) for r in reports(pipe)] == \
        [("+84987000333", "lua dao vay tien nhanh lai suat thap")]
    assert wait(lambda: len(verdicts(buf, "5656")) == 2, 3)
    lines = verdicts(buf, "5656")
    assert [[x["symbol"] for x in line["hits"]] for line in lines] == [["SHORTCODE_SYNTAX_ERROR"], ["SPAM_REPORTED"]]
    assert lines[1]["late"] is True and lines[1]["concat"] == lines[0]["concat"]


def test_a_dnc_command_completed_by_a_late_part_is_registered(proxy, pipe):
    h, buf = proxy(concat_timeout=0.5)
    p1, p2 = gsm_parts(["DK ", "DNC S"], ref=0x64)
    deliver(h, mo(p1, dc=0))
    _syntax_error_judged(h, 1)
    deliver(h, mo(p2, dc=0))
    assert wait(lambda: len(confirmations(h)) == 2, 3)
    assert pipe.lists.in_dnc(84911000001, "S") and not pipe.lists.in_dnc(84911000001, "V")
    assert wait(lambda: len(verdicts(buf, "5656")) == 2, 3)
    assert [[x["symbol"] for x in line["hits"]] for line in verdicts(buf, "5656")] == \
        [["SHORTCODE_SYNTAX_ERROR"], ["DNC_REGISTERED"]]


def test_a_late_part_after_the_late_completion_is_not_applied_again(proxy, pipe):
    """3 parts: part 3 alone at the timeout (a syntax error), part 1 late makes it a report, part 2 late after
    that is acknowledged: one report, counted once, told once more."""
    h, buf = proxy(concat_timeout=0.5)
    parts = gsm_parts(["S 0987000444 ", "lua dao ", "vay tien"], ref=0x65)
    deliver(h, mo(parts[2], dc=0))
    _syntax_error_judged(h, 1)
    deliver(h, mo(parts[0], dc=0))
    assert wait(lambda: len(confirmations(h)) == 2, 3)
    s = deliver(h, mo(parts[1], dc=0))
    assert wait(lambda: answers(h).get(s) == [0], 3)
    assert [r["reported"] for r in reports(pipe)] == ["+84987000444"]
    assert confirmations(h) == [SYNTAX, DEFAULT_REPLIES["SPAM_REPORTED"]]
    assert h.proxy.stats["mo_concat_late_shortcode"] == 1


def test_a_late_part_that_leaves_a_syntax_error_is_not_told_again(proxy, pipe):
    h, buf = proxy(concat_timeout=0.5)
    p1, p2 = gsm_parts(["xin chao ", "ban oi"], ref=0x66)
    deliver(h, mo(p2, dc=0))
    _syntax_error_judged(h, 1)
    s = deliver(h, mo(p1, dc=0))
    assert wait(lambda: answers(h).get(s) == [0], 3)
    assert wait(lambda: len(verdicts(buf, "5656")) == 2, 3)
    assert confirmations(h) == [SYNTAX] and reports(pipe) == []


def test_a_first_part_long_after_the_rest_still_completes_the_report(proxy, pipe):
    """What arrived made no command: the message is remembered as long as one not recorded is (NOT_RECORDED_KEEP,
    the SMSC's retry schedule, as with --state redis://), not only concat_timeout: a first part coming more than
    twice concat_timeout after the second was judged alone, a cut report beside the earlier syntax error."""
    import time
    h, buf = proxy(concat_timeout=0.3)
    p1, p2 = gsm_parts(["S 0987000777 lua dao ", "vay tien nhanh"], ref=0x67)
    deliver(h, mo(p2, dc=0))
    _syntax_error_judged(h, 1)
    time.sleep(0.8)                                   # > 2 x concat_timeout after it came
    deliver(h, mo(p1, dc=0))
    assert wait(lambda: len(reports(pipe)) == 1, 3)
    assert reports(pipe)[0]["content"] == "lua dao vay tien nhanh"
    assert wait(lambda: len(verdicts(buf, "5656")) == 2, 3)      # (its line may follow the report's by a moment)
    assert verdicts(buf, "5656")[1]["late"] is True
