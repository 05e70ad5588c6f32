"""Rule files: load, validate everything, report every error as `path:line:col: message`.

Syntax of a rule file (TOML; one file per concern under config/rules/):

    [[rule]]
    symbol = "AD_TO_DNC"                  # UPPER_SNAKE; __HELPER symbols never score
    description = "Advertising SMS to a DNC number without consent"
    applies_to = ["sms-mt"]               # any of sms-mt, sms-mo, call; left out: every scope its
                                          # conditions and the symbols its expr names can see
    action = "drop"                       # forced action (allow|tag|drop), and/or
    score = 0.0                           # a score added to the total
    smpp_status = "ESME_RSUBMITFAIL"      # answer on drop (name or integer)
    sip_code = 603                        # 603 Decline or 608 Rejected
    [rule.when]                           # all conditions must hold (see CONDITIONS)
    expr = "__IS_AD"
    recipient_dnc = "S"
    consent = false
    [[rule.examples.hit]]                 # messages that must hit ...
    text = "QC: giam gia 50%"
    [[rule.examples.miss]]                # ... and must miss
    text = "xin chao"

A file may also hold `[actions]` (the score table: `tag = 5.0`, `drop = 10.0`) and
`[fixtures]` (lists the examples run against, rows in the CSV formats: `dnc = ["0912000001,S"]`).

Like Kamailio's dialplan reload, a new set is fully built and validated before anyone
uses it; any error leaves the caller's current set in force.

A rule file is untrusted input to a process that must not stall: the loader refuses, as
`path:line:col: message`, anything that could hang or crash it or the judge later — a file
that is not UTF-8 text or is over 4 MiB, arrays/inline tables nested over 32 deep, a
composite nested over 32 deep or naming over 256 symbols, chains of composites over 32
long, and regexes that can backtrack catastrophically (redos.py).
"""
from __future__ import annotations

import difflib
import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from ..verdict import Action
from .conditions import CONDITIONS, Stateful, sms_only
from .expr import ExprError, parse_tree
from .plan import UNKNOWN, compile_plans, run_steps
from .source import MAX_NESTING, Locator, RuleError, read_rule_text

SCOPES = ("sms-mt", "sms-mo", "call")
RULE_KEYS = ("symbol", "description", "applies_to", "score", "action", "smpp_status", "sip_code",
             "when", "examples", "enabled")
TOP_KEYS = ("rule", "actions", "fixtures")
# the fields of an example message (engine/records.py, the `check --jsonl` format), and `prior` messages before it
EXAMPLE_FIELDS = {"sms": {"id", "kind", "sender", "recipient", "text", "account", "direction", "time", "submitted"},
                  "call": {"id", "kind", "caller", "callee", "time", "ingress", "duration"}}
FIXTURE_KEYS = ("dnc", "senders", "blacklist", "consent")
SYMBOL_RE = re.compile(r"^_{0,2}[A-Z][A-Z0-9_]*$")
SMPP_STATUS = {
    "ESME_ROK": 0x00, "ESME_RSYSERR": 0x08, "ESME_RINVSRCADR": 0x0A, "ESME_RINVDSTADR": 0x0B,
    "ESME_RSUBMITFAIL": 0x45, "ESME_RTHROTTLED": 0x58, "ESME_RX_T_APPN": 0x64, "ESME_RX_P_APPN": 0x65,
    "ESME_RX_R_APPN": 0x66, "ESME_RINVSERTYP": 0x15, "ESME_RMSGQFUL": 0x14, "ESME_RUNKNOWNERR": 0xFF,
}


class RuleSetError(Exception):
    def __init__(self, errors):
        self.errors = errors
        super().__init__("\n".join(map(str, errors)))


@dataclass
class Rule:
    symbol: str
    description: str
    applies_to: frozenset
    score: float
    action: Action | None
    smpp_status: int | None
    sip_code: int | None
    source: str
    preds: list = field(default_factory=list)        # [(name, pred, canonical value)]
    stateful: list = field(default_factory=list)     # [Stateful]
    tree: tuple | None = None                        # the `expr` composite, parsed (expr.parse_tree)
    deps: list = field(default_factory=list)         # symbols the composite names, in its order
    examples: dict = field(default_factory=dict)     # {"hit": [(msgdict, loc)], "miss": [...]}
    scopes_given: bool = True                        # applies_to written (else the scopes its conditions allow)
    refs: list = field(default_factory=list)         # [(symbol, path, line, col)]: where `expr` names each
    conds: dict = field(default_factory=dict)        # the [rule.when] table as written (lint.py reads it)
    locs: dict = field(default_factory=dict)         # key path -> (path, line, col) where it is written (lint.py)

    @property
    def helper(self) -> bool:
        return self.symbol.startswith("__")


