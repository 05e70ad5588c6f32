"""An ad scheduled ahead whose recipient registers `DK DNC` before its delivery: cancelled at the SMSC.

Theory of operation. When the SMSC takes an ad (a message an advertiser's cap counted at its delivery,
Pipeline.counted_at_delivery) whose schedule_delivery_time is ahead, forward.py indexes it (scheduled.py) with what
a cancel_sm needs (relay.py too, a replace_sm that makes a message scheduled ahead an ad, or re-times one: both
dnc_index.py). Every second the
housekeeping tick (`_scheduled_tick`) drops the entries now due and, when the DNC list (or the rules in force) has
changed since it last looked, takes the ads to the numbers added to the SMS DNC list since
(Lists.dnc_s_added_since: its last DNC_RING changes made one by one), with those a look left for later and those
whose cancel is to be tried again now; when what changed is not known so (a list object swapped in by a reload,
other rules in force, numbers added in bulk by an import, a consent withdrawn or a sender's owner changed in place,
more changes than the ring holds) it intersects the index's recipients with the SMS DNC list: every ad to a number
on it. (Else it takes only the ads whose cancel is to be tried again, those indexed since to a number on it -- its
DK DNC may have come between the ad's submission and the SMSC's answer -- and the ads left for later once MORE
wait.) A removal from the list bars no ad. The ads found are queued (dnc_look.py: each once, soonest due first) and
judged STEP per turn of the event loop, the first STEP in the tick's turn and the rest a slice per later turn
(loop.call_soon), so that no look, however many ads it takes, holds the loop for more than ~1-2 ms at a time: a full
look walks its recipients into the queue GATHER a turn besides, and queues first the ads due within SOON seconds.
Once the proxy is stopping (the drain's unbinds sent) it judges and sends nothing more: the ads stay indexed,
journalled for the next start's full look. A look still running at the next tick goes on with what that tick queued,
each ad judged once, with the lists and rules in force at its turn (a change made meanwhile is the next tick's): a
full one walks on and then walks again if it judged an ad meanwhile, or walks again behind the ads still to judge
(dnc_look.py: rounds, so that a full change each second never starves the later ads). An ad gone, or due
(delivered), before its turn, or no longer to a number on the list, is let go unjudged. Each ad is asked again
whether it may still go (Pipeline.dnc_judge, as Pipeline.dnc_barred: on the list, no consent to its advertiser as
the registry says at its delivery); one that may not is cancelled: a cancel_sm of ours (message_id, service_type,
source and destination as submitted; NULL destination and service_type for an ad a replace_sm made one, SMPP 3.4
§4.9.1) to a link of the id space that issued its id. The SMSC's answer:
- 0: cancelled. Its count toward the advertiser's cap is given back (as an ESME's cancel_sm of it would), its entry
  goes, and the verdict log has a line `"kind": "cancel"` naming the message, its delivery and why.
- an error (ESME_RCANCELFAIL: already delivered, or unknown to it): the entry goes, the line says the status; an
  error for an ad settled already before its delivery (a cancel of ours that timed out, answered late after its
  retry on another link) is no news: no line.
- none (a timeout, a lost link) or "not now" (ESME_RTHROTTLED, ESME_RMSGQFUL, ESME_RX_T_APPN): the entry stays,
  tried again after a back-off of its own (1, 2, 4 ... s, at most BACKOFF_MAX; forgotten when the ad goes or is let
  go; kept while it waits for a link, below; the retries due taken off a heap: dnc_retry.py); none of its id space
  bound, or none with room for its account: it waits, unjudged, until one is (judged again then; delivered
  meanwhile, still barred: counted as failed, said: dnc_held.py). While IN_FLIGHT of ours wait, the look pauses
  (the rest stay queued, unjudged) until the next tick finds a slot.
Whatever registered the number counts: a 5656 command, `ctl lists`, another process's change through the shared
journal or stream, an import or a reload of the DNC list. Off with smpp.toml [cancel_sm] scheduled_on_dnc = false.

Cost: nothing per message that is not a scheduled ad; per scheduled ad, one index entry (and, to a DNC number,
one judgement at the next tick: its recipient's DK DNC may have come between its submission and the SMSC's
answer). Per DNC change made one by one (a 5656 command, `ctl lists`, a change from the journal or stream), within a
second, its number's ads judged again: a few µs each, the registry read once per sender, account and day a turn.
Was every ad to a DNC number at each change, consented ones too, judged again at every later change: 100,000 of
them ~1 s of the event loop each second a 5656 command came (benchmarks/scheduled_dnc_tick.py). Per lists or rules
reload or bulk change, one bitmap intersection (the index's recipients with the list: ~1 ms for 200,000 ads against
2,000,000 numbers, this host) and each ad found judged again, a slice per loop turn: was all in one turn (~0.6 s for
100,000 ads with consent, no submit_sm or INVITE served meanwhile); per cancel to try again, that ad's judgement at
its retry. Per tick with no change, nothing in the index's size: the entries due dropped EXPIRE_STEP a loop turn
(was: all in the tick's turn, ~0.2 s of CPU for 100,000 ads due in the same second, ~0.4 s for 199,000), the index
heap rebuilt a slice a turn (was: ~30-45 ms / ~55-90 ms in one turn with 33,000 / 66,000 live of 100,000 / 199,000),
the retries due taken off a heap (was: each one's time compared, ~12 ms / ~25 ms a tick with 100,000 / 199,000 ads
backing off): benchmarks/scheduled_expire_tick.py.
"""
from __future__ import annotations

