"""The one result type every path returns, and the domain objects it judges.

A `Verdict` is an action (allow < tag < drop) plus the named hits that led to it.
Each hit is an UPPER_SNAKE symbol with its score, evidence (`detail`) and where it
came from (`config/rules/ads.toml:12`, `list:dnc`, `model:…`). The proxies turn a
verdict into a wire answer; nothing here knows about wires.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime


class Action(enum.IntEnum):
    # Ordered: when several hits force actions the strongest (largest) wins.
    ALLOW = 0
    TAG = 1
    DROP = 2

    @classmethod
    def parse(cls, name: str) -> "Action":
        try:
            return cls[name.strip().upper()]
        except KeyError:
            raise ValueError(f"unknown action {name!r} (allow, tag or drop)") from None

    def __str__(self) -> str:
        return self.name.lower()


ESME_RSUBMITFAIL = 0x45


@dataclass(frozen=True, slots=True)
class Hit:
    symbol: str
    score: float = 0.0
    detail: str = ""
    source: str = ""
    action: Action | None = None      # forced action, if the rule forces one
    smpp_status: int | None = None    # command_status to answer with on drop
    sip_code: int | None = None       # SIP response code to answer with on drop

    def to_json(self) -> dict:
        return {"symbol": self.symbol, "score": round(self.score, 6),
                "detail": self.detail, "source": self.source}


@dataclass(frozen=True, slots=True)
class Verdict:
    action: Action
    score: float
    hits: tuple[Hit, ...] = ()
    # the advertiser-cap counts committed for the message (Pipeline.judge), each (namespace, keys,
    # second, window, limit): what Pipeline.refund gives back when the SMSC refuses the message
    charged: tuple = field(default=(), compare=False, repr=False)
    # the count-mode counter keys (namespace, key) the message was counted under, kept only for one judged
    # before all its parts came (Message.counted): its late parts are not counted against them again
    counted: frozenset | None = field(default=None, compare=False, repr=False)

    @property
    def deciding_hit(self) -> Hit | None:
        """The first hit that forced the final action (for wire status codes)."""
        for h in self.hits:
            if h.action is self.action:
                return h
        return None

    @property
    def smpp_status(self) -> int:
        h = self.deciding_hit
        return h.smpp_status if h and h.smpp_status is not None else ESME_RSUBMITFAIL

    @property
    def sip_code(self) -> int:
        h = self.deciding_hit
        return h.sip_code if h and h.sip_code is not None else 603

    @property
    def symbols(self) -> list[str]:
        return [h.symbol for h in self.hits]

    def to_json(self, id=None) -> dict:
        out = {"id": id} if id is not None else {}
        out.update(action=str(self.action), score=round(self.score, 6),
                   hits=[h.to_json() for h in self.hits])
        return out


ALLOW_NO_HITS = Verdict(Action.ALLOW, 0.0, ())      # most messages: one shared, immutable verdict


def dropped_with(v: Verdict, detail: str, source: str) -> Verdict:
    """The verdict of one destination of a message dropped as a whole for another destination's verdict
    (an SMPP submit_multi is one message: the SMSC takes all of it or none): `v`'s hits and score, dropped,
    with a PDU_DROPPED hit saying why. Its counters were not committed (nothing was sent to it)."""
    return Verdict(Action.DROP, v.score, v.hits + (Hit("PDU_DROPPED", 0.0, detail, source, Action.DROP),))


# an enum member read from its class goes through EnumType's __getattr__ hook (CPython's slot_tp_getattr_hook,
# ~900 instructions a read, no Python frame): read once here
_ALLOW, _TAG, _DROP = Action.ALLOW, Action.TAG, Action.DROP


def decide(hits: list[Hit], tag_threshold: float, drop_threshold: float) -> Verdict:
    """Combine hits: forced actions and the score table; the strongest action wins."""
    if not hits and tag_threshold > 0.0 and drop_threshold > 0.0:
        return ALLOW_NO_HITS
    score = 0.0
    action = _ALLOW
    for h in hits:
        score += h.score
        if h.action is not None and h.action > action:
            action = h.action
    if score >= drop_threshold:
        action = _DROP
    elif score >= tag_threshold and action < _TAG:
        action = _TAG
    return Verdict(action, score, tuple(hits))


@dataclass(slots=True)
class Message:
    """One SMS. `sender` is a brandname or a number as received; `account` is the ESME system_id.
    `time` is when it is judged at: when it will be delivered (an SMPP schedule_delivery_time later than
    its submission), `submitted` then saying when it was submitted (None: `time` is both)."""
    sender: str
    recipient: str
    text: str
    time: datetime
    account: str = ""
    # "mt" (ESME -> subscriber), "mo" (subscriber -> short code/ESME); None = not said (`check` without --direction,
    # a --jsonl line without one): to the short code a subscriber's command (as mo), else treated as mt
    direction: str | None = "mt"
    # the SMPP type of number of `sender` and `recipient` (numbers.normalise_number): 0, unknown, for a message
    # from anywhere else (a `check` record may give them). Next to the fields the SMPP path passes: it passes
    # them by position (a keyword argument costs ~0.1 µs per message)
    sender_ton: int = 0
    recipient_ton: int = 0
    # (normalise_number of sender and recipient under their TONs when the caller read them already: MessageContext
    # takes them, not reading them again; None: read there. The SMPP proxy reads them before judging a submit_sm,
    # and keeps the recipient's for the message-id map's note: one read a forwarded message, not two. By position)
    nums: tuple | None = None
    id: str | None = None
    kind: str = "sms"
    submitted: datetime | None = None
    # a concatenated message that may get parts after it is judged: the count-mode counter keys (namespace, key)
    # it already holds a place under (empty for its first judging, its message's Verdict.counted for a late part).
    # A count check skips those keys (the message is one of the N it allows, not an (N+1)th), and a commit adds
    # the keys it counts to the verdict's `counted`. None: a message judged once, whole
    counted: frozenset | None = None
    # a replace_sm's replacement (smpp_proxy/relay.py) of a message counted toward the advertiser caps counted at
    # delivery: (the second it was counted at, the (namespace, key) places it was counted in: Pipeline.replacing).
    # Those caps check it with one stamp of that second left out under those keys (it replaces that message, it
    # does not come beside it); it is committed as any message, and the replaced one's count goes only once the
    # SMSC has taken the replacement. None: a message of its own
    replacing: tuple | None = None


@dataclass(slots=True)
class Call:
    caller: str
    callee: str
    time: datetime
    ingress: str = ""              # the trunk / peer it came from
    # (normalise_number of caller and callee when the screen read them already: MessageContext takes them, not
    # reading them again; None: read there. Fifth: the screen passes its five fields by position, ~2,200
    # instructions less an INVITE than by keyword)
    nums: tuple | None = None
    id: str | None = None
    duration: float | None = None  # seconds, for a completed-call record (BYE seen)
    kind: str = "call"
