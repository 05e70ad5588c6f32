"""`telfilter serve` with its garbage-collector pauses timed: `python -m benchmarks.proxy_runner OUT.json serve …`.

The proxy under test, in its own process, exactly as `python -m engine.cli serve …` runs it, plus a
gc.callbacks timer (benchmarks.longrun.GcTimer: start/stop of every collection, by generation) whose
summary is written to OUT.json when the process exits (after SIGTERM). Nothing else is changed.
"""
from __future__ import annotations

import atexit
import gc
import json
import sys
from pathlib import Path


def main(argv) -> int:
    from .longrun import GcTimer
    out, args = Path(argv[0]), argv[1:]
    timer = GcTimer()
    gc.callbacks.append(timer)
    atexit.register(lambda: out.write_text(json.dumps(timer.summary())))
    from engine.cli import main as cli
    return cli(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