import logging
import time
import weakref
from datetime import datetime, timezone

from .codec import constants as C
from .codec import pdu as P
from .dnc_held import DncHeld, bound_for
from .dnc_index import DncIndex
from .scheduled import MEMBER, PendingAd

log = logging.getLogger("telfilter.smpp")

# an SMSC's "not now" to a cancel_sm: tried again, as a timeout is (ESME_RSYSERR is not: it may be all an SMSC ever
# answers a cancel_sm with, and the ad would be asked about every second until its delivery)
_TEMPORARY = (C.ESME_RTHROTTLED, C.ESME_RMSGQFUL, C.ESME_RX_T_APPN)
TICK = 1.0          # seconds between two looks at the index (from the housekeeping tick)
IN_FLIGHT = 32      # cancel_sm of ours waiting for their answers at once, at most (the rest wait, unjudged, for
                    # a slot): a DNC import that bars thousands of ads takes a few window slots, not the submits'
STEP = 128          # a look's ads judged per turn of the event loop (dnc_look.py)
GATHER = 4 * STEP   # ... and a full look's recipients walked (a quarter of a judgement each, or less)
SOON = 60           # a full look queues first the ads due within this many seconds (GATHER at most, the soonest):
                    # walked otherwise in the order of their numbers, or behind the round being judged (~1,560 turns
                    # at 200,000 ads)
EXPIRE_STEP = 4 * STEP  # index heap items looked at per loop turn, when more are due at once (ads scheduled for
                        # 07:00: ~2 us each, ~1.5-3 ms a turn; was all in one turn, ~0.2 s for 100,000 due at once)
SOON_LOOK = 2 * GATHER  # ... among this many ads due soonest, to any number (~3 ms at most, once a full look)
BACKOFF_MAX = 300.0 # an ad's cancel tried again after 1, 2, 4 ... s (no answer, "not now"), at most this long after
MORE = 4096         # ads to judge at the next DNC change besides its numbers' (those a look's judgement failed
                    # for: an exception, logged; not again each second): once this many wait, at the next tick
                    # (ads indexed to a DNC number, or a look left for a submit_multi copy's cancel, wait among the
                    # due retries instead: judged at the next tick)


