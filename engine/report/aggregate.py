"""Counting verdict records and 5656 reports into the regulator's report (no I/O here).

Theory of operation: `Aggregator.add_verdict` and `add_report` see each record once and
update counters; nothing keeps a record. Every structure has a bound that does not grow
with traffic:

  - totals, DNC and report counts: fixed keys;
  - per-period series: one row per day/week/month in the period covered (a year by day is
    366 rows);
  - symbols: at most 2*TOP_KEEP (a rule set has a few dozen); past that only the TOP_KEEP
    most hit are kept and `top_counts_exact` is false;
  - top senders and owners by drops: `TopCounter`, at most 2*TOP_KEEP keys (a year of
    spam from random numbers stays at 2*TOP_KEEP entries);
  - advertising by owner: owners of the sender registry, plus one bucket for senders that
    are not registered;
  - model versions: the versions seen in ML_SPAM hits (a handful a year; past TOP_KEEP versions their hits are
    counted in `models_left_out_hits`);
  - a sender, caller or model version is kept at most MAX_KEY characters (`bounded`): a SIP From user may be
    64 KiB, and 2*TOP_KEEP of them kept whole held over 100 MiB.

A line of a late part (`"late": true`: a part of a concatenated message that came after its message was
judged and logged) is no message: its message is counted once, by its own line, in `totals` and the volume.
The late line names its message (`"concat"`, as the message's line did): tied to it (late.py, bounded: see
there), the symbols it shows that the message's lines did not are counted for the message, and an ad hit on it
makes the message an ad in `advertising_by_owner` (once, under the owner of the message's sender). A message
whose line was a refusal with no verdict (a 5656 command the journal could not record, asked again) is counted
under the action of the late line that got it judged. A DNC change or a 5656 report is counted by the line whose
judging made it, late or not (a late part that got a command recorded: its message's line applied nothing). A
late line tied to no message (forgotten, or its message's line before `--from` or in a log not read) counts
toward `late_parts_untied` and its DNC change or report only.

A 5656 command's line that says `"redelivery": true` (the SMSC delivered it again; it applied nothing:
smpp_proxy/mo_redelivery.py) is no message either: counted in `shortcode_redeliveries` alone, unless no line of
its first delivery (the same `"mo_digest"`) was read: serve killed before writing it, the copy is counted as the
message (redelivered.py).

A call let through whose `call_unsent` line says it never left (the SIP screen answered it 503 or 487 itself, its
counts given back) is counted under call/refuse and out of its owner's advertising volume (unsent.py): its caller's
retry is the call.

Who owns a sender comes from the sender registry as it is now (`Lists.senders`), since the
verdict log does not carry the owner; the summary says so. A message counts as advertising
when its sender is registered in category QC or when any AD_* rule hit it.
"""
from __future__ import annotations

import re
from datetime import date, datetime
from sys import intern

from ..lists.changes import OPS as LIST_OPS
from ..lists.csvio import KINDS as LIST_KINDS
from ..numbers import normalise_number, normalise_sender_id
from .bounded import MAX_KEY, bounded
from .hits import _ALL, VIOLATIONS, _VIOLATION_OF, _classify, _model

from .late import LateParts, Message, shared
from .periods import fill, period_start
from .reader import parse_ts
from .redelivered import Redelivered
from .topcounter import TOP_KEEP, TopCounter
from .unsent import UNREGISTERED, Sent, UnsentCalls

ACTIONS = ("allow", "tag", "drop", "refuse")
CHANNELS = ("sms", "call")
REPORT_KINDS = ("S", "V", "FW")
_DNC_CH = re.compile(r"DNC (SV|S|V)\s*$")