# ---------------------------------------------------------------- loading

def _did_you_mean(word, choices):
    m = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f"; did you mean {m[0]!r}?" if m else ""


class RuleSet:
    """A loaded, validated rule set and its per-scope plans (see plan.py)."""

    def __init__(self, rules, tag_threshold, drop_threshold, fixtures, directory, warnings=()):
        self.rules: list[Rule] = rules
        self.warnings: list = list(warnings)     # lint.RuleWarning: loads, but can never take effect
        self.by_symbol = {r.symbol: r for r in rules}
        self.tag_threshold = tag_threshold
        self.drop_threshold = drop_threshold
        self.fixtures = fixtures
        self.directory = directory
        # scoring rules are judged, and their hits listed, in file order; composites look their
        # operands up on demand, so no dependency order is needed
        self.order = list(rules)
        # per scope, the rules to run (scoring ones, and helpers only when stateful: they must
        # run to count) prepared as a plan: see plan.py
        self.plans = compile_plans(rules, self.order, SCOPES)
        self.hits: dict = {}        # (symbol, evidence) -> its Hit, built once (Pipeline.judge)

    def restricted(self, symbol: str) -> "RuleSet":
        """The set with only `symbol` (and the helpers/symbols it refers to) enabled."""
        need, todo = set(), [symbol]
        while todo:
            s = todo.pop()
            if s in need:
                continue
            need.add(s)
            todo.extend(self.by_symbol[s].deps)
        return RuleSet([r for r in self.rules if r.symbol in need], self.tag_threshold,
                       self.drop_threshold, self.fixtures, self.directory)

    def evaluate(self, ctx, state):
        """All rules for the context's scope. Returns (hits as (rule, evidence), pending Stateful)."""
        plan = self.plans[ctx.scope]
        hits, pending, _ = run_steps(plan, plan.steps, ctx, state)
        return hits, pending

    def evaluate_all(self, ctx, state):
        """Every symbol that holds, helpers included (for examples and `rules explain`)."""
        plan = self.plans[ctx.scope]
        _, _, m = run_steps(plan, plan.all_steps, ctx, state)
        memo = {}
        for r in self.order:
            e = m[plan.index[r.symbol]]
            memo[r.symbol] = None if e is UNKNOWN else e
        return {s for s, e in memo.items() if e is not None}, memo


def rel_source(path: Path, base: Path | None = None) -> str:
    """How a rule file is named in errors and hit sources: relative to the working
    directory when it is below it (`config/rules/ads.toml`), else absolute."""
    import os
    path = Path(path).resolve()
    try:
        return str(path.relative_to(Path(os.getcwd()).resolve()))
    except ValueError:
        return str(path)