class DncCancel(DncHeld, DncIndex):
    """Mixin of `SmppProxy`: its `scheduled` index (scheduled.ScheduledAds) kept and acted on."""

    def _scheduled_tick(self, now: float) -> None:
        """From the housekeeping tick (every 0.25 s): at most every TICK seconds, the index looked at: what changed
        queued for the look (dnc_look.py), whose first slice is judged now, the rest a slice per loop turn."""
        s, look = self.scheduled, self._look
        if not s.entries or now - self._scheduled_at < TICK:
            if not s.entries and (self._scheduled_retry or look or self._cancel_held):  # (their ads gone)
                self._scheduled_retry.clear()
                self._cancel_tries.clear()
                self._cancel_held.clear()
                look.clear()
            return
        if self._expire_soon:
            return          # (the expiry's slices still running, from the last tick: this one's look at the next)
        self._scheduled_at = now
        if not self._expire_some():
            return          # more due than a slice: the rest a slice per loop turn, the look at the next tick
        if not self.settings.cancel_scheduled_on_dnc:
            look.clear()
            self._cancel_held.clear()
            return          # off: none indexed now, and those the last run's journal gave back are not cancelled
        if self._cancel_held:
            self._held_to_look()
        lists = self.pipeline.lists
        seen = lists.dnc_changes
        ref, retry = self._scheduled_lists, self._scheduled_retry
        # (other rules in force: a reload that makes AD_TO_DNC drop again bars ads no DNC change will name)
        changed = ref is None or ref() is not lists or seen != self._scheduled_seen \
            or self._scheduled_rules is not self.pipeline.rules
        due = retry.pop_due(now) if retry else ()     # (dnc_retry.py: what is due only, not a scan of them all)
        many = len(self._scheduled_more) >= MORE
        if changed or due or many:
            # the list changed (or MORE ads wait for a change): the ads to the numbers it took (else every ad to a
            # number on it); else only the ads whose cancel is to be tried again now (not every ad on the list,
            # those with consent too, judged again each second while one cancel waits)
            if changed or many:
                self._look_changed(lists, seen, due)
            else:
                for a in map(s.entries.get, due):
                    if a is not None:
                        look.add(a.due, a.key)
            tries = self._cancel_tries
            for k in due:       # gone meanwhile: its back-off forgotten (one let go is, at its judgement)
                if k not in s.entries:
                    tries.pop(k, None)
        # a look still running from an earlier tick goes on with what this one queued (each ad once, due soonest
        # first); one that waited for a cancel slot (IN_FLIGHT) goes on now
        if look and not self._look_soon and not self.stopping:
            self._look_step()

    def _expire_some(self) -> bool:
        """The entries now due dropped, EXPIRE_STEP at most (the held among them delivered: dnc_held.py), and a slice
        of the index heap's rebuild; the rest at the loop's next turn (call_soon). Whether none due is left."""
        self._expire_soon = False
        s, ts = self.scheduled, int(self.clock().timestamp())
        if self._cancel_held:
            gone = []           # (held ads delivered: barred and not cancelled, unless let go since)
            s.expire(ts, lambda ad: self._held_due(ad, gone), EXPIRE_STEP)
            if gone:
                self._held_delivered(gone)
        else:
            s.expire(ts, None, EXPIRE_STEP)
        done = not s.due_left(ts)
        if not done and s.entries or s.rebuilding:
            self._expire_soon = True
            self.loop.call_soon(self._expire_some)
        return done

    def _look_changed(self, lists, seen: int, due) -> None:
        """The ads to judge again now the DNC list changed (`lists`, its `seen`-th change) queued: those to the
        numbers added to DNC S since the last look, and those left for this look (`_scheduled_more`) or whose cancel
        is to be tried again now (`due`); every ad to a number on it when what changed is not known so (see the
        module's docstring): a full look, walked a slice at a time (dnc_look.DncLook.every)."""
        s, rules, look = self.scheduled, self.pipeline.rules, self._look
        ref, more = self._scheduled_lists, self._scheduled_more
        added = None
        if ref is not None and ref() is lists and self._scheduled_rules is rules:
            added = lists.dnc_s_added_since(self._scheduled_seen)
        self._scheduled_lists, self._scheduled_seen, self._scheduled_rules = weakref.ref(lists), seen, rules
        self._scheduled_more = set()
        keys = more.union(due)
        if added is None:
            look.every(s.dests & lists.dnc_s)
            # (those due soon, GATHER at most, in the round being judged: judged first, again if judged already in it;
            # those to DNC numbers among the SOON_LOOK due soonest, not the GATHER soonest of all then kept if on it)
            keys.update(s.due_before(int(self.clock().timestamp()) + SOON, GATHER, lists.dnc_s, SOON_LOOK))
        else:
            for n in added:
                keys.update(s.keys_to(n))
        for a in map(s.entries.get, keys):
            if a is not None:
                look.add(a.due, a.key)

    def _look_step(self) -> None:
        """One slice of the look (a loop turn's): up to GATHER recipients of a full look walked into its queue, and
        up to STEP queued ads taken, soonest due first, and judged; the next slice at the loop's next turn
        (call_soon). Judging pauses while IN_FLIGHT cancels of ours wait: the next tick goes on."""
        self._look_soon = False
        look, s = self._look, self.scheduled
        if not s.entries or not self.settings.cancel_scheduled_on_dnc:
            look.clear()
            return
        if self.stopping:
            # the drain's unbinds sent (or the stop's links closed): a cancel_sm now is refused (ESME_RINVBNDSTS: its
            # entry dropped as refused, the ad delivered) or lost. Its ads stay indexed, in the journal: the next
            # start's full look judges them
            return
        if look.gathering:
            look.gather_some(s, GATHER)
        self._judge_some(STEP)
        if look.gathering or look and len(self._cancelling) < IN_FLIGHT:
            self._look_soon = True
            self.loop.call_soon(self._look_step)

    def _judge_some(self, n: int) -> None:
        """Up to `n` queued ads taken and each asked again whether it may still go; one that may not, cancelled.
        One due meanwhile (delivered by the SMSC) or gone, or no longer to a number on the list, is let go."""
        s, look, retry, tries = self.scheduled, self._look, self._scheduled_retry, self._cancel_tries
        cancelling, now = self._cancelling, self._scheduled_at
        entries, siblings, dnc = s.entries, s.siblings, self.pipeline.lists.dnc_s
        ts, judge = self.clock().timestamp(), None
        for _ in range(n):
            if len(cancelling) >= IN_FLIGHT:
                return              # the rest wait in the queue, unjudged, for a slot (not judged again each tick)
            key = look.pop()
            if key is None:
                return
            ad = entries.get(key)
            if ad is None or ad.due <= ts or ad.recipient not in dnc:
                if key not in retry and key not in cancelling:
                    tries.pop(key, None)        # not tried again: its back-off forgotten
                continue
            if key in cancelling or key in retry or MEMBER in key and \
                    any(k in cancelling or k in retry for k in siblings(key)):
                if key not in cancelling and key not in retry:
                    # a submit_multi's other copy's: that one may be let go at its retry, or go with no answer (its
                    # receipt), not this one: looked at again each tick (its siblings only) until that one settles
                    retry[key] = now
                continue            # (in flight, or waiting for its back-off: its own, or its submit_multi's)
            try:
                if judge is None:
                    judge = self.pipeline.dnc_judge()       # (this turn's: the registry read once per sender)
                why = judge(ad.source, ad.source_ton, ad.account, ad.recipient, ad.due)
                if why is not None:
                    self._cancel_scheduled(ad, why)
            except Exception:           # a bug here must not stop the housekeeping, nor the look
                log.exception("scheduled ads: judging %s to %s again, or cancelling it", ad.message_id, ad.to)
                cancelling.discard(key)             # (a request that raised holds no IN_FLIGHT slot)
                self._scheduled_more.add(key)       # judged at the next DNC change (at the next tick once MORE wait)
                continue
            if key not in retry and key not in cancelling and not self._is_held(ad):
                tries.pop(key, None)    # let go (consent), or settled: its back-off forgotten (held: kept for its
                                        # cancel once a link is bound or has room, dnc_held.py)

    def _cancel_scheduled(self, ad: PendingAd, why: str) -> None:
        """A cancel_sm of ours for `ad`, to a link of the id space that issued its id (for its account, within
        the account's share of the window), at most IN_FLIGHT at once."""
        if ad.space not in self.id_spaces():
            # the SMSC that took it is no longer configured (another id space since a restart): no one to ask. (Not
            # `self.links`: the links bound now; one lost, binding again, or not bound yet after a start is still
            # there to ask, once bound: `_pick_link` finds none meanwhile, the next tick tries again)
            for k in self.scheduled.siblings(ad.key):       # (a submit_multi's other copies: the same message)
                self.scheduled.discard(k)
            self._cancel_tries.pop(ad.key, None)
            self.stats["scheduled_ads_cancel_failed"] += 1
            log.warning("scheduled ad %s to %s: no SMSC link of id space %r (the one that took it) is configured: "
                        "not cancelled; %s", ad.message_id, ad.to, ad.space, why)
            return
        link = self._pick_link(space=ad.space, account=ad.account)          # (IN_FLIGHT: the tick's test)
        if link is None:
            # none of its id space bound (a start before its bind, a link lost and binding again), or none with room
            # for its account (windows full of submits, its account kept out of the reserve): it waits, unjudged,
            # until one is (was: among the retries, all judged again at every tick meanwhile)
            held = ad.space if not bound_for(self.links, ad.space) else (ad.space, ad.account)
            self._cancel_held.setdefault(held, set()).add(ad.key)
            return
        self._cancelling.add(ad.key)

        def on_resp(resp, status):
            self._cancelling.discard(ad.key)
            if resp is None or resp.command_id not in (C.CANCEL_SM_RESP, C.GENERIC_NACK) \
                    or resp.command_status in _TEMPORARY:
                # no answer (a timeout, a lost link), another command's, or "not now" (throttled, queue full: a
                # burst of cancels after an import): perhaps not cancelled; again after a back-off (1, 2, 4 ... s)
                if ad.key in self.scheduled.entries:
                    n = self._cancel_tries[ad.key] = self._cancel_tries.get(ad.key, 0) + 1
                    self._scheduled_retry[ad.key] = time.monotonic() + min(BACKOFF_MAX, 2.0 ** (n - 1))
                else:                       # gone meanwhile (its receipt, its delivery time): nothing to try again
                    self._cancel_tries.pop(ad.key, None)
                return
            self._cancel_tries.pop(ad.key, None)
            others = [o for o in map(self.scheduled.entries.get, self.scheduled.siblings(ad.key))
                      if o is not None and o.key != ad.key]
            gone = self.scheduled.discard(ad.key) is None
            for o in others:            # a submit_multi's other recipients: the same message, settled with it
                self.scheduled.discard(o.key)
            st = resp.command_status
            if st and gone and ad.due > self.clock().timestamp():
                # settled already, before its delivery: another answer to a cancel of ours (one that timed out
                # answered late, after its retry), its receipt, its ESME's cancel or replace. The SMSC's error
                # says nothing new (it had cancelled it for us): no second line, no "refused" for a cancelled ad
                return
            if st == 0:
                self.stats["scheduled_ads_cancelled"] += 1
                self._cancel_taken(ad.key, ad.account, ad.source, ad.source_ton)       # (relay.py)
            else:
                self.stats["scheduled_ads_cancel_failed"] += 1
                log.warning("scheduled ad %s to %s (delivery %s): the SMSC refused its cancellation (status 0x%08x: "
                            "delivered already, or unknown to it); %s", ad.message_id, ad.to,
                            _iso(ad.due), st, why)
            when = self.clock()
            self.vlog.write_cancel(when, ad.account, ad.source, ad.to, ad.message_id,
                                   datetime.fromtimestamp(ad.due, timezone.utc), st, why)
            if st == 0 and others:
                self._multi_cancelled(when, ad, others)
        link.request(P.CancelSm(service_type=ad.service_type, message_id=ad.message_id,
                                source_addr_ton=ad.source_ton, source_addr_npi=ad.source_npi, source_addr=ad.source,
                                dest_addr_ton=ad.dest_ton, dest_addr_npi=ad.dest_npi,
                                destination_addr=ad.destination), on_resp)
        self.stats["scheduled_ads_cancel_sent"] += 1       # (after: one whose sending raised is not)

    def _multi_cancelled(self, when, ad: PendingAd, others: list) -> None:
        """The SMSC cancelled the submit_multi `ad` is one recipient's copy of: its `others`' copies went with it
        (one message_id). Each has its line, naming the recipient that barred it."""
        self.stats["scheduled_ads_cancelled"] += len(others)
        why = f"PDU_CANCELLED: not sent: the submit_multi was cancelled whole (destination {ad.to!r} registered DNC)"
        log.warning("scheduled submit_multi %s: cancelled whole, %d other recipients' copies with the one to %s",
                    ad.message_id, len(others), ad.to)
        for o in others:
            self.vlog.write_cancel(when, o.account, o.source, o.to, o.message_id,
                                   datetime.fromtimestamp(o.due, timezone.utc), 0, why)


def _iso(t: int) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat()
