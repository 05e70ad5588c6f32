"""`telfilter rules test`: replay a corpus under edited rules and a baseline, side by side.

Both runs use the same lists (a private in-memory copy: short-code commands in the corpus
change neither the data dir nor each other) and fresh counter state, so every difference
comes from the rules alone.
"""
from __future__ import annotations

import copy
import json
import sys
from collections import defaultdict
from pathlib import Path

from ..jsonl import NOT_JSON_ID, loads, not_json, numbered, open_jsonl, progress_bar
from ..records import parse_input_record
from ..rules.loader import load_rules


def _run(pipe_factory, records, bar=None):
    p = pipe_factory()
    out = []
    for r in records:
        out.append(p.judge(r))
        if bar is not None:
            bar.update()
    return out


def default_baseline(edited_dir: Path, in_force: Path) -> Path:
    """The baseline when --baseline is not given: the rules in force (CONFIG/rules) when --rules names an edited copy,
    the shipped rules when the edited set is the rules in force (what this config changed from the default). It was
    the shipped rules always, so `--config X --rules X-edited` compared the edit with the shipped pack and every
    local change in X showed as the edit's."""
    from ..config import shipped_config_dir
    if edited_dir.resolve() != in_force.resolve():
        return in_force
    return shipped_config_dir() / "rules"


def what_if(args, settings) -> int:
    from ..app import load_model, resolve_data_dir
    from ..lists import ListStore
    from ..pipeline import Pipeline
    edited_dir = Path(args.rules_dir) if args.rules_dir else settings.rules_dir
    base_dir = Path(args.baseline) if args.baseline else default_baseline(edited_dir, settings.rules_dir)
    edited, base = load_rules(edited_dir), load_rules(base_dir)
    records, bad = [], 0
    # read as `check --jsonl` reads the same file (jsonl.py): a line that is not UTF-8 or not JSON costs that
    # line, not the run (a UnicodeDecodeError traceback before)
    with open_jsonl(args.corpus) as f:          # "-": standard input, as `check --jsonl -`
        for i, line in numbered(f):
            try:
                obj = loads(line)
                if isinstance(obj, dict) and not_json(obj.get("id")):     # echoed in the examples: NaN is no JSON
                    raise ValueError(NOT_JSON_ID)
                records.append(parse_input_record(obj))
            except (ValueError, RecursionError) as e:           # LineError, RecordError and their kin
                print(f"{args.corpus}:{i}: skipped: {'nested too deeply' if isinstance(e, RecursionError) else e}",
                      file=sys.stderr)
                bad += 1
    lists = ListStore(resolve_data_dir(getattr(args, "data_dir", None), settings)).load()
    model = load_model(settings)

    def factory(rs):
        return lambda: Pipeline(settings, rs, lists=copy.deepcopy(lists), model=model, persist=False)
    # the two replays are the long part (~0.1 ms a message each): a bar for a big corpus on a terminal
    bar = progress_bar(args.corpus, "replaying", total=2 * len(records), unit="msg")
    try:
        a, b = _run(factory(base), records, bar), _run(factory(edited), records, bar)
    finally:
        if bar is not None:
            bar.close()
    changed = [(r, x, y) for r, x, y in zip(records, a, b) if (x.action, x.symbols) != (y.action, y.symbols)]
    per = defaultdict(lambda: {"gained": 0, "lost": 0, "examples": []})
    for r, x, y in changed:
        for s in set(y.symbols) - set(x.symbols):
            per[s]["gained"] += 1
        for s in set(x.symbols) - set(y.symbols):
            per[s]["lost"] += 1
        for s in set(x.symbols) ^ set(y.symbols) or {"(action only)"}:
            ex = per[s]["examples"]
            if len(ex) < args.examples:
                ex.append({"id": r.id, "baseline": f"{x.action} {','.join(x.symbols) or '-'}",
                           "edited": f"{y.action} {','.join(y.symbols) or '-'}",
                           "text": (getattr(r, "text", None) or f"call {getattr(r, 'caller', '')}")[:80]})
    flips = defaultdict(int)
    for r, x, y in changed:
        if x.action != y.action:
            flips[f"{x.action}->{y.action}"] += 1
    report = {"corpus": str(args.corpus), "messages": len(records), "skipped_lines": bad,
              "baseline": str(base_dir), "edited": str(edited_dir),
              "changed_verdicts": len(changed), "action_changes": dict(sorted(flips.items())),
              "per_symbol": {k: v for k, v in sorted(per.items())}}
    print(json.dumps(report, indent=2, ensure_ascii=False))
    return 0
