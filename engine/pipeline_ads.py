"""What the SMPP proxy asks the pipeline about ads after their verdict: their counts toward the advertiser caps given
back (a refusal by the SMSC, a replace_sm or cancel_sm taken), the second a cap counted them at, the count a
replace_sm's replacement is judged without (`replacing`), and whether an ad
scheduled ahead is barred now that its recipient is on the DNC list (smpp_proxy/dnc_cancel.py). A mixin of
`Pipeline` (engine/pipeline.py), read from its rules, lists and state; the rules decide, as in `judge`."""
from __future__ import annotations

from datetime import datetime, timezone

from .context import MessageContext, utc_offset
from .lists.csvio import owner_fold
from .numbers import format_number, normalise_number
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
        number (a rule for sms-mt that drops by itself, `action = "drop"` or its score at [actions] drop, and cannot
        hold without `recipient_dnc = "S"`, the pack's AD_TO_DNC; with `consent = false` required too, the
        recipient's consent to the sender's owner, as the registry says at `msg.time`, lets it go). None when no
        such rule is in force. Asked of an ad scheduled ahead, at a DNC change before its delivery
        (smpp_proxy/dnc_cancel.py)."""
        rules = self._dnc_rules()
        if not rules:
            return None
        ctx = MessageContext(msg, self.lists, self.tz, self.shortcode)
        n, lists = ctx.recipient_num, self.lists
        if not lists.in_dnc(n, "S"):
            return None
        for symbol, consent in rules:
            if consent is None or bool(lists.has_consent(ctx.owner, n)) is consent:
                return f"{symbol}: {format_number(n)} on list:dnc S" + (
                    f", no consent for {ctx.owner}" if consent is False and ctx.owner else "")
        return None

    def dnc_judge(self):
        """`judge(sender, sender_ton, account, recipient, due)`: what dnc_barred says of the ad from `sender` (its
        TON) under `account` to `recipient` (E.164) delivered at `due` (Unix seconds), for a turn of the event loop
        that judges many (smpp_proxy/dnc_cancel.py): the registry read once per sender, account and local day of
        delivery (the owner whose consent counts: its entries' dates are local days), not once an ad; the rest as
        dnc_barred (~1.5 µs an ad, was ~6). The rules and lists are those in force when it was made: one turn's,
        not kept."""
        rules, lists, tz = self._dnc_rules(), self.lists, self.tz
        dnc, consents, owners = lists.dnc_s, lists.consent, {}

        def judge(sender: str, sender_ton: int, account: str, recipient: int, due: int) -> str | None:
            if not rules:
                return None
            # the recipient as dnc_barred's context reads it (its 11 digits read as themselves, the commonest)
            n = recipient if 10 ** 10 <= recipient < 10 ** 11 else normalise_number(format_number(recipient))
            if n is None or n not in dnc:
                return None
            off = utc_offset(tz, due)
            k = (sender, sender_ton, account, (due + off) // 86400) if off is not None else None
            known = owners.get(k)
            if known is None:               # (not known yet, or a day a transition of its zone falls in: exactly)
                owner = MessageContext(Message(sender, format_number(recipient), "",
                                               datetime.fromtimestamp(due, timezone.utc), account, "mt", sender_ton),
                                       lists, tz, self.shortcode).owner
                # (Lists.has_consent's bitmap, looked up once)
                known = (owner, consents.get(owner_fold(owner)) if owner is not None else None)
                if k is not None:
                    owners[k] = known
            owner, bm = known
            for symbol, consent in rules:
                if consent is None or (bm is not None and n in bm) is consent:
                    return f"{symbol}: {format_number(n)} on list:dnc S" + (
                        f", no consent for {owner}" if consent is False and owner else "")
            return None
        return judge

    def _dnc_rules(self) -> list:
        """[(symbol, the consent it requires: True, False or None)] of the rules for sms-mt that drop by themselves
        and require `recipient_dnc = "S"`: in their own [rule.when] or in a symbol their expr requires (an `and`
        of it, or it alone; under an `or` it is not required). A required `not __X` where __X is `consent = true`
        alone is a requirement of no consent. The rules' other conditions are taken to hold (the ad's text is not
        kept, and it was an ad)."""
        rules = self.rules
        if self._dnc_rules_of is not rules:
            out = []
            for r in rules.rules:
                # (a score at the drop threshold drops whatever action the rule forces: verdict.decide)
                if "sms-mt" in r.applies_to and not r.helper and (
                        r.action is Action.DROP or r.score >= rules.drop_threshold):
                    req = _required(r, rules.by_symbol, set())
                    if ("recipient_dnc", "S") in req:
                        consent = False if ("consent", False) in req else True if ("consent", True) in req else None
                        out.append((r.symbol, consent))
            self._dnc_rules_list, self._dnc_rules_of = out, rules
        return self._dnc_rules_list

    def uncharge(self, msg: Message, second: int) -> None:
        """Give back the counts at `second` (delivery_charge) of a message the SMSC now will not deliver: a
        replace_sm it took (the replacement is counted itself) or a cancel_sm. `msg`: its sender, recipient and
        account (what the caps' keys are made of); one stamp of exactly that second per key goes, as refund."""
        remove = self.state.counters.remove
        for ns, keys, window, limit in self._charges_at_delivery(msg):
            for k in keys:
                remove(ns, k, second, window, limit)

    def replacing(self, msg: Message, second: int) -> tuple:
        """Message.replacing of a replacement of the message counted at `second` (delivery_charge) that `msg`
        names (as for uncharge): that second and the (namespace, key) places the caps counted at delivery hold its
        stamp in. The replacement is checked without it, and the stamp stays until the SMSC has taken the
        replacement (uncharge then): never fewer counted than may still be delivered."""
        return second, frozenset([(ns, k) for ns, keys, _w, _l in self._charges_at_delivery(msg) for k in keys])

    def _charges_at_delivery(self, msg: Message) -> list:
        """[(namespace, keys, window, limit)] of each advertiser cap counted at delivery for `msg`, as the rules
        and registry in force now make its keys."""
        ctx = MessageContext(msg, self.lists, self.tz, self.shortcode)
        out = []
        for st in self._at_delivery():
            ns, keys, _ts, window, limit = st.charge(ctx)
            out.append((ns, keys, window, limit))
        return out


_WATCHED = ("recipient_dnc", "consent")       # the conditions dnc_barred reads of a rule (the rest: assumed to hold)


def _required(rule, by_symbol: dict, seen: set) -> set:
    """{(condition, value)} of _WATCHED that `rule` cannot hold without: its own [rule.when]'s, those of the symbols
    its expr requires, and a required `not X` turned round (X `consent = true` alone: no consent required)."""
    out = {(k, rule.conds[k]) for k in _WATCHED if k in rule.conds and not isinstance(rule.conds[k], (list, dict))}
    seen.add(rule.symbol)
    todo = [rule.tree] if rule.tree is not None else []
    while todo:
        node = todo.pop()
        if node[0] == "and":
            todo.extend(node[1])
        elif node[0] == "sym" and node[1] in by_symbol and node[1] not in seen:
            out |= _required(by_symbol[node[1]], by_symbol, seen)
        elif node[0] == "not" and node[1][0] == "sym" and node[1][1] in by_symbol:
            x = by_symbol[node[1][1]]          # `not X`, X consent alone: its opposite (else nothing required)
            if x.tree is None and list(x.conds) == ["consent"] and isinstance(x.conds["consent"], bool):
                out.add(("consent", not x.conds["consent"]))
    return out
