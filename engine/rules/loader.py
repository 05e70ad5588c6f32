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
long (composites.py), and regexes that can backtrack catastrophically (redos.py).

This module reads the files and the set-wide tables ([actions], [fixtures]) and returns the
RuleSet; rule.py builds and checks each [[rule]], composites.py checks the expr references
across the set, lint.py then warns of what loads but can never take effect.
"""
from __future__ import annotations

import math
import tomllib
from pathlib import Path

from ..config import toml_error_at
from .composites import check_composites, link_refs
from .plan import UNKNOWN, compile_plans, run_steps
from .rule import SCOPES, Rule, build_rule, did_you_mean
from .source import MAX_NESTING, Locator, RuleError, read_rule_text

TOP_KEYS = ("rule", "actions", "fixtures")
FIXTURE_KEYS = ("dnc", "senders", "blacklist", "consent")


class RuleSetError(Exception):
    def __init__(self, errors):
        self.errors = errors
        super().__init__("\n".join(map(str, errors)))


class RuleSet:
    """A loaded, validated rule set and its per-scope plans (see plan.py)."""

    def __init__(self, rules, tag_threshold, drop_threshold, fixtures, directory, warnings=(), disabled=None):
        self.rules: list[Rule] = rules
        self.warnings: list = list(warnings)     # lint.RuleWarning: loads, but can never take effect
        self.disabled: dict = disabled or {}      # symbol -> source of each rule with enabled = false (left out)
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

    @property
    def notes(self) -> list:
        """`path:line:col: note: ...` for each regex left on Python's re (not linear-time), with why (linear.py)."""
        from .linear import backtracking_notes
        return backtracking_notes(self.rules)

    def changes_from(self, old: "RuleSet") -> dict:
        """What this set changes from `old`, the set in force, by symbol: `added`, `removed`, `changed` (scope,
        score, action, answer or conditions; not the line it sits at, its description or its examples, which no
        verdict reads), `enabled`, `disabled`, and `thresholds` {key: [old, new]}; only the keys with something.
        A reload says it: the rule count alone read the same after an edit and after a save in the wrong place."""
        def definition(r):
            return (r.applies_to, r.score, r.action, r.smpp_status, r.sip_code, r.conds)
        was, now = old.by_symbol, self.by_symbol
        out = {"added": [s for s in now if s not in was and s not in old.disabled],
               "removed": [s for s in was if s not in now and s not in self.disabled],
               "changed": [s for s in now if s in was and definition(now[s]) != definition(was[s])],
               "enabled": [s for s in now if s in old.disabled],
               "disabled": [s for s in was if s in self.disabled],
               "thresholds": {k: [a, b] for k, a, b in (("tag", old.tag_threshold, self.tag_threshold),
                                                        ("drop", old.drop_threshold, self.drop_threshold)) if a != b}}
        return {k: v for k, v in out.items() if v}

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
    directory when it is below it (`config/rules/ads.toml`), else absolute. Run from the root (serve under
    systemd), absolute: `etc/telfilter/rules/ads.toml` would name nothing from anywhere else."""
    import os
    # a link nothing can be read through (one that loops, or whose target is gone) by its own name: resolve() raised
    # on a loop (a traceback) and named a dangling link's missing target
    path = Path(path).resolve() if Path(path).exists() else Path(path).absolute()
    cwd = Path(os.getcwd()).resolve()
    if cwd == Path(cwd.anchor):
        return str(path)
    try:
        return str(path.relative_to(cwd))
    except ValueError:
        return str(path)


def rule_files(directory) -> list:
    """The rule files of `directory`, sorted: every `*.toml` but hidden ones (`.#20-ads.toml`, the lock link Emacs
    makes beside a file being edited and that points nowhere; an editor's temporary copy)."""
    return sorted(p for p in Path(directory).glob("*.toml") if not p.name.startswith("."))


def load_rules(directory, base: Path | None = None, full_lint: bool = True) -> RuleSet:
    """Load every rule file in `directory` (rule_files). Raises RuleSetError with all errors."""
    directory = Path(directory)
    errors: list[RuleError] = []
    if not directory.is_dir():
        why = "is a file: name the directory holding the *.toml rule files" if directory.exists() \
            else "rules directory does not exist"
        raise RuleSetError([RuleError(str(directory), 1, 1, why)])
    files = rule_files(directory)
    if not files:
        raise RuleSetError([RuleError(str(directory), 1, 1, "no *.toml rule files")])
    rules: list[Rule] = []
    first_seen: dict = {}
    disabled: dict = {}                # symbol -> source of the rules with enabled = false
    broken: set = set()                # symbols of rules with errors: an expr naming one is not told it is unknown
    thresholds = {"tag": 5.0, "drop": 10.0}
    threshold_locs: dict = {}
    fixtures: dict = {k: [] for k in FIXTURE_KEYS}
    pending_refs = []   # (rule, symbol, path, line, col)
    empty: list = []    # files that hold nothing (emptied by mistake, a truncating `>` for `>>`): warned of
    for f in files:
        disp = rel_source(f, base)
        text = read_rule_text(f, disp, errors)
        if text is None:
            continue
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            ln, col, msg = toml_error_at(e, text)
            errors.append(RuleError(disp, ln, col, f"TOML syntax: {msg}"))
            continue
        except RecursionError:          # _read_text's scan stops the usual cases; this is the backstop
            errors.append(RuleError(disp, 1, 1, f"TOML nested more than {MAX_NESTING} levels deep"))
            continue
        if not doc:
            empty.append(disp)
        loc = Locator(text)
        for k in doc:
            ln, col = loc.at(None, "@", k) if (None, ("@", k)) in loc.pos else loc.at(-1, k)
            if k not in TOP_KEYS:
                errors.append(RuleError(disp, ln, col, f"unknown top-level key {k!r}{did_you_mean(k, TOP_KEYS)}"))
            elif k != "rule" and not isinstance(doc[k], dict):     # `actions = 15.0`: it stopped with a traceback
                errors.append(RuleError(disp, ln, col, f"`{k}` must be a table: [{k}]"))
        if isinstance(doc.get("actions"), dict):
            a = doc["actions"]
            for k, v in a.items():
                ln, col = loc.at(None, "@", "actions", k, value=True)
                if k not in ("tag", "drop"):
                    errors.append(RuleError(disp, ln, col, f"unknown key {k!r} in [actions]{did_you_mean(k, ['tag', 'drop'])}"))
                elif not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
                    # TOML's nan/inf: a nan threshold is never reached (nothing tagged), an inf one neither
                    errors.append(RuleError(disp, ln, col, f"[actions] {k} must be a finite number, got {v!r}"))
                else:
                    thresholds[k] = float(v)
                    threshold_locs[k] = (disp, ln, col)
        if isinstance(doc.get("fixtures"), dict):
            for k, v in doc["fixtures"].items():
                ln, col = loc.at(None, "@", "fixtures", k)
                if k not in FIXTURE_KEYS:
                    errors.append(RuleError(disp, ln, col, f"unknown fixture list {k!r}{did_you_mean(k, FIXTURE_KEYS)}"))
                elif not isinstance(v, list) or not all(isinstance(x, str) for x in v):
                    errors.append(RuleError(disp, ln, col, f"fixtures.{k} must be a list of CSV rows"))
                else:
                    fixtures[k].extend((x, f"{disp}:{ln}") for x in v)
        raw_rules = doc.get("rule", [])
        if not isinstance(raw_rules, list):
            errors.append(RuleError(disp, *loc.at(-1, "rule"), "`rule` must be an array of tables: [[rule]]"))
            continue
        for i, rd in enumerate(raw_rules):
            r = build_rule(rd, i, loc, disp, errors, pending_refs)
            # a rule with a mistake is checked for a duplicate symbol too: every error at once
            sym = r.symbol if r is not None else rd.get("symbol") if isinstance(rd, dict) else None
            if isinstance(sym, str) and sym in first_seen:
                ln, col = loc.at(i, "symbol", value=True)
                # a shipped rule set `enabled = false` and written again in a local file is a duplicate too: said so,
                # as "first defined at" alone reads as a rule in force
                off = ", disabled there (enabled = false): one rule a symbol, enabled or not" if sym in disabled else ""
                errors.append(RuleError(disp, ln, col, f"duplicate symbol {sym} (first defined at {first_seen[sym]}"
                                                       f"{off}): give this rule another symbol, or edit that one"))
                continue
            if r is None:
                if isinstance(sym, str):
                    broken.add(sym)
                    first_seen[sym] = "{}:{}".format(disp, loc.at(i)[0])
                continue
            first_seen[r.symbol] = r.source
            if rd.get("enabled", True) is False:
                disabled[r.symbol] = r.source      # checked like the others, then left out of the set
                continue
            rules.append(r)
    by_symbol = {r.symbol: r for r in rules}
    link_refs(pending_refs, by_symbol, disabled, errors, broken)
    # every error at once: the composites built are checked too (an expr naming a rule with errors leaves it out)
    check_composites(rules, by_symbol, errors)
    if thresholds["tag"] > thresholds["drop"]:
        # at the later of the two (the edit that made them cross), naming where the other is set
        k, o = ("tag", "drop") if threshold_locs.get("tag", ("",)) >= threshold_locs.get("drop", ("",)) \
            else ("drop", "tag")
        where = threshold_locs.get(k, (str(directory), 1, 1))
        other = ":".join(map(str, threshold_locs[o])) if o in threshold_locs else "the default"
        errors.append(RuleError(*where, f"[actions] tag threshold {thresholds['tag']:g} is above the drop threshold "
                                        f"{thresholds['drop']:g} ({o} set at {other})"))
    if errors:
        errors.sort(key=lambda e: (e.path, e.line, e.col))
        raise RuleSetError(errors)
    from .lint import RuleWarning, lint
    try:
        warnings = lint(rules, by_symbol, thresholds, threshold_locs, directory, full_lint)
    except Exception as e:          # a warning is never an error: a bug of the linter must not refuse a set
        warnings = [RuleWarning(str(directory), 1, 1, f"rule warnings not computed: {e.__class__.__name__}: {e}")]
    warnings = [RuleWarning(f, 1, 1, "the file holds no [[rule]], [actions] or [fixtures]: it takes no effect")
                for f in empty] + warnings
    if not any(not r.helper for r in rules):
        warnings.append(RuleWarning(str(directory), 1, 1, "no scoring rule: no message is judged by the rules"))
    return RuleSet(rules, thresholds["tag"], thresholds["drop"], fixtures, directory, warnings, disabled)
