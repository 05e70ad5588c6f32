"""A cap on the 5656 replies one subscriber gets: at most `per_hour` confirmations an hour.

Each 5656 command (DK DNC, HUY DNC, a spam report S/V/FW) is answered with an SMS of ours (routing.py
_confirm_shortcode): one subscriber sending 2,000 commands in a second (a script, a broken phone, a test tool) was sent
2,000 SMS, each taking a window slot and a message of the SMSC's capacity. The commands are still all carried out
(a DNC change, a report stored: nothing a subscriber asks is dropped); beyond the cap only the confirmation is not sent
(counted `shortcode_replies_capped`, said in the log at most once a minute). smpp.toml `[shortcode] replies_per_hour`
(20; 0: no cap).

Counting: fixed clock hours (time.monotonic() // 3600) per sender address as the SMSC wrote it: at most 2 ×
per_hour within any 60 minutes across an hour's edge. Bound: BOUND addresses (~150 B each, ~10 MB); past it the
addresses of earlier hours go, then, if all are of this hour (a flood from that many numbers at once), the oldest
eighth: O(1) amortised a reply.
"""
from __future__ import annotations

BOUND = 65_536


class ReplyCap:
    __slots__ = ("per_hour", "bound", "counts")

    def __init__(self, per_hour: int, bound: int = BOUND):
        self.per_hour, self.bound = per_hour, bound
        self.counts: dict[str, tuple[int, int]] = {}        # sender -> (hour, replies sent in it)

    def allow(self, sender: str, now: float) -> bool:
        """Whether `sender` may get one more reply at `now` (time.monotonic()); counted when it may."""
        if self.per_hour <= 0:
            return True
        hour = int(now // 3600)
        c = self.counts.get(sender)
        if c is not None and c[0] == hour:
            if c[1] >= self.per_hour:
                return False
            self.counts[sender] = (hour, c[1] + 1)
            return True
        if c is None and len(self.counts) >= self.bound:
            self._prune(hour)
        self.counts[sender] = (hour, 1)
        return True

    def _prune(self, hour: int) -> None:
        counts = self.counts
        for k in [k for k, (h, _) in counts.items() if h != hour]:
            del counts[k]
        if len(counts) >= self.bound:
            for k in list(counts)[: max(1, self.bound // 8)]:
                del counts[k]
