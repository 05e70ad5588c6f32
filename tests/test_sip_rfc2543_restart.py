"""An RFC 2543 INVITE (no branch on its top Via) judged just before a clean stop and retransmitted after the start
gets its call's decision again, as one with a branch does (engine/sip_screen/judgedstore.py): it is named by its
top Via's sent-by, From tag, Request-URI and Call-ID (calllog.refused_key, RFC 3261 §17.2.3), the same in every
process. Before, it was kept under no key: judged again after the start, an ad call let through was refused 608 by
its own count, with a second verdict line for one INVITE."""
import re

from .test_sip_judged_restart import _ad_invite, _restart, pipe, screen, sent, UAC, UAS  # noqa: F401  (pipe: fixture)


def _no_branch(data: bytes) -> bytes:
    return re.sub(rb";branch=[^;\r]*", b"", data, count=1)


def test_an_rfc_2543_invite_forwarded_before_a_restart_is_forwarded_again_unjudged(pipe, tmp_path):
    scr, vlog = screen(pipe, [60.0], [1000.0])
    scr.on_datagram(_no_branch(_ad_invite()), UAC)
    ((fwd, to),) = sent(scr)
    assert fwd.method == "INVITE" and to == UAS and len(vlog.calls) == 1
    new, vlog2 = _restart(pipe, scr, tmp_path)
    new.on_datagram(_no_branch(_ad_invite()), UAC)      # its retransmission, 5 s after the restart
    ((again, to),) = sent(new)
    assert again.method == "INVITE" and to == UAS and again.values("via")[0] == fwd.values("via")[0]
    assert vlog2.calls == [] and new.stats["screened"] == 0 and new.stats["replayed"] == 1