class Aggregator(UnsentCalls):
    def __init__(self, tz, period: str = "day", start: date | None = None, end: date | None = None,
                 lists=None, reports_from_log: bool = True):
        self.tz, self.period, self.start, self.end = tz, period, start, end
        self.lists = lists
        self.reports_from_log = reports_from_log
        self.totals = {ch: dict.fromkeys(ACTIONS, 0) for ch in CHANNELS}
        self.symbols = TopCounter(keep=TOP_KEEP)
        self.dnc = {"registered": 0, "cancelled": 0}
        self.dnc_by_channel = {ch: {"registered": 0, "cancelled": 0} for ch in ("S", "V", "SV")}
        self.reports = dict.fromkeys(REPORT_KINDS, 0)
        self.scheduled_cancels = {"cancelled": 0, "refused_by_smsc": 0}
        # period's first day -> list -> {add, remove, import, replace}: ctl lists on a running serve, the offline
        # `telfilter lists` changes of DATA/lists/changes.jsonl (lists/changes.py); an import is one, whatever its rows
        self.list_changes: dict = {}
        self.volume: dict[date, list[int]] = {}        # period -> counts in (channel, action) order
        self.dnc_series: dict[date, list[int]] = {}    # period -> [registered, cancelled]
        self.report_series: dict[date, list[int]] = {}  # period -> [S, V, FW]
        self.top_senders = TopCounter()
        self.top_owners = TopCounter()
        self.ads: dict[str, dict] = {}
        self.models: dict[str, dict] = {}
        self.models_left_out = 0    # ML_SPAM hits of versions past the TOP_KEEP listed
        self.records = 0
        self.outside = 0
        self.late_parts = 0         # lines of late parts of concatenated messages: their message counted once
        self.redeliveries = 0       # lines of 5656 commands the SMSC delivered again: counted by their first line
        self.redelivered = Redelivered()    # ... tied to it by their "mo_digest" (redelivered.py)
        self.late_untied = 0        # ... naming no message (no "concat")
        self.late = LateParts()     # the messages late parts may come for (late.py)
        self.first: datetime | None = None
        self.last: datetime | None = None
        self.report_first: datetime | None = None      # of the report store's records (first/last: verdicts)
        self.report_last: datetime | None = None
        self._owner_cache: dict = {}
        self._unsent_init()

    # ------------------------------------------------------------ inputs
    def _day(self, ts: datetime) -> date | None:
        d = ts.astimezone(self.tz).date()
        if (self.start and d < self.start) or (self.end and d > self.end):
            self.outside += 1
            return None
        return d

    def add_verdict(self, ts: datetime, rec: dict) -> None:
        if rec["kind"] == "sms_id":                     # an SMSC's message_id: its message counted by its own line
            return
        if rec["kind"] == "list":                       # an operator's list change (ctl or offline lists): no message
            d = self._day(ts)
            # (a remove of what was not listed, "found": false, changed nothing)
            if d is not None and rec["list"] in LIST_KINDS and rec["op"] in LIST_OPS \
                    and rec.get("found", True) is not False:
                by = self.list_changes.setdefault(period_start(d, self.period).isoformat(), {})
                by.setdefault(rec["list"], dict.fromkeys(LIST_OPS, 0))[rec["op"]] += 1
            return
        if rec["kind"] == "call_unsent":                # counted on its call's day, as its call's line was
            judged = parse_ts(rec["judged"])
            if self._day(judged) is not None:
                self._unsent_line(rec, judged)
            return
        if "mo_digest" in rec and rec.get("redelivery") is not True:
            self.redelivered.first(rec["mo_digest"])      # (before the period's bounds: it ties its copies)
        d = self._day(ts)
        if d is None:
            return
        if rec["kind"] == "cancel":
            # an ad scheduled ahead that the proxy asked the SMSC to cancel, its recipient having registered DK DNC
            # before its delivery (smpp_proxy/dnc_cancel.py): no message (its own line counted it), a DNC measure
            self.scheduled_cancels["cancelled" if rec["status"] == 0 else "refused_by_smsc"] += 1
            return
        if rec.get("redelivery") is True:
            # a 5656 command the SMSC delivered again (smpp_proxy/mo_redelivery.py): its first delivery's line counted
            # the message and its DNC change or report; this one applied nothing (unless no first line: redelivered.py)
            if "mo_digest" in rec:
                self.redelivered.copy(rec["mo_digest"], ts, rec)
            else:
                self.redeliveries += 1
            return
        if rec.get("late") is True:
            # a part that came after its concatenated message was judged: that message has its line (and was
            # counted by it); this one is no second message (an ad in two parts, one late, is one ad)
            self.late_parts += 1
            return self._late(ts, period_start(d, self.period), rec)
        self.records += 1
        if self.first is None or ts < self.first:
            self.first = ts
        if self.last is None or ts > self.last:
            self.last = ts
        ch, action = rec["kind"], rec["action"]
        p = period_start(d, self.period)
        sender = rec.get("sender") if ch == "sms" else rec.get("caller")
        sender = sender if isinstance(sender, str) else ""
        # the number it was judged as when its SMPP type of number read it otherwise ("sender_read": "+243…")
        read = rec.get("sender_read") if ch == "sms" else None
        owner, category = self._owner(read if isinstance(read, str) and read else sender)
        sender = bounded(sender)
        self._count(ch, action, p, sender, owner)
        cid = rec.get("concat")
        tied = isinstance(cid, str) and ch == "sms"
        hits = rec.get("hits")
        ad_hit, violations, symbols = self._hits(ts, p, hits, keep=tied) if hits else (False, (), ())
        is_ad = ad_hit or category == "QC"
        if is_ad:
            self._ad(owner, action, violations)
        if ch == "call" and action in ("allow", "tag"):    # it may turn out never sent (unsent.py)
            self._let_through(rec, ts, Sent(p, action, owner, is_ad, violations))
        if tied:
            # a message that may have late parts: what was counted for it, for them (late.py)
            m = Message(owner, is_ad, violations, symbols, ACTIONS[ACTIONS.index(action)],
                        p if action == "refuse" and "hits" not in rec else None)
            e = self.late.remember(cid, m, ts.timestamp())
            if e is not None:               # late lines read before it (logs given newest first)
                new = e.symbols - m.symbols
                for sym in new:
                    self.symbols.add(sym)
                if "ML_SPAM" in new and e.model is not None:     # (counted as a tied late line's would be)
                    self._model_hit(e.model, e.model_ts)
                self._merge(m, e.ad_hit, e.violations, new, e.action, e.sender)

    def _count(self, ch: str, action: str, p: date, sender: str, owner, n: int = 1) -> None:
        """A message in totals and the volume (n = -1: taken out again), and its sender's and owner's drops."""
        row = self.totals[ch]
        row[action] = row.get(action, 0) + n
        vol = self.volume.get(p)
        if vol is None:
            vol = self.volume[p] = [0] * (len(CHANNELS) * len(ACTIONS))
        if action in ACTIONS:
            vol[CHANNELS.index(ch) * len(ACTIONS) + ACTIONS.index(action)] += n
        if action == "drop" and n > 0:
            self.top_senders.add((ch, sender))
            if owner is not None:
                self.top_owners.add(owner)

    def _ad(self, owner, action: str, violations, new: bool = True) -> None:
        """An ad of `owner` (`new` false: one counted already, its new violations only)."""
        a = self.ads.get(owner or UNREGISTERED)
        if a is None:
            a = self.ads[owner or UNREGISTERED] = {"volume": 0, "dropped": 0, **dict.fromkeys(VIOLATIONS, 0)}
        if new:
            a["volume"] += 1
            a["dropped"] += action == "drop"
        for v in violations:
            a[v] += 1

    def _hits(self, ts: datetime, p: date, hits, seen=None, keep: bool = True):
        """Count a line's hits: (an ad rule hit, its violation classes, its symbols: None unless `keep`). `seen`:
        the symbols counted for its message already (a late line's): those are not counted again, but a DNC change
        or a 5656 report it shows is (made by this line's judging: its message's line made none)."""
        ad_hit, violations, symbols = False, set(), set() if keep else None
        for h in hits:
            sym = h.get("symbol") if isinstance(h, dict) else None
            if not isinstance(sym, str):
                continue
            if sym in ("SPAM_REPORTED", "AD_COPY_RECEIVED"):
                # a 5656 report (AD_COPY_RECEIVED: a subscriber's FW of an ad), not an ad rule's hit
                kind = "FW" if sym == "AD_COPY_RECEIVED" else str(h.get("detail", ""))[:1]
                if kind in REPORT_KINDS and self.reports_from_log:
                    self._report(p, kind)
            elif sym in ("DNC_REGISTERED", "DNC_CANCELLED"):
                self._dnc(p, sym, str(h.get("detail", "")))
            if seen is not None and sym in seen:
                continue
            if keep:
                symbols.add(intern(sym))
            self.symbols.add(sym)
            v = _VIOLATION_OF.get(sym)
            if v is not None:
                violations.add(v)
                ad_hit = True
            elif sym.startswith("AD_") and sym != "AD_COPY_RECEIVED":
                ad_hit = True
            elif sym == "ML_SPAM":
                self._model_hit(_model(h), ts)
        return ad_hit, violations, symbols

    def _model_hit(self, ver: str, ts: datetime) -> None:
        m = self.models.get(ver)
        if m is None and len(self.models) < TOP_KEEP:
            m = self.models[ver] = {"hits": 0, "first": ts.isoformat(), "last": ts.isoformat()}
        if m is None:
            self.models_left_out += 1
            return
        m["hits"] += 1
        m["first"] = min(m["first"], ts.isoformat())
        m["last"] = max(m["last"], ts.isoformat())

    def _late(self, ts: datetime, p: date, rec: dict) -> None:
        """A late part's line: what it shows that its message's lines did not, counted for that message."""
        cid = rec.get("concat")
        m = self.late.get(cid) if isinstance(cid, str) else None
        hits = rec.get("hits") or ()
        verdict = rec["action"] if "hits" in rec else None
        sender = bounded(rec["sender"]) if isinstance(rec.get("sender"), str) else ""
        if m is None:
            self._hits(ts, p, hits, seen=_ALL)            # its DNC change or 5656 report, now
            if isinstance(cid, str):                      # the rest once its message's line is read (late.py)
                self.late.defer(cid, *_classify(hits), verdict, sender, ts)
            else:
                self.late_untied += 1
            return
        ad_hit, violations, symbols = self._hits(ts, p, hits, seen=m.symbols)
        self._merge(m, ad_hit, violations, symbols, verdict, sender)

    def _merge(self, m: Message, ad_hit: bool, violations, symbols, verdict: str | None, sender: str) -> None:
        """Count for message `m` what its late lines show that its line did not (their `symbols` counted
        already): an ad hit makes it an ad of its owner, once; a verdict (`verdict`: its action) for a message
        whose line was a refusal with no verdict counts it under that action instead."""
        if m.p is not None and verdict is not None:
            # (a 5656 command not recorded, asked again: the late line is its verdict)
            self._count("sms", "refuse", m.p, "", None, -1)
            self._count("sms", verdict, m.p, sender, m.owner)
            m.action, m.p = ACTIONS[ACTIONS.index(verdict)], None
        if symbols:
            m.symbols = shared(m.symbols | symbols)
        fresh = violations - m.violations
        if ad_hit and not m.is_ad:
            self._ad(m.owner, m.action, violations)     # its late part made it an ad: one ad, under its owner
            m.is_ad = True
        elif m.is_ad and fresh:
            self._ad(m.owner, m.action, fresh, new=False)
        if fresh:
            m.violations = shared(m.violations | violations)

    def _dnc(self, p: date, sym: str, detail: str) -> None:
        which = "registered" if sym == "DNC_REGISTERED" else "cancelled"
        self.dnc[which] += 1
        m = _DNC_CH.search(detail)
        self.dnc_by_channel[m.group(1) if m else "SV"][which] += 1
        s = self.dnc_series.setdefault(p, [0, 0])
        s[0 if which == "registered" else 1] += 1

    def _report(self, p: date, kind: str) -> None:
        self.reports[kind] += 1
        self.report_series.setdefault(p, [0, 0, 0])[REPORT_KINDS.index(kind)] += 1

    def add_report(self, ts: datetime, rec: dict) -> None:
        """A record of the 5656 report store (used instead of the log's report hits)."""
        d = self._day(ts)
        if d is not None:
            self._report(period_start(d, self.period), rec["kind"])
            # from/to cover the reports' days too (a period with reports and no verdict line)
            self.report_first = ts if self.report_first is None or ts < self.report_first else self.report_first
            self.report_last = ts if self.report_last is None or ts > self.report_last else self.report_last

    def _owner(self, sender: str):
        """(owner, category) of a sender in the registry (QC when any of its rows is), or (None, None)."""
        if self.lists is None or not sender or len(sender) > MAX_KEY:     # no registered ID is that long
            return None, None
        hit = self._owner_cache.get(sender)
        if hit is None:
            n = normalise_number(sender)
            entries = self.lists.sender_entries(n if n is not None else normalise_sender_id(sender))
            # every row, in any order (a brand registered QC and CSKH has one row each): registered QC when any
            # row is, owned by that row's owner (the entry the engine reads first for an ad); it read the first row
            qc = next((e for e in entries if e.category == "QC"), None)
            hit = (qc.owner, "QC") if qc is not None else (entries[0].owner, entries[0].category) if entries \
                else (None, None)
            if len(self._owner_cache) >= 4 * TOP_KEEP:      # bounded memo, not a second copy of traffic
                self._owner_cache.clear()
            self._owner_cache[sender] = hit
        return hit

    # ------------------------------------------------------------ results
    def periods(self) -> list[date]:
        """Every day, week or month from `from` to `to` (summary), zeros where nothing was logged (periods.py)."""
        lo, hi = self._span(self.start, min, self.first, self.report_first), \
            self._span(self.end, max, self.last, self.report_last)
        return fill(set(self.volume) | set(self.dnc_series) | set(self.report_series), lo, hi, self.period)

    def _span(self, bound, pick, *ts) -> date | None:
        """The report's first (pick=min) or last day: the --from/--to bound, else the records' own."""
        t = [x.astimezone(self.tz).date() for x in ts if x is not None]
        return bound if bound else (pick(t) if t else None)

    def summary(self, top: int = 20) -> dict:
        for ts, rec in self.redelivered.untied():     # (the reading is over: copies of no first line are messages)
            self.add_verdict(ts, rec)
        def span(d, pick, *ts):
            day = self._span(d, pick, *ts)
            return day.isoformat() if day else None
        top_s = [{"channel": ch, "sender": s, "drops": n} for (ch, s), n in self.top_senders.top(top)]
        top_o = [{"owner": o, "drops": n} for o, n in self.top_owners.top(top)]
        return {
            "from": span(self.start, min, self.first, self.report_first),
            "to": span(self.end, max, self.last, self.report_last),
            "period": self.period,
            # days, weeks and months, from and to are dates in this zone ([engine] timezone), not UTC
            "timezone": str(getattr(self.tz, "key", None) or self.tz),
            "totals": {ch: dict(row) for ch, row in self.totals.items()},
            "symbols": dict(sorted(self.symbols.c.items(), key=lambda kv: (-kv[1], kv[0]))),
            "dnc": dict(self.dnc),
            "reports": dict(self.reports),
            "dnc_by_channel": {ch: dict(v) for ch, v in self.dnc_by_channel.items()},
            # ads scheduled ahead whose recipient registered DK DNC before their delivery: cancelled at the SMSC, or
            # refused by it (delivered already)
            "scheduled_ads_cancelled": dict(self.scheduled_cancels),
            # changes made with `telfilter ctl lists` on a running serve (the verdict log's list lines; a 5656 DK DNC
            # counts in dnc), by period and list
            "list_changes": dict(sorted(self.list_changes.items())),
            "top_senders_by_drops": top_s,
            "top_owners_by_drops": top_o,
            # False when a bound cut a table: a count listed may then be short (top senders, owners, symbols)
            "top_counts_exact": not (self.top_senders.floor or self.top_owners.floor or self.symbols.floor),
            "advertising_by_owner": dict(sorted(self.ads.items(), key=lambda kv: -kv[1]["volume"])),
            "models": self.models,
            "models_left_out_hits": self.models_left_out,
            "first_record": self.first.isoformat() if self.first else None,
            "last_record": self.last.isoformat() if self.last else None,
            "records": self.records,
            "outside_period": self.outside,
            "late_parts": self.late_parts,
            "late_parts_untied": self.late_untied + self.late.untied_lines(),
            "shortcode_redeliveries": self.redeliveries + self.redelivered.tied,
            "calls_unsent": self.unsent, "calls_unsent_untied": self.unsent_untied_lines(),
        }
