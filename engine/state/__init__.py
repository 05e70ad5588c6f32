"""Where judging state lives between messages and across restarts.

`open_state(url, data_dir)` gives the store `serve` uses (see `telfilter serve --state`):

  (no URL)             embedded.EmbeddedStore: in memory, journalled and snapshotted in
                       `<data dir>/state/`, durable across `kill -9` (see embedded.py for the loss window).
  redis://HOST:PORT/DB redis_store.RedisStore: counters checked and committed atomically in one
                       Redis/Valkey server shared by every process pointing at it (see redis_store.py);
                       `?on_error=open|closed` and `?timeout=S` set its policy when the server is away;
                       redis+sentinel://H1,H2,H3/SERVICE/DB finds the primary through Sentinel (sentinel.py).

A store exposes `counters`, `history` and `calls` with the interfaces of
rules.counters.CounterStore, rules.history.RecipientHistory and CallDurations, which
`install(pipe)` puts into the pipeline's EngineState (the report index stays: it is rebuilt
from reports.jsonl), and the coroutines `run()` and `close()`. A shared store also sets
`EngineState.shared`: callers that can wait (the SMPP submit path) hand it each verdict with
`settle(pipe, verdict, then)` before they act on it.
"""
from __future__ import annotations

from pathlib import Path

from .embedded import EmbeddedStore, StateError  # noqa: F401


def is_shared(url: str | None) -> bool:
    return url not in (None, "", "embedded")


def open_state(url: str | None, data_dir: Path):
    if not is_shared(url):
        return EmbeddedStore(data_dir)
    from .redis_store import RedisStore
    return RedisStore(url)


def install(pipe, store) -> None:
    st = pipe.state
    st.counters, st.history, st.calls = store.counters, store.history, store.calls
    st.shared = store if getattr(store, "shared", False) else None
