"""One `[[rule]]` table -> one `Rule`, with every check a single rule can have on its own.

The syntax of a rule file is in loader.py's docstring. `build_rule` checks one table's keys and
values (symbol, applies_to, score/action, smpp_status, sip_code, [rule.when] through the
CONDITIONS vocabulary, the fields of its examples) and reports each mistake as
`path:line:col: message`; what a rule's `expr` names is only collected here, and checked
across the whole set by composites.py once every file is read.
"""
from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass, field

from ..verdict import Action
from .conditions import CONDITIONS, Stateful, sms_only
from .expr import ExprError, parse_tree
from .source import RuleError
from .textconds import PatternError

SCOPES = ("sms-mt", "sms-mo", "call")
RULE_KEYS = ("symbol", "description", "applies_to", "score", "action", "smpp_status", "sip_code",
             "when", "examples", "enabled")
# the fields of an example message (engine/records.py, the `check --jsonl` format), and `prior` messages before it
EXAMPLE_FIELDS = {"sms": {"id", "kind", "sender", "recipient", "text", "account", "direction", "time", "submitted"},
                  "call": {"id", "kind", "caller", "callee", "time", "ingress", "duration"}}
MAX_SCORE = 1e6
SYMBOL_RE = re.compile(r"^_{0,2}[A-Z][A-Z0-9_]*$")
# the symbols the engine's own hits carry (the classifier, the 5656 commands, pipeline.py and the state store): the
# regulator's report counts them as what they are (a rule named DNC_REGISTERED was counted as DNC registrations)
ENGINE_SYMBOLS = ("ML_SPAM", "ML_EXEMPT", "DNC_REGISTERED", "DNC_CANCELLED", "DNC_NOT_REGISTERED", "SPAM_REPORTED",
                  "AD_COPY_RECEIVED", "SHORTCODE_SYNTAX_ERROR", "STATE_UNAVAILABLE", "PDU_DROPPED")
SMPP_STATUS = {
    "ESME_ROK": 0x00, "ESME_RSYSERR": 0x08, "ESME_RINVSRCADR": 0x0A, "ESME_RINVDSTADR": 0x0B,
    "ESME_RSUBMITFAIL": 0x45, "ESME_RTHROTTLED": 0x58, "ESME_RX_T_APPN": 0x64, "ESME_RX_P_APPN": 0x65,
    "ESME_RX_R_APPN": 0x66, "ESME_RINVSERTYP": 0x15, "ESME_RMSGQFUL": 0x14, "ESME_RUNKNOWNERR": 0xFF,
}
REFUSALS = [k for k, v in SMPP_STATUS.items() if v]     # what a misspelt status is told it may mean: ESME_ROK
# answers success for a message the rule drops (`ESME_RNOPE` was told "did you mean 'ESME_ROK'?")


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


def did_you_mean(word, choices):
    m = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f"; did you mean {m[0]!r}?" if m else ""


def _toml_type(v) -> str:
    """What a TOML value is, as an error names it ("a string", "an array")."""
    for t, name in ((bool, "a boolean"), (str, "a string"), (int, "an integer"), (float, "a float"),
                    (list, "an array"), (dict, "a table")):
        if isinstance(v, t):
            return name
    return "a date-time"


