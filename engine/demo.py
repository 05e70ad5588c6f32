"""`telfilter demo`: the main job on embedded defaults.

Runs the shipped sample traffic (config/sample/messages.jsonl) through the pipeline with the
sample lists in a temporary data dir, and prints what happened to each message and why.
"""
from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from .app import build, seed_default_data
from .config import load_settings
from .records import parse_record


def cmd_demo(args) -> int:
    settings = load_settings(getattr(args, "config", None))
    tmp = Path(tempfile.mkdtemp(prefix="telfilter-demo-"))
    try:
        seed_default_data(tmp, settings)
        pipe = build(getattr(args, "config", None), tmp)
        rows = []
        for line in (settings.config_dir / "sample" / "messages.jsonl").read_text(encoding="utf-8").splitlines():
            rec = parse_record(json.loads(line))
            t0 = time.perf_counter()
            v = pipe.judge(rec)
            us = (time.perf_counter() - t0) * 1e6
            what = rec.text if rec.kind == "sms" else f"call {rec.caller} -> {rec.callee}"
            rows.append((rec.id, str(v.action), ",".join(v.symbols) or "-", f"{us:.0f}", what[:48]))
        w = [max(len(r[i]) for r in rows + [("id", "action", "symbols", "µs", "message")]) for i in range(5)]
        hdr = ("id", "action", "symbols", "µs", "message")
        print("  ".join(h.ljust(w[i]) for i, h in enumerate(hdr)))
        for r in rows:
            print("  ".join(c.ljust(w[i]) for i, c in enumerate(r)))
        return 0
    finally:
        if getattr(args, "keep_data", False):
            print(f"data dir kept: {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
