"""The 5656 report store: `reports.jsonl` in the data dir, one JSON object per report.

Fields: reporter, reported, content, time (ISO-8601), kind (S = SMS spam, V = call spam,
FW = an advertiser's copy of its advertisement), label (null until an analyst labels it
"spam" or "ham"; `telfilter ml train --data reports.jsonl` reads labelled ones).
`ReportIndex` answers "how many distinct reporters named this number in the last D days".
"""
from __future__ import annotations

import json
import os
from collections import defaultdict
from datetime import datetime
from pathlib import Path


class ReportIndex:
    def __init__(self):
        self.by_reported: dict[int, list] = defaultdict(list)   # number -> [(ts, reporter)]

    def add(self, reported: int, reporter, ts: float) -> None:
        self.by_reported[reported].append((ts, reporter))

    def distinct_reporters(self, reported: int | None, now: float, window: float) -> int:
        if reported is None:
            return 0
        ents = self.by_reported.get(reported)
        if not ents:
            return 0
        horizon = now - window
        return len({r for t, r in ents if horizon < t <= now})


class ReportStore:
    def __init__(self, data_dir: Path):
        self.path = Path(data_dir) / "reports.jsonl"

    def append(self, rec: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = (json.dumps(rec, ensure_ascii=False) + "\n").encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)

    def load_index(self) -> ReportIndex:
        from ..numbers import normalise_number
        idx = ReportIndex()
        if not self.path.exists():
            return idx
        with open(self.path, encoding="utf-8", errors="replace") as f:
            for line in f:
                try:
                    r = json.loads(line)
                    if r.get("kind") not in ("S", "V"):
                        continue
                    n = normalise_number(str(r["reported"]))
                    ts = datetime.fromisoformat(r["time"].replace("Z", "+00:00")).timestamp()
                except (ValueError, KeyError, TypeError, AttributeError):
                    continue
                if n is not None:
                    idx.add(n, str(r.get("reporter")), ts)
        return idx
