"""The one pipeline. The stage order lives here and only here:

    1. normalise   MessageContext: E.164 ints, folded sender ID, local time (lazy facts)
    2. short code  an MO to the short code (5656) is a command: handled, allowed, nothing else runs
    3. ML          spam probability of SMS text (when a model is loaded)
    4. rules       every rule of the loaded set, lists and counters read-only
    5. decide      forced actions and the score table; the strongest action wins
    6. commit      counters (only for messages let through; `judge(msg, commit=False)`: never; the places a
                   concatenated message judged early was counted in ride on the verdict, `Verdict.counted`,
                   for its late parts, whose count checks skip them: `Message.counted`) and
                   short-code effects (durable first: `judge_mo` hands them to the SMPP proxy's writer
                   thread, `write_commands` then `apply_command`); the advertiser-cap counts committed ride on the verdict
                   (`Verdict.charged`) and `refund(verdict)` gives them back when the SMSC refuses it

Everything a stage reads is swapped atomically by reference (rules, lists, model), so a
reload never exposes a half-built set; counter state lives in `EngineState` and survives
rule reloads.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path

from .config import Settings
from .context import MessageContext
from .lists import Lists, ListStore
from .lists.mlexempt import in_force
from .lists.reports import ReportIndex, ReportStore
from .numbers import format_number, normalise_number, normalise_sender_id, sender_key
from .pipeline_ads import AdCounts
from .reload_counts import count_reload
from .rules import shortcode
from .rules import slots as _slots
from .rules.counters import MemoryCounters
from .rules.history import CallDurations, RecipientHistory
from .rules.loader import RuleSet, RuleSetError, load_rules, rule_files
from .rules.plan import run_steps
from .servicelog import life
from .verdict import Action, Call, Hit, Message, Verdict, decide

_DROP, _TAG = Action.DROP, Action.TAG      # (read from its class, an enum member costs ~900 instructions: verdict.py)

log = logging.getLogger("telfilter")
HITS_KEPT = 4096            # the Hits a rule set keeps for reuse (Pipeline.judge)


@dataclass(slots=True)
class Command:
    """The durable effect of one 5656 command (`Pipeline.judge_mo`): a DNC change (op, E.164 number,
    channel) or a spam report record (with the number it counts against, or None), and when.
    `journal_at`: where the DNC journal ended once its change was written (set by `write_commands`). `mo`: the
    digest of the MO it came in (smpp_proxy/mo_redelivery.py), written in its DNC journal line (a report's
    record carries it as "mo_digest")."""
    dnc: tuple | None = None
    report: dict | None = None
    reported: int | None = None
    ts: float = 0.0
    journal_at: tuple | None = None
    mo: int | None = None


class NotRecorded(Exception):
    """A 5656 command (DNC registration, spam report) could not be written durably (disk full or failing):
    nothing of it is in force, and the element answers with a temporary error so the SMSC delivers it again."""


@dataclass
class EngineState:
    """Everything judging remembers between messages; one writer (the pipeline's commit step).

    Each part is bounded and flat (uint32 rows in `array`s, see rules/slots.py): its size
    follows the keys active within their windows, never the traffic seen, and the cyclic
    GC has a handful of objects to walk however large it grows. `memory_bytes()` per part."""
    counters: object = field(default_factory=MemoryCounters)
    history: RecipientHistory = field(default_factory=RecipientHistory)
    reports: ReportIndex = field(default_factory=ReportIndex)
    calls: CallDurations = field(default_factory=CallDurations)
    shared: object = None       # a shared store (engine/state) that confirms counter commits

    def memory_bytes(self) -> dict:
        return {"counters": self.counters.memory_bytes(), "history": self.history.memory_bytes(),
                "calls": self.calls.memory_bytes()}


class Pipeline(AdCounts):
    def __init__(self, settings: Settings, rules: RuleSet, lists: Lists | None = None,
                 store: ListStore | None = None, state: EngineState | None = None, model=None,
                 reports: ReportStore | None = None, persist: bool = True):
        self.settings = settings
        self.tz = settings.tz
        self.shortcode = normalise_number(settings.shortcode)
        self.rules = rules
        self.rules_generation = 1       # +1 at each rule set swapped in (ctl stats and /metrics both show it)
        self.rules_changes: dict = {}   # what the last swap changed (RuleSet.changes_from): ctl reload rules says it
        self.rules_reload_lock = None   # serve's reloads run one at a time under it (serve.reload_rules)
        self.rules_reload_queued = None  # the reload waiting for the one under way: later requests join it
        self.rules_stamp = None         # rules_stamp() of the files the last read began with (RuleWatcher's test)
        self.lists_stamp = None         # the list files' signatures app.build's read began with (serve_watch's start)
        self._refused = None            # (stamp, errors) of the last refused read: a repeat is not said again
        self.lists = lists if lists is not None else Lists()
        self.store = store
        self.reports = reports
        self.persist = persist
        self.state = state or EngineState()
        self.model = model
        self.rule_errors: list = []
        self.say_rule_warnings = True           # reload_rules logs the new set's warnings (serve: one worker of a pool)
        self._at_rules = None                   # the rules _at_delivery's list was made from
        self._at_counters: list = []
        self._at_ns: set = set()
        self._dnc_rules_of = self._dnc_rules_list = None     # (dnc_barred: the rules it was read from, and it)
        self.watcher_errors = 0                 # unexpected errors of serve's file watcher (serve_watch.py, /metrics)

    # ------------------------------------------------------------ judging
    def judge(self, msg: Message | Call, commit: bool = True) -> Verdict:
        """The verdict on `msg`; its counters and history committed when it is let through, unless
        `commit` is false: then nothing is remembered (the verdict of a part of a message decided as a
        whole, e.g. one destination of an SMPP submit_multi, judged again with commit once the whole is
        known to go through). 5656 commands (MO to the short code) take effect either way."""
        ctx = MessageContext(msg, self.lists, self.tz, self.shortcode)
        # an SMS to the short code is a subscriber's command: MO, or a record that does not say
        # (an ESME's MT to 5656 is not: it could cancel someone else's DNC registration)
        if not ctx.is_call and msg.direction in ("mo", None) and shortcode.addressed_to(
                ctx.recipient_raw, self.settings.shortcode, self.shortcode, ctx.recipient_num):
            return self._shortcode(ctx)
        model = ctx.model = self.model
        hits: list[Hit] = []
        rules = self.rules
        state = self.state
        plan = rules.plans[ctx.scope]                   # RuleSet.evaluate, one call less
        f = _slots._fast                                # (plan.run_steps's choice, inline: a frame less)
        rhits, pending, _ = run_steps(plan, plan.steps, ctx, state) if f is None else \
            f.run_steps(plan, plan.steps, ctx, state)
        if rhits:
            # a Hit is immutable and most repeat (one rule, the same evidence): each is built once per
            # rule set (a frozen dataclass costs ~1 µs to build, a look-up ~0.1)
            known = rules.hits
            for rule, ev in rhits:
                h = known.get((rule.symbol, ev))
                if h is None:
                    if len(known) >= HITS_KEPT:         # bounded; cleared whole (O(1) amortised)
                        known.clear()
                    h = known[rule.symbol, ev] = Hit(rule.symbol, rule.score, ev, rule.source, rule.action,
                                                     rule.smpp_status, rule.sip_code)
                hits.append(h)
        verdict = decide(hits, rules.tag_threshold, rules.drop_threshold)
        # The classifier, once the rules have not dropped the message: its hit (forcing tag or drop, a score >= 0)
        # could not change a drop, and a text a rule drops (a campaign's, an ad to a DNC number) costs no scoring
        # (~18 µs; rules that read the score, ml_score_at_least, have it scored when they ask). Registered
        # brandnames are judged by the rules; a text of a few words carries too little evidence for the classifier
        # to block it on its own (rules may still read the score); the word count splits no further than it needs to.
        if verdict.action is not _DROP and model is not None and ctx.scope != "call" and ctx.text \
                and not (self.settings.ml_skip_registered and ctx.valid_entry is not None) \
                and len(ctx.text.split(None, self.settings.ml_min_words - 1)) >= self.settings.ml_min_words:
            p = ctx.ml_score
            tag_t = self.settings.ml_tag_threshold if self.settings.ml_tag_threshold is not None else model.tag_threshold
            drop_t = self.settings.ml_drop_threshold if self.settings.ml_drop_threshold is not None else model.drop_threshold
            if p >= tag_t or p >= drop_t:       # (a model swapped in under one [ml] threshold may invert them)
                why = f"spam probability {p:.4f} (tag {tag_t:.4f}, drop {drop_t:.4f})"
                # a sender the care desk exempted (lists/mlexempt.py): looked up only once the classifier would hit
                ex = ctx.lists.ml_exempt.get(ctx.sender_num)
                if in_force(ex, ctx.local_date):
                    hits.append(Hit("ML_EXEMPT", 0.0, f"would {'drop' if p >= drop_t else 'tag'}: {why}; sender "
                                    f"exempt until {ex.valid_to}{': ' + ex.note if ex.note else ''}", "list:mlexempt"))
                else:
                    hits.insert(0, Hit("ML_SPAM", self.settings.ml_score_weight * p, why, f"model:{model.version}",
                                       _DROP if p >= drop_t else _TAG))
                verdict = decide(hits, rules.tag_threshold, rules.drop_threshold)
        if verdict.action is not _DROP and commit:
            charged = None
            held = ctx.counted          # a concatenated message judged before its parts all came: its places kept
            for st in pending:
                st.commit(ctx, state)
                if st.refundable:
                    charged = (charged or ()) + (st.charge(ctx),)
                if held is not None:
                    held = held.union(st.places(ctx))
            if ctx.is_call and msg.duration is not None:      # a call record that says how it ended
                state.calls.add(ctx.sender_key, ctx.ts + msg.duration, float(msg.duration))
            if charged or held:
                verdict = Verdict(verdict.action, verdict.score, verdict.hits, charged or (), held)
        return verdict

    def call_ended(self, caller: str, time, duration: float) -> None:
        """A completed call (BYE seen, or a call record with its duration): feeds the
        call-duration criteria (`short_call_share`). `time`: a datetime, or POSIX seconds (a float: the SIP
        screen's wall clock, read without a datetime made)."""
        self.state.calls.add(sender_key(caller), time if type(time) is float else time.timestamp(), float(duration))

    def judge_mo(self, msg: Message) -> tuple[Verdict, "Command | None"]:
        """`judge(msg)` for an MO message whose 5656 command (if it is one) is to be written off the
        event loop: (verdict, the command's effect still to be made durable and put in force, or None).
        Nothing of the command is written or in force yet: the caller passes it to `write_commands`
        (any thread; several in one fsync) and, once written, to `apply_command` (the loop) before it
        confirms anything (engine/smpp_proxy/mo.py)."""
        ctx = MessageContext(msg, self.lists, self.tz, self.shortcode)
        if not ctx.is_call and msg.direction in ("mo", None) and shortcode.addressed_to(
                ctx.recipient_raw, self.settings.shortcode, self.shortcode, ctx.recipient_num):
            return self._command(ctx)
        return self.judge(msg), None

    def _shortcode(self, ctx: MessageContext) -> Verdict:
        # journalled (fsynced) first and only then in force: a change the subscriber is told about
        # is never lost, and one that could not be written is not in force either
        v, cmd = self._command(ctx)
        if cmd is not None:
            err = self.write_commands((cmd,))[0]
            if err is not None:
                raise NotRecorded(f"5656 command not recorded ({err}); the sender should retry") from err
            v = self.apply_command(cmd, v)
        return v

    def _command(self, ctx: MessageContext) -> tuple[Verdict, "Command | None"]:
        """A 5656 message's verdict and its effect (None: nothing to record, e.g. a syntax error)."""
        text = ctx.text
        cmd = shortcode.parse(getattr(text, "shown", text), ctx.sender_num, self._registered_name)
        if cmd.op is None and getattr(text, "meant", None) is not None:
            # a text with two readings (smpp_proxy.codec.text.TwoReadings: both judged, a line apart) is one
            # command in either, never both joined ('DK DNC' under data_coding 0x0E was 'DK DNC\nDK DNC', a
            # syntax error: the registration was never recorded): the one the handset shows, else the other
            other = shortcode.parse(text.meant, ctx.sender_num, self._registered_name)
            if other.op is not None:
                cmd = other
        src = f"shortcode:{self.settings.shortcode}"
        v = Verdict(Action.ALLOW, 0.0, (Hit(cmd.symbol, 0.0, cmd.detail, src, Action.ALLOW),))
        if cmd.op in ("dnc_add", "dnc_remove"):
            return v, Command(dnc=("add" if cmd.op == "dnc_add" else "remove", ctx.sender_num, cmd.channel), ts=ctx.ts)
        if cmd.op == "report":
            rec = {"reporter": format_number(ctx.sender_num) if ctx.sender_num is not None else ctx.sender_raw,
                   "reported": format_number(cmd.reported) if cmd.reported is not None else cmd.reported_name,
                   "content": cmd.content, "time": ctx.time.isoformat(), "kind": cmd.kind, "label": None}
            counted = cmd.reported if cmd.kind in ("S", "V") else None
            return v, Command(report=rec, reported=counted, ts=ctx.ts)
        return v, None

    def _registered_name(self, name: str) -> bool:
        """Whether the brandname registry holds `name` (a 5656 report may name a sender as its source)."""
        return bool(self.lists.sender_entries(normalise_sender_id(name)))

    def write_commands(self, cmds) -> list:
        """Make 5656 commands durable: their DNC changes in one journal write and one fsync, their
        reports in one append and one fsync. Safe from any thread (the files are written under their
        locks; nothing in memory is touched). Returns an error (OSError) or None per command: a
        command whose write failed is not recorded, and nothing of it may be put in force."""
        errs = [None] * len(cmds)
        if not self.persist:
            return errs
        for kind, target, write in (("dnc", self.store, "journal"), ("report", self.reports, "append_many")):
            idx = [i for i, c in enumerate(cmds) if getattr(c, kind) is not None]
            if idx and target is not None:
                try:
                    at = getattr(target, write)([_journalled(cmds[i]) if kind == "dnc" else cmds[i].report
                                                 for i in idx])
                except OSError as e:
                    for i in idx:
                        errs[i] = e
                    continue
                if kind == "dnc":
                    for i in idx:
                        cmds[i].journal_at = at
        return errs

    def apply_command(self, cmd: "Command", v: Verdict | None = None) -> Verdict | None:
        """Put a 5656 command written by `write_commands` in force (the event loop's thread): the DNC
        change in the lists (bitmap add/discard, atomic for the loop), the report in the report index,
        and either published to the other nodes when replication is on. Returns `v` (its verdict from
        `judge_mo`) as it turned out: a HUY DNC says what it removed (shortcode.cancelled), read from the
        lists here, in the order the commands are put in force, not when it was judged (a DK DNC of the
        same number may be waiting for the same fsync)."""
        if cmd.dnc is not None:
            op, number, channel = cmd.dnc
            mark, at = self.lists.journal_mark, cmd.journal_at
            # unless the lists have read the journal past its line already (serve's catch-up, or a reload, ran
            # between the write and now; a reload after a compaction rewrote the journal: its generation then is one
            # the lists have read whole): applied again here it would undo a later line (an operator's change).
            # What it removed is then unknown (it was applied at its place in the journal): `v` says what it asked
            if not (mark and at and (mark[0] == at[0] and mark[1] >= at[1] or at[0] in self.lists.journal_folded)):
                if op == "add":
                    self.lists.add_dnc(number, channel)
                else:
                    on = "".join(c for c in channel if self.lists.in_dnc(number, c))
                    if on != channel and v is not None:
                        sym, detail = shortcode.cancelled(number, channel, on)
                        v = Verdict(v.action, v.score, (replace(v.hits[0], symbol=sym, detail=detail),))
                    self.lists.remove_dnc(number, channel)
            # the journal line of a HUY DNC that removed nothing is written all the same (it is on disk before
            # anyone can know): replayed in its place it removes nothing either
            if self.persist and self.store is not None:
                self.store.announce((cmd.dnc,))
        if cmd.report is not None:
            if self.persist and self.reports is not None:
                self.reports.announce((cmd.report,))
            if cmd.reported is not None:
                self.state.reports.add(cmd.reported, cmd.report["reporter"], cmd.ts)
        return v

    # ------------------------------------------------------------ hot swaps
    def reload_rules(self, directory: Path | None = None) -> list:
        """Build and validate a new rule set beside the old one; swap only on success."""
        d = self.rules_dir(directory)
        stamp = self.rules_stamp = rules_stamp(d)
        return self.install_rules(d, read_rules(d), stamp)

    def rules_dir(self, directory: Path | None = None) -> Path:
        return Path(directory) if directory else self.rules.directory

    def install_rules(self, d: Path, new, stamp=None) -> list:
        """Swap in `new`, a RuleSet that read_rules(d) gave, or log why not (a RuleSetError: the old set stays).
        `stamp`: rules_stamp(d) before the read; a read of the same files refused with the same errors as the last
        one (the watcher's read of an edit, then the operator's SIGHUP) says so in one line, not every error again."""
        count_reload(self, "rules", not isinstance(new, RuleSetError))
        if isinstance(new, RuleSetError):
            self.rule_errors = new.errors
            refused = (stamp, [str(e) for e in new.errors])
            if stamp is not None and refused == self._refused:
                log.warning("rules reload refused again, old rules stay in force: the rule files are unchanged "
                            "since the last refused reload (its %d error(s) said then)", len(new.errors))
            else:
                for err in new.errors:
                    log.error("rules reload refused, old rules stay in force: %s", err)
            self._refused = refused
            return new.errors
        self._refused = None
        self.rules_changes = new.changes_from(self.rules)
        self.rules = new
        self.rules_generation += 1
        self.rule_errors = []
        life.info("rules reloaded from %s: %d rules; %s", d, len(new.rules), said_changes(self.rules_changes))
        if self.say_rule_warnings:
            for w in [*new.warnings, *new.notes]:
                log.warning("rules: %s", w)
        return []

    def swap_model(self, model) -> None:
        self.model = model


def _journalled(cmd: Command) -> tuple:
    """A 5656 DNC command's journal change: (op, number, channel), with its MO's digest and time when it has one
    (smpp_proxy/mo_redelivery.py: a copy the SMSC delivers again after a crash is known by them)."""
    if cmd.mo is None:
        return cmd.dnc
    return (*cmd.dnc, {"mo_digest": f"{cmd.mo:016x}", "at": round(cmd.ts, 3)})


def said_changes(changes: dict) -> str:
    """RuleSet.changes_from's dict as a log line's words: `added X, Y; tag threshold 3 -> 5`."""
    said = [f"{k} {', '.join(v)}" for k, v in changes.items() if k != "thresholds"]
    said += [f"{k} threshold {a:g} -> {b:g}" for k, (a, b) in changes.get("thresholds", {}).items()]
    return "; ".join(said) or "no rule changed from those in force"


def read_rules(d: Path):
    """The rule set of `d` for a reload, or the RuleSetError saying why not. Touches nothing of a running
    pipeline, so serve runs it in a worker thread (seconds for thousands of rules) and installs it on its loop."""
    try:
        return load_rules(d, full_lint=False)      # (no seconds-long lint, rules/lint.py)
    except RuleSetError as e:
        return e


def rules_stamp(d: Path):
    """The rule files of `d` as (name, mtime, size) each, or None when they cannot be listed."""
    try:
        return tuple((p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in rule_files(d))
    except OSError:
        return None


class RuleWatcher:
    """Polls rule-file mtimes; `poll()` reloads when anything changed (called by serve's loop). A change is one
    since the files the last read saw, whoever read them: after a SIGHUP's read of an edit, the watcher read the
    same files again (and said their errors twice).

    A change is read once it has settled: the files look the same at two looks in a row (one tick, 1 s in serve).
    A file written in place (cp, scp, a shell redirect, a generator: truncated, then written) or a directory being
    filled file by file was read mid-write: an empty or cut-short file loads (a warning, or a valid set with
    fewer rules), and for a second the advertising rules were out of force. SIGHUP and `ctl reload` read at once."""

    def __init__(self, pipeline: Pipeline):
        self.pipeline = pipeline
        # from the files the last read began with (serve's, at its start: an edit while serve started, its SIGHUP
        # ignored then, was never read), else as they are now
        if pipeline.rules_stamp is None:
            pipeline.rules_stamp = rules_stamp(pipeline.rules.directory)
        self.seen = pipeline.rules_stamp    # the files at the last look

    def changed(self) -> bool:
        """Whether the files changed since the last read and not since the last look (then the caller reloads)."""
        s, seen = rules_stamp(self.pipeline.rules.directory), self.seen
        self.seen = s
        if s == self.pipeline.rules_stamp or s != seen:    # nothing new, or still changing: look again next tick
            return False
        self.pipeline.rules_stamp = s
        return True

    def poll(self) -> bool:
        if not self.changed():
            return False
        self.pipeline.reload_rules()
        return True
