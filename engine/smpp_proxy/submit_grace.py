"""The SMSC window slots of messages waiting for a shared state store's settle (SubmitPath._judge), and of those the
store holds through a re-seed grace (engine/state/redis_reseed.py: the server lost its keys, and a message with an
op of an enforced cap waits, up to 5 s, until the other processes have put their counts back).

A message judged takes a window slot until it is forwarded or answered (`settling`): what no link could take once
settled is throttled unjudged instead. A held one gives its slot back while it is held (`grace_held`); at the
grace's end it waits in `grace_ready` (oldest first, before any new message) until a slot is free, takes it and is
sent again. Before, the held messages kept their slots: with the shipped pack every message from a number
(FLOOD_SAME_CONTENT) and every ad is held, so the first window's worth filled the windows and everything else,
OTPs from names too, was answered ESME_RTHROTTLED for the whole grace (a probe: window 10, 100 submit_sm/s, 30%
ads, 35% from a number, 35% OTPs from a name, a FLUSHALL: 10 messages held 1 s, 31 of the 40 OTPs of the 1 s grace
and 50 of the 60 others throttled; now none of them, the held ones answered after 0.3-1.1 s)."""
from __future__ import annotations


class Settling:
    """`then` of a message's settle: the verdict (`judged`), and the store's grace protocol (`held`, `released`)."""
    __slots__ = ("proxy", "judged")

    def __init__(self, proxy, judged):
        self.proxy, self.judged = proxy, judged

    def __call__(self, v) -> None:
        self.judged(v)

    def held(self) -> None:
        p = self.proxy
        p.settling -= 1
        p.grace_held += 1

    def released(self, resume) -> None:
        p = self.proxy
        p.grace_ready.append(resume)
        p.grace_resume()


class GraceSlots:
    def settle_room(self) -> int:
        """The SMSC window slots free now."""
        return sum(l.window.size - len(l.window.pending) for l in self.links if l.available)

    def grace_resume(self) -> None:
        """Send again the held messages whose grace ended, oldest first, as window slots are free (each takes one);
        with no link bound all of them (their verdicts come back to no link: throttled, as any settle's then)."""
        ready = self.grace_ready
        if not ready:
            return
        room = self.settle_room()
        linked = room or any(l.bound and l.kind != "receiver" for l in self.links)
        while ready and (self.settling < room or not linked):
            self.settling += 1
            self.grace_held -= 1
            ready.popleft()()