def load_rules(directory, base: Path | None = None, full_lint: bool = True) -> RuleSet:
    """Load every `*.toml` in `directory` (sorted). Raises RuleSetError with all errors."""
    directory = Path(directory)
    errors: list[RuleError] = []
    if not directory.is_dir():
        why = "is a file: name the directory holding the *.toml rule files" if directory.exists() \
            else "rules directory does not exist"
        raise RuleSetError([RuleError(str(directory), 1, 1, why)])
    files = sorted(directory.glob("*.toml"))
    if not files:
        raise RuleSetError([RuleError(str(directory), 1, 1, "no *.toml rule files")])
    rules: list[Rule] = []
    first_seen: dict = {}
    disabled: dict = {}                # symbol -> source of the rules with enabled = false
    thresholds = {"tag": 5.0, "drop": 10.0}
    threshold_locs: dict = {}
    fixtures: dict = {k: [] for k in FIXTURE_KEYS}
    pending_refs = []   # (rule, symbol, path, line, col)
    for f in files:
        disp = rel_source(f, base)
        text = read_rule_text(f, disp, errors)
        if text is None:
            continue
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            m = re.search(r"\(at line (\d+), column (\d+)\)", str(e))
            ln, col = (int(m.group(1)), int(m.group(2))) if m else (1, 1)
            errors.append(RuleError(disp, ln, col, f"TOML syntax: {str(e).split(' (at line')[0]}"))
            continue
        except RecursionError:          # _read_text's scan stops the usual cases; this is the backstop
            errors.append(RuleError(disp, 1, 1, f"TOML nested more than {MAX_NESTING} levels deep"))
            continue
        loc = Locator(text)
        for k in doc:
            if k not in TOP_KEYS:
                ln, col = loc.at(None, "@", k) if (None, ("@", k)) in loc.pos else loc.at(-1, k)
                errors.append(RuleError(disp, ln, col, f"unknown top-level key {k!r}{_did_you_mean(k, TOP_KEYS)}"))
        if "actions" in doc:
            a = doc["actions"]
            for k, v in a.items():
                ln, col = loc.at(None, "@", "actions", k, value=True)
                if k not in ("tag", "drop"):
                    errors.append(RuleError(disp, ln, col, f"unknown key {k!r} in [actions]{_did_you_mean(k, ['tag', 'drop'])}"))
                elif not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
                    # TOML's nan/inf: a nan threshold is never reached (nothing tagged), an inf one neither
                    errors.append(RuleError(disp, ln, col, f"[actions] {k} must be a finite number, got {v!r}"))
                else:
                    thresholds[k] = float(v)
                    threshold_locs[k] = (disp, ln, col)
        if "fixtures" in doc:
            for k, v in doc["fixtures"].items():
                ln, col = loc.at(None, "@", "fixtures", k)
                if k not in FIXTURE_KEYS:
                    errors.append(RuleError(disp, ln, col, f"unknown fixture list {k!r}{_did_you_mean(k, FIXTURE_KEYS)}"))
                elif not isinstance(v, list) or not all(isinstance(x, str) for x in v):
                    errors.append(RuleError(disp, ln, col, f"fixtures.{k} must be a list of CSV rows"))
                else:
                    fixtures[k].extend((x, f"{disp}:{ln}") for x in v)
        raw_rules = doc.get("rule", [])
        if not isinstance(raw_rules, list):
            errors.append(RuleError(disp, 1, 1, "`rule` must be an array of tables: [[rule]]"))
            continue
        for i, rd in enumerate(raw_rules):
            r = _build_rule(rd, i, loc, disp, errors, pending_refs)
            if r is None:
                continue
            if r.symbol in first_seen:
                ln, col = loc.at(i, "symbol", value=True)
                errors.append(RuleError(disp, ln, col, f"duplicate symbol {r.symbol} (first defined at {first_seen[r.symbol]})"))
                continue
            first_seen[r.symbol] = r.source
            if rd.get("enabled", True) is False:
                disabled[r.symbol] = r.source      # checked like the others, then left out of the set
                continue
            rules.append(r)
    by_symbol = {r.symbol: r for r in rules}
    for r, sym, disp, ln, col in pending_refs:
        if r.symbol in disabled:
            continue
        if sym in disabled:
            errors.append(RuleError(disp, ln, col, f"{r.symbol} refers to {sym}, which is disabled (enabled = false "
                                                   f"at {disabled[sym]}): disable {r.symbol} too, or edit its expr"))
        elif sym not in by_symbol:
            errors.append(RuleError(disp, ln, col, f"unknown symbol {sym!r} in expr{_did_you_mean(sym, list(by_symbol))}"))
        elif sym == r.symbol:
            errors.append(RuleError(disp, ln, col, f"rule {sym} refers to itself"))
        else:
            r.deps.append(sym)
            r.refs.append((sym, disp, ln, col))
    if not errors:
        cyc = _find_cycle(rules, by_symbol)
        if cyc:
            r = by_symbol[cyc[0]]
            p, ln = r.source.rsplit(":", 1)
            errors.append(RuleError(p, int(ln), 1, f"composite cycle: {' -> '.join(cyc)}"))
        else:
            chain = _deepest_chain(rules, by_symbol)
            if len(chain) > MAX_CHAIN:
                r = by_symbol[chain[0]]
                p, ln = r.source.rsplit(":", 1)
                errors.append(RuleError(p, int(ln), 1, f"composites nested more than {MAX_CHAIN} deep: "
                                                         f"{' -> '.join(chain[:4])} -> ... -> {chain[-1]}"))
            _settle_scopes(rules, by_symbol, errors)
    if thresholds["tag"] > thresholds["drop"]:
        errors.append(RuleError(str(directory), 1, 1, "[actions] tag threshold is above the drop threshold"))
    if errors:
        errors.sort(key=lambda e: (e.path, e.line, e.col))
        raise RuleSetError(errors)
    from .lint import RuleWarning, lint
    try:
        warnings = lint(rules, by_symbol, thresholds, threshold_locs, directory, full_lint)
    except Exception as e:          # a warning is never an error: a bug of the linter must not refuse a set
        warnings = [RuleWarning(str(directory), 1, 1, f"rule warnings not computed: {e.__class__.__name__}: {e}")]
    return RuleSet(rules, thresholds["tag"], thresholds["drop"], fixtures, directory, warnings)


