"""Where judging state lives between messages and across restarts.

`open_state(url, data_dir)` gives the store `serve` uses (see `telfilter serve --state`):

  (no URL)   embedded.EmbeddedStore: in memory, journalled and snapshotted in
             `<data dir>/state/`, durable across `kill -9` (see embedded.py for the loss window).

A store exposes `counters`, `history` and `calls` with the interfaces of
rules.counters.CounterStore, rules.history.RecipientHistory and CallDurations, which
`install(pipe)` puts into the pipeline's EngineState (the report index stays: it is rebuilt
from reports.jsonl), and the coroutines `run()` (the flush timer) and `close()`.
"""
from __future__ import annotations

from pathlib import Path

from .embedded import EmbeddedStore, StateError  # noqa: F401


def open_state(url: str | None, data_dir: Path):
    if url in (None, "", "embedded"):
        return EmbeddedStore(data_dir)
    # the shared (Redis) store of issue 13 is not built yet: say so rather than run unshared
    raise StateError(f"--state {url!r}: only the embedded store is available (omit --state)")


def install(pipe, store) -> None:
    st = pipe.state
    st.counters, st.history, st.calls = store.counters, store.history, store.calls
