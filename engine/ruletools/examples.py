"""Run every rule's `examples` (SpamAssassin-style regression pairs).

Each example runs in a fresh engine whose rule set has only the symbol under test enabled
(plus the helpers it refers to), against the `[fixtures]` lists; `prior` messages are
replayed first, through the same pipeline, to build counter and report state.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass

from ..lists import Lists, add_entry
from ..lists.csvio import HEADERS, parse_row
from ..records import RecordError, example_record


@dataclass
class ExampleFailure:
    where: str
    symbol: str
    message: str

    def __str__(self):
        return f"{self.where}: {self.symbol}: {self.message}"


def fixture_lists(ruleset) -> tuple[Lists, list]:
    L, errs = Lists(), []
    for kind, rows in ruleset.fixtures.items():
        want = HEADERS[kind]
        for row, where in rows:
            try:
                cells = next(csv.reader([row]), [])
                if len(cells) != len(want):     # as `lists import` says it (parse_row indexes the cells: a traceback)
                    raise ValueError(f"expected {len(want)} columns ({','.join(want)}), got {len(cells)}")
                add_entry(L, kind, parse_row(kind, cells))
            except ValueError as e:
                errs.append(ExampleFailure(where, "fixtures", f"bad {kind} row {row!r}: {e}"))
    return L, errs


def run_examples(ruleset, settings) -> tuple[int, list]:
    from ..pipeline import Pipeline
    base, failures = fixture_lists(ruleset)
    n = 0
    for rule in ruleset.rules:
        if not rule.examples:
            continue
        sub = ruleset.restricted(rule.symbol)
        for kind, exs in rule.examples.items():
            for ex, where in exs:
                n += 1
                L, _ = fixture_lists(ruleset)
                p = Pipeline(settings, sub, lists=L, persist=False)
                try:
                    for pr in ex.get("prior", []):
                        p.judge(example_record(pr))
                    v = p.judge(example_record(ex))
                except (RecordError, TypeError, AttributeError) as e:
                    failures.append(ExampleFailure(where, rule.symbol, f"bad example: {e}"))
                    continue
                if rule.helper:
                    from ..context import MessageContext
                    ctx = MessageContext(example_record(ex), p.lists, p.tz, p.shortcode)
                    hit = rule.symbol in sub.evaluate_all(ctx, p.state)[0]
                else:
                    hit = rule.symbol in v.symbols
                if kind == "hit" and not hit:
                    failures.append(ExampleFailure(where, rule.symbol, f"example must hit but missed (verdict {v.symbols})"))
                elif kind == "miss" and hit:
                    failures.append(ExampleFailure(where, rule.symbol, "example must miss but hit"))
    return n, failures