MAX_CHAIN = 32         # composite of composite of ...: evaluation recurses once per level


def _settle_scopes(rules, by_symbol, errors):
    """A symbol is false in a scope it does not apply to, so a composite naming it there is never true
    (or, under `not`, always): refuse that when the composite's applies_to is written; a composite with
    no applies_to applies where every symbol it names does."""
    for r in _dep_order(rules, by_symbol):
        if not r.deps:
            continue
        if r.scopes_given:
            for sym, disp, ln, col in r.refs:
                d = by_symbol[sym]
                missing = [s for s in SCOPES if s in r.applies_to and s not in d.applies_to]
                if missing:
                    errors.append(RuleError(disp, ln, col, f"{r.symbol} applies to {', '.join(missing)} but {sym} "
                                                           f"(at {d.source}) does not: there {sym} is always false; "
                                                           f"make the two applies_to agree"))
        else:
            narrowed = frozenset(s for s in r.applies_to if _can_hold(r.tree, {d for d in r.deps
                                                                           if s not in by_symbol[d].applies_to}))
            if not narrowed:
                p, ln = r.source.rsplit(":", 1)
                errors.append(RuleError(p, int(ln), 1, f"{r.symbol}: the symbols its expr names leave it no scope "
                                                       f"({', '.join(sorted(set(r.deps)))}): it never holds"))
            r.applies_to = narrowed


def _can_hold(tree, absent) -> bool:
    """Whether a composite still holds on its own symbols in a scope where the `absent` ones never do: not when it is
    false there whatever the rest are ('A and B', B absent), nor when an absent symbol is under `not` (there it would
    hold for every message alike: `not __SMS_HELPER` on a call). 'A or B' with B absent holds where A does (it did
    before scopes were narrowed; an intersection of the symbols' scopes took it out of every scope)."""
    if not absent or tree is None:
        return True
    return not _negates(tree, absent, False) and _reduced(tree, absent) is not False


def _negates(tree, absent, neg) -> bool:
    op = tree[0]
    if op == "sym":
        return neg and tree[1] in absent
    if op == "not":
        return _negates(tree[1], absent, not neg)
    return any(_negates(t, absent, neg) for t in tree[1])


def _reduced(tree, absent):
    """The composite with the `absent` symbols false: False / True when that settles it, else None."""
    op = tree[0]
    if op == "sym":
        return False if tree[1] in absent else None
    if op == "not":
        v = _reduced(tree[1], absent)
        return None if v is None else not v
    vals = [_reduced(t, absent) for t in tree[1]]
    stop = op == "or"                   # True settles an `or`, False an `and`
    if stop in vals:
        return stop
    return not stop if all(v is (not stop) for v in vals) else None


def _deepest_chain(rules, by_symbol):
    """The longest chain of composites referring to composites (no cycles by now)."""
    best: dict = {}
    for r in _dep_order(rules, by_symbol):
        deps = [best[d] for d in r.deps]
        best[r.symbol] = [r.symbol] + max(deps, key=len) if deps else [r.symbol]
    return max(best.values(), key=len) if best else []


