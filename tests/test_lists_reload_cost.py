"""What a lists reload in a running serve costs the event loop after it is over (small lists here; the figures at
10M DNC, 200k registry rows and 1M blacklist entries are in the README's Known limits)."""
from __future__ import annotations

import asyncio
import gc

import pytest

from engine.app import build
from engine.lists import ListStore
from engine.serve import reload_lists


@pytest.fixture(autouse=True)
def _unfrozen():
    yield
    gc.unfreeze()           # (what a reload froze goes back to the collector: the test process runs on)


def _pipe(tmp_path):
    d = tmp_path / "d"
    store = ListStore(d)
    rows = "".join(f"BR{i},Owner {i},QC,,,\n" for i in range(50))
    store.import_csv("senders", ("sender,owner,category,valid_from,valid_to,accounts\n" + rows).encode())
    return build(None, d, with_model=False, seed=False)


def test_reloaded_lists_are_kept_out_of_the_collectors_generations(tmp_path):
    """serve freezes what it loaded at start (gc.freeze) so full collections do not walk it; lists loaded by a
    reload were left in the generations, and every full collection from then on walked them (200k registry rows:
    ~125 ms a collection, on the loop, for the rest of the process's life). A reload now freezes them too."""
    pipe = _pipe(tmp_path)
    assert asyncio.run(reload_lists(pipe)) is None
    entry = next(iter(pipe.lists.senders.values()))[0]
    tracked = {id(o) for o in gc.get_objects()}          # the three generations, not the frozen objects
    assert id(entry) not in tracked
    assert id(pipe.lists.senders) not in tracked


def test_a_reload_leaves_the_collector_as_it_found_it(tmp_path):
    """The load runs with automatic collection off (a full one mid-load held the GIL 170-310 ms); on again after it,
    also when the load fails."""
    pipe = _pipe(tmp_path)
    assert gc.isenabled()
    assert asyncio.run(reload_lists(pipe)) is None
    assert gc.isenabled()
    (pipe.store.dir / "lists" / "senders.snap").write_bytes(b"garbage")
    (pipe.store.dir / "lists" / "senders.snap.prev").unlink(missing_ok=True)
    assert asyncio.run(reload_lists(pipe)) is not None       # refused: the old lists stay
    assert gc.isenabled()

