"""What a rule regex costs on Python's re and on RE2 (engine/rules/linear.py), per search.

    python -m benchmarks.regex_engines [--n 20000] [--kb 64]

Typical: each pattern searched on the folded texts of the training data that are 100-160 characters long (an
SMS), µs per search, both engines (the same answers: tests/test_rules_regex_parity.py). Crafted: each pattern on
an ~`--kb` KB UCS-2 message_payload built to make re backtrack (half as many characters as octets), ms of CPU for
one search (re: one run; it is what a peer can make the loop pay per message). Also the one-off cost of writing
each pattern for RE2 in a fresh process (its character classes are computed by re over every code point, ~10 ms
each, cached per process). Prints one JSON object.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

PATTERNS = {
    # the shipped pack's
    "pack __AD_LABEL": r"^\s*(?:\[(?:qc|ad)\]|\(qc\)|qc(?![^\W_]))",
    "pack __DKQC": r"^\s*dkqc\b",
    # operator-style rules
    "qc.*tu choi": r"qc.*tu choi",
    "\\bvay\\b": r"\bvay\b",
    "khuyen\\s*mai": r"khuyen\s*mai",
    "(?:\\d{3}\\.|\\d{2}\\.)+x": r"(?:\d{3}\.|\d{2}\.)+x",
}


def _crafted(name: str, chars: int) -> str:
    unit = {"(?:\\d{3}\\.|\\d{2}\\.)+x": "12.", "\\bvay\\b": "vayx", "khuyen\\s*mai": "khuyen "}.get(name, "qc")
    return (unit * (chars // len(unit) + 1))[:chars]


def _texts(n: int) -> list:
    from engine.textnorm import fold
    data = Path(__file__).resolve().parent.parent / "engine" / "ml" / "data"
    texts = [ln.rsplit("\t", 1)[-1] for f in sorted(data.glob("*.tsv")) for ln in f.read_text().splitlines()[1:]]
    texts = [fold(t) for t in texts if 100 <= len(t) <= 160]
    return (texts * (n // len(texts) + 1))[:n]


def _us_per_search(search, texts) -> float:
    best = float("inf")
    for _ in range(3):
        t = time.process_time()
        for x in texts:
            search(x)
        best = min(best, time.process_time() - t)
    return round(best / len(texts) * 1e6, 3)


def run(n: int, kb: int) -> dict:
    from engine.rules.linear import rule_regex
    texts = _texts(n)
    out = {"texts": len(texts), "crafted_chars": kb * 512, "patterns": {}}
    for name, p in PATTERNS.items():
        rx = re.compile(p, re.IGNORECASE)
        t = time.process_time()
        m = rule_regex(rx)
        write_ms = (time.process_time() - t) * 1e3
        row = {"engine": m.engine, "why": m.why, "write_ms_cold": round(write_ms, 1),
               "typical_re_us": _us_per_search(rx.search, texts), "typical_re2_us": _us_per_search(m.search, texts)}
        crafted = _crafted(name, kb * 512)
        for key, search in (("crafted_re_ms", rx.search), ("crafted_re2_ms", m.search)):
            t = time.process_time()
            search(crafted)
            row[key] = round((time.process_time() - t) * 1e3, 3)
        out["patterns"][name] = row
        print(name, row, file=sys.stderr)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.regex_engines", description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20000, help="typical texts searched per pattern and engine")
    ap.add_argument("--kb", type=int, default=64, help="crafted message_payload size in KB (UCS-2)")
    a = ap.parse_args(argv)
    if a.n < 1 or a.kb < 1:
        ap.error("--n and --kb must be at least 1")
    print(json.dumps(run(a.n, a.kb), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
