"""The verdict the shared counters give (redis_store.py holds the theory of operation): which rules' caps the
server enforces, and what a count over a rule's limit does to a message's verdict.

A rule whose forced action is drop is *enforcing*: the batch script commits nothing for a message whose op of
such a rule would be over its limit (`_drop_rule`, redis_counters.py, marks those ops). Once the server has
answered, `_finish` turns its counts into the final verdict: an allowed ad whose cap is full becomes DROP with
the rule's own hit (its status codes and source, the evidence saying "shared state"); a tag rule over its limit
adds its TAG hit. The same conversion decides a message measured against the mirror while the server is away
(redis_outage.py). `_Enforcement` is a mixin of `RedisStore` (its `_rules_id`, `_enforcing`, `stats`).
"""
from __future__ import annotations

from ..verdict import Action, Hit, Verdict, decide


class _Enforcement:
    """symbol -> enforcing rule (per rule set), and the server's counts applied to a verdict."""

    def _enforce_map(self, pipe) -> dict:
        """symbol -> rule, for rules whose forced action is drop (their caps are enforced)."""
        rules = pipe.rules
        if self._rules_id is not rules:
            self._rules_id = rules
            self._enforcing = {r.symbol: r for r in rules.rules}
        return self._enforcing

    def _finish(self, pipe, v, ops, counts, then, committed=True) -> None:
        rules = self._enforce_map(pipe)
        have = {h.symbol for h in v.hits}
        extra = []
        for op, n in zip(ops, counts):
            if not op.over(n):
                continue
            sym = op.ns.split("|", 1)[0]
            rule = rules.get(sym)
            if rule is None or sym in have or rule.action not in (Action.DROP, Action.TAG):
                continue
            have.add(sym)
            _, spec, window, _d = (op.ns.split("|") + ["", "", ""])[:4]
            what = "distinct values" if op.distinct is True else "messages"
            shown = n if op.distinct is True else n + 1
            extra.append(Hit(rule.symbol, rule.score,
                             f"{shown} {what} per {spec} within {window} (limit {op.limit}; shared state)",
                             rule.source, rule.action, rule.smpp_status, rule.sip_code))
        if extra:
            self.stats["converted"] += 1
            charged, counted = v.charged, v.counted
            v = decide(list(v.hits) + extra, pipe.rules.tag_threshold, pipe.rules.drop_threshold)
            if (charged or counted) and committed:
                v = Verdict(v.action, v.score, v.hits, charged, counted)
                if v.action is Action.DROP and charged:     # committed on the server, then dropped (tag scores): not sent
                    # (just committed: none of its counts is out of its window; a count at delivery may be
                    # stamped ahead of the others)
                    pipe.refund(v, min(c[2] for c in charged))
        then(v)