def build_rule(rd, i, loc, disp, errors, pending_refs) -> Rule | None:
    """The Rule of table `rd`, the i-th [[rule]] of file `disp`, or None with its errors appended to `errors`;
    each symbol its expr names goes to `pending_refs` as (rule, symbol, path, line, col) for composites.link_refs."""
    n_err = len(errors)

    def err(msg, *path, value=False):
        ln, col = loc.at(i, *path, value=value)
        errors.append(RuleError(disp, ln, col, msg))

    if not isinstance(rd, dict):
        err("a rule must be a table")
        return None
    for k in rd:
        if k in CONDITIONS or k == "expr":      # (written above its [rule.when]: the rule was also "conditionless")
            err(f"{k!r} is a condition: write it under [rule.when]", k)
        elif k not in RULE_KEYS:
            err(f"unknown key {k!r}{did_you_mean(k, RULE_KEYS)}", k)
    sym = rd.get("symbol")
    if "symbol" not in rd:
        err("missing key 'symbol' (UPPER_SNAKE; helpers start with __)")
    elif not isinstance(sym, str) or not SYMBOL_RE.match(sym):
        err(f"symbol must be UPPER_SNAKE (helpers start with __), got {sym!r}", "symbol", value=True)
    elif sym in ENGINE_SYMBOLS:
        err(f"symbol {sym} is one the engine's own hits carry ({', '.join(ENGINE_SYMBOLS)}): the report and metrics "
            f"would count this rule's hits as those; name it otherwise", "symbol", value=True)
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
            err(f"applies_to: unknown scope {s!r}{did_you_mean(str(s), SCOPES)}", "applies_to", value=True)
    score = rd.get("score", 0.0)
    if not isinstance(score, (int, float)) or isinstance(score, bool) or not math.isfinite(score):
        # TOML's nan/inf: a total of NaN or Infinity is no verdict, and not JSON for the verdict log
        err(f"score must be a finite number, got {score!r}", "score", value=True)
        score = None
    elif abs(score) > MAX_SCORE:
        # so is the total of two rules of 1e308: bounded, no set of rules adds up to an overflow
        err(f"score {score:g} is beyond {MAX_SCORE:.0f} either way: the hits' scores add up (two of 1e308 made "
            f"Infinity)", "score", value=True)
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
        elif isinstance(st, int) and not isinstance(st, bool):
            err(f"smpp_status {st} is no SMPP command_status: an integer 0 to 0xFFFFFFFF, or a name", "smpp_status",
                value=True)
        else:
            err(f"smpp_status must be an integer or one of {', '.join(SMPP_STATUS)}"
                + (did_you_mean(str(st).upper(), REFUSALS) if isinstance(st, str) else ""), "smpp_status", value=True)
    sip = rd.get("sip_code")
    if sip is not None and (not isinstance(sip, int) or isinstance(sip, bool) or not 400 <= sip <= 699):
        err(f"sip_code must be a SIP final error code (e.g. 603 or 608), got {sip!r}", "sip_code", value=True)
        sip = None
    ln0, _ = loc.at(i)
    # a rule without a symbol is named by its place in the file, counted from 1 as a reader counts
    rule = Rule(sym or f"<rule {i + 1}>", desc if isinstance(desc, str) else "", frozenset(scopes), float(score or 0.0),
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
        if k in RULE_KEYS and k not in ("when", "examples"):   # (a `score = 20` added at the end of [rule.when])
            err(f"{k!r} is a rule key, not a condition: write it above [rule.when]", "when", k)
            continue
        if k not in CONDITIONS:
            err(f"unknown condition {k!r}{did_you_mean(k, list(CONDITIONS) + ['expr'])}", "when", k)
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
            at = (loc.string_char(i, ("when", k), e.item, e.char, e.length) if isinstance(e, PatternError) else None)
            if at:          # the character a bad regex's error names, not the opening quote of its string
                errors.append(RuleError(disp, *at, f"{e}"))
            else:
                err(f"{e}", "when", k, value=True)
            continue
        if isinstance(p, Stateful):
            rule.stateful.append(p)
        else:
            rule.preds.append((k, p, repr(v)))
    ex = rd.get("examples", {})
    if not isinstance(ex, dict):
        err(f"examples must be a table holding `hit` and/or `miss`, arrays of messages, got {_toml_type(ex)}"
            + (" ([[rule.examples]]: write [[rule.examples.hit]] or [[rule.examples.miss]])"
               if isinstance(ex, list) else ""), "examples", *((0,) if isinstance(ex, list) else ()))
    else:
        for k in set(ex) - {"hit", "miss"}:
            err(f"examples: unknown key {k!r}{did_you_mean(k, ['hit', 'miss'])} (examples are `hit` and `miss`, "
                f"arrays of messages: [[rule.examples.hit]])", "examples", k)
        for kind in ("hit", "miss"):
            lst = ex.get(kind, [])
            if not isinstance(lst, list) or not all(isinstance(x, dict) for x in lst):
                bad = next((x for x in lst if not isinstance(x, dict)), None) if isinstance(lst, list) else None
                err(f"examples.{kind} must be an array of messages (tables: [[rule.examples.{kind}]] with text = "
                    f"\"...\" and the other fields of a message), got "
                    + (f"an array holding {_toml_type(bad)}" if isinstance(lst, list) else _toml_type(lst)),
                    "examples", kind, value=True)
                continue
            rule.examples[kind] = [(x, "%s:%d" % (disp, loc.at(i, "examples", kind, j)[0])) for j, x in enumerate(lst)]
            for j, x in enumerate(lst):
                # a misspelt field (`tme`, `recipent`) would leave the default in its place: the example would
                # test another message than the one written, and pass or fail for that
                prior = x.get("prior", [])
                if not isinstance(prior, list) or not all(isinstance(m, dict) for m in prior):
                    # (the example ran and failed with "'str' object has no attribute 'get'")
                    err(f"examples.{kind}: prior must be an array of messages (tables), got {prior!r}",
                        "examples", kind, j, "prior")
                msgs = [x] + ([m for m in prior if isinstance(m, dict)] if isinstance(prior, list) else [])
                for m in msgs:
                    fields = EXAMPLE_FIELDS.get(m.get("kind", "sms"), EXAMPLE_FIELDS["sms"])
                    for k in m:
                        if k not in fields and not (m is x and k == "prior"):
                            err(f"examples.{kind}: unknown field {k!r}{did_you_mean(k, sorted(fields))}",
                                "examples", kind, j, *((k,) if m is x else ()))
    for st in rule.stateful:
        # an advertiser's cap of a drop rule: its count is given back when the SMSC refuses the message
        # (Pipeline.refund). Such a row never takes more than its limit within the window (a message over
        # it is dropped, uncounted), so a refused message's stamp is still in it to be taken back.
        if getattr(st, "refundable", False) and rule.action is not Action.DROP:
            st.refundable = False
    return rule if len(errors) == n_err else None
