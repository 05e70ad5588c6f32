"""What the SMPP proxy asks the pipeline about ads after their verdict: their counts toward the advertiser caps given
back (a refusal by the SMSC, a replace_sm or cancel_sm taken), the second a cap counted them at, and whether an ad
scheduled ahead is barred now that its recipient is on the DNC list (smpp_proxy/dnc_cancel.py). A mixin of
`Pipeline` (engine/pipeline.py), read from its rules, lists and state; the rules decide, as in `judge`."""
from __future__ import annotations

from .context import MessageContext
from .numbers import format_number
from .verdict import Action, Message, Verdict


class AdCounts:
    """Mixin of Pipeline (its `rules`, `lists`, `state`, `tz`, `shortcode`, and the caches its __init__ sets)."""

    def refund(self, verdict: Verdict, now: float) -> None:
        """Give back what `verdict`'s message was counted toward an advertiser's caps (Verdict.charged):
        the SMSC refused it after it was let through, so it was not sent (an ESME retrying an ad the SMSC
        throttled is not dropped by AD_FREQUENCY_CAP for its own refused attempts). `now`: the clock; a count
        already out of its window (in whole seconds, as the counters count: its stamp may have been pushed out
        of its row by a later message since, and another's must not be taken) is left alone."""
        remove = self.state.counters.remove
        now_s = int(now)
        for ns, keys, ts, window, limit in verdict.charged:
            if window is not None and int(ts) + window <= now_s:
                continue
            for k in keys:
                remove(ns, k, ts, window, limit)

    def _at_delivery(self) -> list:
        """The advertiser caps counted at delivery (refundable counters with `at = "delivery"`) of the rules
        in force for SMS from ESMEs."""
        rules = self.rules
        if self._at_rules is not rules:
            self._at_counters = [st for r in rules.rules if "sms-mt" in r.applies_to for st in r.stateful
                                 if st.refundable and getattr(st, "at_delivery", False)]
            self._at_ns = {st.ns for st in self._at_counters}
            self._at_rules = rules
        return self._at_counters

    def delivery_charge(self, verdict: Verdict) -> int | None:
        """The second `verdict`'s message was counted at by the advertiser caps counted at delivery (its
        delivery), None when it was not counted by every one of them (uncharge takes a stamp from each), or only
        by this process while a shared store was away (fail-open: a later give-back could take another
        process's stamp of that second)."""
        self._at_delivery()
        local_only = getattr(self.state.counters, "local_only", None)
        second, seen = None, set()
        for ns, keys, ts, _window, _limit in verdict.charged:
            if ns in self._at_ns:
                if local_only is not None and any(local_only(ns, k, ts) for k in keys):
                    return None         # counted by this process alone (a shared store away): kept, an over-count
                second = int(ts)
                seen.add(ns)
        # uncharge gives back a stamp of every such cap: noted only when each of them counted it (an ad one of
        # two caps counted keeps its count: an over-count, never another message's stamp)
        return second if seen == self._at_ns else None

    def counted_at_delivery(self, verdict: Verdict) -> bool:
        """`verdict`'s message was counted by an advertiser cap counted at delivery: an ad, as the rules in force
        say (the Decree 91 pack's AD_FREQUENCY_CAP), whatever store took the count."""
        if not verdict.charged:
            return False
        self._at_delivery()
        at = self._at_ns
        return any(c[0] in at for c in verdict.charged)

    def dnc_barred(self, msg: Message) -> str | None:
        """Why an ad `msg` may not reach its recipient now, or None: as the rules in force bar an ad to a DNC
        number (a drop rule for sms-mt with `recipient_dnc = "S"`, the pack's AD_TO_DNC; with `consent = false`
        beside it, the recipient's consent to the sender's owner, as the registry says at `msg.time`, lets it go).
        None when no such rule is in force. Asked of an ad scheduled ahead, at a DNC change before its delivery
        (smpp_proxy/dnc_cancel.py)."""
        rules = self._dnc_rules()
        if not rules:
            return None
        ctx = MessageContext(msg, self.lists, self.tz, self.shortcode)
        n, lists = ctx.recipient_num, self.lists
        if not lists.in_dnc(n, "S"):
            return None
        for symbol, consent_lets_go in rules:
            if not (consent_lets_go and lists.has_consent(ctx.owner, n)):
                return f"{symbol}: {format_number(n)} on list:dnc S" + (
                    f", no consent for {ctx.owner}" if consent_lets_go and ctx.owner else "")
        return None

    def _dnc_rules(self) -> list:
        """[(symbol, whether consent lets the ad go)] of the drop rules for sms-mt on `recipient_dnc = "S"`."""
        rules = self.rules
        if self._dnc_rules_of is not rules:
            self._dnc_rules_list = [(r.symbol, r.conds.get("consent") is False) for r in rules.rules
                                    if "sms-mt" in r.applies_to and r.action is Action.DROP
                                    and r.conds.get("recipient_dnc") == "S"]
            self._dnc_rules_of = rules
        return self._dnc_rules_list

    def uncharge(self, msg: Message, second: int) -> None:
        """Give back the counts at `second` (delivery_charge) of a message the SMSC now will not deliver: a
        replace_sm it took (the replacement is counted itself) or a cancel_sm. `msg`: its sender, recipient and
        account (what the caps' keys are made of); one stamp of exactly that second per key goes, as refund."""
        ctx = MessageContext(msg, self.lists, self.tz, self.shortcode)
        remove = self.state.counters.remove
        for st in self._at_delivery():
            ns, keys, _ts, window, limit = st.charge(ctx)
            for k in keys:
                remove(ns, k, second, window, limit)

