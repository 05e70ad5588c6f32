"""The barred ads whose cancel_sm waits for an SMSC link (dnc_cancel.py): none of their id space bound (a start
before its bind, a link lost and binding again), or none with room for their account (windows full of submits, the
account kept out of the reserve). They wait, unjudged, in `_cancel_held` (by id space; by id space and account),
until a tick finds such a link: judged again then, with the lists in force. One delivered meanwhile and still barred
is counted (`scheduled_ads_cancel_failed`) and said. Keys of ads gone otherwise are dropped once they outnumber the
index by SLACK. A held ad keeps its count of cancels that went unanswered (`_cancel_tries`): its back-off goes on
from it once a link takes its cancel (was: forgotten when it was held, 1 s again after a link lost at its 300 s
back-off); the count goes with its held key."""
from __future__ import annotations

import logging

from .scheduled import PendingAd

log = logging.getLogger("telfilter.smpp")
SLACK = 4096        # held keys past the index's size before those of ads gone are dropped (one pass each time)


class DncHeld:
    """Mixin of DncCancel (SmppProxy's `_cancel_held`)."""

    def _held_due(self, ad: PendingAd, gone: list) -> None:
        """`ad` due (delivered by the SMSC): one held unjudged for a link of its id space out of the held set, into
        `gone`."""
        was = False             # (in both at times: held for a bind, then judged again at a change, for room)
        for held in (ad.space, (ad.space, ad.account)):
            keys = self._cancel_held.get(held)
            if keys is not None and ad.key in keys:
                keys.discard(ad.key)
                was = True
        if was:
            self._cancel_tries.pop(ad.key, None)
            gone.append(ad)

    def _is_held(self, ad: PendingAd) -> bool:
        """`ad`'s cancel waits for a link of its id space (one with room for its account)."""
        held = self._cancel_held
        return bool(held) and (ad.key in held.get(ad.space, ()) or ad.key in held.get((ad.space, ad.account), ()))

    def _held_delivered(self, gone: list) -> None:
        """The held ads delivered this tick (`gone`) that are still barred (judged again: a consent given, a number
        off the list meanwhile lets one go): counted as cancels failed, said in one line per id space."""
        judge, dnc, spaces = self.pipeline.dnc_judge(), self.pipeline.lists.dnc_s, {}
        for ad in gone:
            if ad.recipient in dnc and judge(ad.source, ad.source_ton, ad.account, ad.recipient, ad.due) is not None:
                spaces.setdefault(ad.space, []).append(ad)
        for space, ads in spaces.items():
            self.stats["scheduled_ads_cancel_failed"] += len(ads)
            log.warning("scheduled ads: %d barred ads delivered (the first %s to %s) not cancelled: no SMSC link of "
                        "id space %r was bound (or had room) before their delivery", len(ads), ads[0].message_id,
                        ads[0].to, space)
        for space in [sp for sp, keys in self._cancel_held.items() if not keys]:
            del self._cancel_held[space]

    def _held_to_look(self) -> None:
        """The ads whose cancel waits for a link of its id space to be bound, or one with room for its account
        (`_cancel_held`, by id space, or id space and account): those of a space one of whose links is bound now,
        or has room for the account, queued for the look, judged again (with the lists then); the others stay.
        Keys of ads gone meanwhile dropped once they outnumber the index (no link for hours: bounded)."""
        held, entries, look, tries = self._cancel_held, self.scheduled.entries, self._look, self._cancel_tries
        for h in [h for h in held if (bound_for(self.links, h) if type(h) is str
                                      else self._pick_link(space=h[0], account=h[1]) is not None)]:
            for k in held.pop(h):
                a = entries.get(k)
                if a is not None:
                    look.add(a.due, k)          # (its count of tries kept: its back-off goes on)
                elif tries:
                    tries.pop(k, None)
        for keys in held.values():
            if len(keys) > len(entries) + SLACK:     # (then as many as the index at most: all live)
                if tries:
                    for k in keys.difference(entries):
                        tries.pop(k, None)
                keys.intersection_update(entries)


def bound_for(links, space: str) -> bool:
    """A link of id `space` is bound now that may send a cancel_sm (busy or not)."""
    return any(l.bound and l.id_space == space and l.kind != "receiver" for l in links)
