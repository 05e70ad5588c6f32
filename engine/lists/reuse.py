"""Which lists a reload of a running serve must read again.

Theory of operation. A set of lists in force remembers, per kind, the identity of the snapshot file it was read from
(`Lists.sources`, filled by `ListStore.load` from the very file it read: snapshot.py says what an identity holds). A
reload compares each with the file there now: a kind whose file is the same is kept (its objects go into the new set
as they are, DNC bitmaps with the journal mark they have read to), the others are read again into a new set, and the
whole set is swapped in at once on the loop (engine/serve_reload.py). A kind read from its previous generation
(`.prev`, its file refused) or never read from files has no identity and is read again every time. The DNC's changes
that live in the running process (5656 commands, `ctl lists` DNC edits) are journalled before they are applied to the
bitmaps in force: kept, the bitmaps are those very objects; read again, the journal from the snapshot's mark is
applied in the load and caught up on the loop before the swap.
"""
from __future__ import annotations

from .csvio import KINDS
from .snapshot import snapshot_identity


def changed_kinds(store, in_force, kinds=KINDS) -> list:
    """The kinds of `store` whose files are not those `in_force` (a Lists) was read from, in `kinds` order."""
    out = []
    for kind in kinds:
        p = store.path(kind)
        now = snapshot_identity(p)
        if now is None and p.with_name(p.name + ".prev").exists():
            now = ("previous generation only",)         # (a load falls back to it: never kept)
        if kind not in in_force.sources or in_force.sources[kind] != now:
            out.append(kind)
    return out


def dnc_not_whole(fresh, new, in_force) -> str | None:
    """Why the DNC list a reload (or a start's diff, state/published.py) read is not one to put in force, or None.
    Read from `dnc.snap.prev` (the newest generation refused), it lacks what a CLI import added since: diffed against
    the list in force, those numbers were published as removals to every node and taken out here. None there at all
    (the snapshot and its `.prev` gone) while the list in force was read from one: the whole list would go the same
    way."""
    if fresh.dnc_refused is not None:
        return f"{fresh.dnc_refused}; its previous generation may lack what was imported since"
    if new.sources.get("dnc", 0) is None and in_force.sources.get("dnc", 0) is not None:
        return f"{fresh.path('dnc')} and its previous generation are gone"
    return None
