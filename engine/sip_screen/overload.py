"""The SIP screen behind on UDP (shares.py says when and why): an INVITE or a judged MESSAGE from a source over its fair
share is dropped unread, unless it is a re-INVITE of a call the screen saw answered; whether the screen is behind, with its hold.
A mixin of SipScreen (server.py): it reads `s` (overload_after), `udp`, `shares`, `overloaded_until`, `stats`."""
from __future__ import annotations

from .codec import SipParseError, parse_datagram
from .shares import HOLD


class Overload:
    """SipScreen's overload decisions (server.py `on_datagram` asks them for an INVITE over its source's share)."""

    def _reinvite(self, data, src):
        """An INVITE over its source's share while behind: parsed if it is a re-INVITE of a call this screen saw
        answered (in-dialog requests are never dropped so, shares.py), else None (dropped). Only an INVITE with two
        tags (From and To) is parsed: a flood of them costs a parse each (~10 µs), not a judgement."""
        if data.lower().count(b"tag") < 2:                 # (";tag = x" too: LWS may come before the "=")
            return None
        try:
            msg = parse_datagram(data)
        except SipParseError:
            return None
        if not msg.is_request:
            return None
        first = msg.first_values()
        if not msg.tag_in(first.get("to")) or not self._dialog_answered(msg, first.get("call-id") or "", first, src):
            return None
        return msg

    def _behind(self, now: float) -> bool:
        """Whether the screen is overloaded (shares.py): its UDP socket has not been found empty for `overload_after`
        seconds; or it was within the last HOLD seconds and the socket was not found empty at the last round
        (dropping the flood empties the socket at once: without the hold the screen would go back to judging it
        for overload_after, the queue full, before dropping again). Not while the socket is found empty: the
        screen has time to spare, and dropping then only sheds calls it could judge (a softswitch offering
        8,000 INVITEs a second beside a source offering 2 had 8,721 of 48,000 judged in 6 s, 37,345 with
        overload_after = 0)."""
        after = self.s.overload_after
        if not after or self.udp is None:
            return False
        since = self.udp.behind_since()
        if since and now - since >= after:
            self.overloaded_until = now + HOLD
            return True
        if not since:
            return False
        if now < self.overloaded_until:
            return True
        if self.overloaded_until and self.shares.shedding():
            # the hold lapses while the flood is still dropped as fast as the rest is judged: renewed. Lapsed, the
            # screen judged the flood again and the kernel's queue dropped everyone's INVITEs for overload_after
            # before it was behind again (~6.5% of another caller's calls lost, one cycle in every HOLD). Never on
            # drops alone: a screen with time to spare sheds little (a round that finds the socket empty drops
            # nothing), and the largest source of a load it can judge is not held once a flood has gone.
            self.overloaded_until = now + HOLD
            return True
        return False

    def _source_dropped(self, addr) -> None:
        """An INVITE from a source over its fair share while the screen is behind: dropped unparsed (shares.py)."""
        self.stats["overload_source_dropped"] += 1
        self.shares.dropped()
        self._warn("source_share", "behind on SIP: INVITEs and MESSAGEs from %s, over its share of the traffic, are "
                   "dropped unread (overload_source_dropped: %d so far)", addr[0], self.stats["overload_source_dropped"])

    def _message_dropped(self, addr) -> None:
        """A MESSAGE from a source over its fair share while the screen is behind: dropped unparsed as an INVITE is
        (every MESSAGE is judged, in a dialog or not, so none is let through as a re-INVITE is); its sender
        retransmits it (RFC 3261 §17.1.2.2, Timer E) as after a kernel drop."""
        self.stats["messages_overload_dropped"] += 1
        self._source_dropped(addr)