def _dep_order(rules, by_symbol):
    """Rules with every dependency before its dependants (iterative: chains may be long)."""
    out, done = [], set()
    for r0 in rules:
        stack = [(r0, 0)]
        while stack:
            r, k = stack.pop()
            if r.symbol in done:
                continue
            if k < len(r.deps):
                stack.append((r, k + 1))
                d = by_symbol[r.deps[k]]
                if d.symbol not in done:
                    stack.append((d, 0))
                continue
            done.add(r.symbol)
            out.append(r)
    return out


def _find_cycle(rules, by_symbol):
    """A cycle of composites as [A, B, ..., A], or None (iterative depth-first search)."""
    color: dict = {}
    for r0 in rules:
        if r0.symbol in color:
            continue
        path = [r0.symbol]
        color[r0.symbol] = 1
        stack = [iter(r0.deps)]
        while stack:
            d = next(stack[-1], None)
            if d is None:
                stack.pop()
                color[path.pop()] = 2
            elif color.get(d) == 1:
                return path[path.index(d):] + [d]
            elif d not in color:
                color[d] = 1
                path.append(d)
                stack.append(iter(by_symbol[d].deps))
    return None


def _build_rule(rd, i, loc, disp, errors, pending_refs) -> Rule | None:
    n_err = len(errors)

    def err(msg, *path, value=False):
        ln, col = loc.at(i, *path, value=value)
        errors.append(RuleError(disp, ln, col, msg))

    if not isinstance(rd, dict):
        err("a rule must be a table")
        return None
    for k in rd:
        if k not in RULE_KEYS:
            err(f"unknown key {k!r}{_did_you_mean(k, RULE_KEYS)}", k)
    sym = rd.get("symbol")
    if "symbol" not in rd:
        err("missing key 'symbol' (UPPER_SNAKE; helpers start with __)")
    elif not isinstance(sym, str) or not SYMBOL_RE.match(sym):
        err(f"symbol must be UPPER_SNAKE (helpers start with __), got {sym!r}", "symbol", value=True)
    if not isinstance(sym, str) or not SYMBOL_RE.match(sym):
        sym = None
    desc = rd.get("description", "")
    if not isinstance(desc, str):
        err("description must be a string", "description", value=True)
    if not isinstance(rd.get("enabled", True), bool):
        err("enabled must be true or false", "enabled", value=True)
    helper = bool(sym and sym.startswith("__"))
    scopes_given = "applies_to" in rd
    scopes = rd.get("applies_to", list(SCOPES))
    if isinstance(scopes, str):
        scopes = [scopes]
    if not isinstance(scopes, list) or not scopes:
        err("applies_to must be a list of sms-mt, sms-mo, call", "applies_to", value=True)
        scopes = []
    for s in scopes:
        if s not in SCOPES:
            err(f"applies_to: unknown scope {s!r}{_did_you_mean(str(s), SCOPES)}", "applies_to", value=True)
    score = rd.get("score", 0.0)
    if not isinstance(score, (int, float)) or isinstance(score, bool) or not math.isfinite(score):
        # TOML's nan/inf: a total of NaN or Infinity is no verdict, and not JSON for the verdict log
        err(f"score must be a finite number, got {score!r}", "score", value=True)
        score = None
    action = None
    if "action" in rd:
        try:
            action = Action.parse(str(rd["action"]))
        except ValueError as e:
            err(str(e), "action", value=True)
    if helper and (action is not None or score):
        err(f"{sym} is a helper (__ prefix): it may not have a score or an action", "symbol")
    if not helper and sym and action is None and "action" not in rd and score == 0:   # (errors are reported)
        err(f"{sym} has neither a score nor an action", "symbol")
    st = rd.get("smpp_status")
    smpp_status = None
    if st is not None:
        if isinstance(st, str) and st.upper() in SMPP_STATUS:
            smpp_status = SMPP_STATUS[st.upper()]
        elif isinstance(st, int) and not isinstance(st, bool) and 0 <= st <= 0xFFFFFFFF:
            smpp_status = st
        else:
            err(f"smpp_status must be an integer or one of {', '.join(SMPP_STATUS)}"
                + (_did_you_mean(str(st).upper(), SMPP_STATUS) if isinstance(st, str) else ""), "smpp_status", value=True)
    sip = rd.get("sip_code")
    if sip is not None and (not isinstance(sip, int) or isinstance(sip, bool) or not 400 <= sip <= 699):
        err(f"sip_code must be a SIP final error code (e.g. 603 or 608), got {sip!r}", "sip_code", value=True)
        sip = None
    ln0, _ = loc.at(i)
    rule = Rule(sym or f"<rule {i}>", desc if isinstance(desc, str) else "", frozenset(scopes), float(score or 0.0),
                action, smpp_status, sip, f"{disp}:{ln0}", scopes_given=scopes_given)
    when = rd.get("when", {})
    if not isinstance(when, dict):
        err("when must be a table: [rule.when]", "when")
        when = {}
    rule.conds = dict(when)
    for k in ("symbol", "action", "smpp_status", "sip_code"):
        if k in rd:
            rule.locs[(k,)] = (disp, *loc.at(i, k, value=k != "symbol"))
    for k in when:
        rule.locs[("when", k)] = (disp, *loc.at(i, "when", k))
    if not when and not helper:
        err(f"{rule.symbol} has no [rule.when] conditions: it would hit every message", "symbol")
    for k, v in when.items():
        if k == "expr":
            if not isinstance(v, str):
                err("expr must be a string", "when", k, value=True)
                continue
            try:
                rule.tree, syms = parse_tree(v)
            except ExprError as e:
                ln, col = loc.at(i, "when", k, value=True)
                errors.append(RuleError(disp, ln, col + 1 + e.offset, f"expr: {e}"))
                continue
            ln, col = loc.at(i, "when", k, value=True)
            for s, off in syms:
                pending_refs.append((rule, s, disp, ln, col + 1 + off))
            continue
        if k not in CONDITIONS:
            err(f"unknown condition {k!r}{_did_you_mean(k, list(CONDITIONS) + ['expr'])}", "when", k)
            continue
        reads = sms_only(k, v)
        if reads and "call" in rule.applies_to:
            if scopes_given:
                err(f"{k} reads {reads}, which a call does not have: on a call it would never hold, or (negated, or "
                    f"as a counter key) hold for every call alike; take \"call\" out of applies_to", "when", k)
                continue
            rule.applies_to = rule.applies_to - {"call"}      # not written: the scopes its conditions can see
        factory = CONDITIONS[k][0]
        try:
            p = factory(v, rule_symbol=rule.symbol)
        except ValueError as e:
            err(f"{e}", "when", k, value=True)
            continue
        if isinstance(p, Stateful):
            rule.stateful.append(p)
        else:
            rule.preds.append((k, p, repr(v)))
    ex = rd.get("examples", {})
    if not isinstance(ex, dict) or set(ex) - {"hit", "miss"}:
        err("examples must be a table with `hit` and/or `miss` arrays of messages", "examples")
    else:
        for kind in ("hit", "miss"):
            lst = ex.get(kind, [])
            if not isinstance(lst, list) or not all(isinstance(x, dict) for x in lst):
                err(f"examples.{kind} must be an array of tables", "examples", kind)
                continue
            rule.examples[kind] = [(x, "%s:%d" % (disp, loc.at(i, "examples", kind, j)[0])) for j, x in enumerate(lst)]
            for j, x in enumerate(lst):
                # a misspelt field (`tme`, `recipent`) would leave the default in its place: the example would
                # test another message than the one written, and pass or fail for that
                prior = x.get("prior", [])
                msgs = [x] + ([m for m in prior if isinstance(m, dict)] if isinstance(prior, list) else [])
                for m in msgs:
                    fields = EXAMPLE_FIELDS.get(m.get("kind", "sms"), EXAMPLE_FIELDS["sms"])
                    for k in m:
                        if k not in fields and not (m is x and k == "prior"):
                            err(f"examples.{kind}: unknown field {k!r}{_did_you_mean(k, sorted(fields))}",
                                "examples", kind, j, *((k,) if m is x else ()))
    for st in rule.stateful:
        # an advertiser's cap of a drop rule: its count is given back when the SMSC refuses the message
        # (Pipeline.refund). Such a row never takes more than its limit within the window (a message over
        # it is dropped, uncounted), so a refused message's stamp is still in it to be taken back.
        if getattr(st, "refundable", False) and rule.action is not Action.DROP:
            st.refundable = False
    return rule if len(errors) == n_err else None
