"""The embedded store's start-up (EmbeddedStore's role when it opens a data dir; embedded.py has the theory of
operation): the newest usable snapshot, then the journal segments after it, then the updates a killed process left
in its crash spool (journalspool.py), written to the journal before that spool goes."""
from __future__ import annotations

import logging
from pathlib import Path

from .. import crashspool
from ..rules.counters import MemoryCounters
from ..rules.history import CallDurations, RecipientHistory
from .journal import CorruptFile, NewerFormat, frame, read_frames, read_snapshot
from .journalled import apply_record, load_state

log = logging.getLogger("telfilter")

_SEG = "journal."


class StateError(Exception):
    pass


class Startup:
    """Mixed into EmbeddedStore: uses its `dir`, `warnings`, `seg`, `spool` and `_write`."""

    def _segments(self) -> list[int]:
        return sorted(int(p.name[len(_SEG):]) for p in self.dir.glob(_SEG + "*") if p.name[len(_SEG):].isdigit())

    def _seg_path(self, n: int) -> Path:
        return self.dir / f"{_SEG}{n:08d}"

    def _load(self):
        for p in self.dir.glob("snapshot.tmp*"):    # left by a stopped process or its writer
            p.unlink(missing_ok=True)
        snap, first_seg = None, 0
        self._snap_next = None     # next_segment of `snapshot` (None: unknown, keep every segment)
        for name in ("snapshot", "snapshot.prev"):
            p = self.dir / name
            if not p.exists():
                continue
            try:
                d = read_snapshot(p)
            except NewerFormat as e:
                # a rollback: serve stops here rather than start from the journal alone and let its next snapshots
                # replace this one (README, Operating it: Upgrading)
                raise StateError(f"{e}: start the version that wrote it, or move {self.dir} aside to start with "
                                 "empty counters") from None
            except (CorruptFile, ValueError, KeyError, TypeError) as e:
                self._warn(f"state snapshot {p} ignored: {e}")
                continue
            try:
                snap, first_seg = load_state(d["state"]), int(d["next_segment"])
                self._snap_next = first_seg if name == "snapshot" else None
                if name != "snapshot":
                    self._warn(f"{self.dir / 'snapshot'} unusable; started from {p}")
                break
            except (CorruptFile, ValueError, KeyError, TypeError) as e:
                self._warn(f"state snapshot {p} ignored: {e}")
        if snap is None and any((self.dir / name).exists() for name in ("snapshot", "snapshot.prev")):
            # both damaged: the counters start from the journal segments still on disk alone; the caps, call
            # durations and recipient histories before them are gone (an advertiser may get more than its cap
            # today). Said as an error: an operator may restore a copy of the state directory instead
            self.warnings.append(f"{self.dir}: no usable state snapshot (both damaged): counters, caps and histories "
                                 "start from the journal alone; restore a copy of the state directory to keep them")
            log.error("%s", self.warnings[-1])
        mem_c, mem_h, mem_k = snap if snap is not None else (MemoryCounters(), RecipientHistory(), CallDurations())
        segs = [n for n in self._segments() if n >= first_seg]
        if snap is not None and segs and segs[0] != first_seg:
            self._warn(f"{self._seg_path(first_seg)} missing: counter updates after the snapshot may be lost")
        n = 0
        for s in segs:
            recs, warn = read_frames(self._seg_path(s))
            if warn:
                self._warn(warn)
            n += self._replay(mem_c, mem_h, mem_k, recs, self._seg_path(s))
        self.replayed = n
        log.info("state: %s, %d journal records replayed from %d segment(s)",
                 "snapshot loaded" if snap is not None else "no snapshot", n, len(segs))
        return mem_c, mem_h, mem_k, first_seg

    def _replay(self, mem_c, mem_h, mem_k, recs: list, where) -> int:
        n = 0
        for r in recs:
            try:
                apply_record(mem_c, mem_h, mem_k, r)
                n += 1
            except (ValueError, TypeError, IndexError) as e:
                self._warn(f"{where}: journal record {r!r:.80} skipped: {e}")
        return n

    def _recover_spools(self, mem_c, mem_h, mem_k) -> None:
        """The records a process killed before writing them left in its crash spool: replayed after the journal,
        written to the new segment (fsynced), and only then are those spools deleted."""
        recs, taken = self.spool.recover()
        if recs:
            n = self._replay(mem_c, mem_h, mem_k, recs, "state journal crash spool")
            try:
                self._write(self.seg, frame(recs))
            except OSError as e:        # kept: the next start reads them again (they are in no segment)
                log.error("state: %d counter updates of a crashed process replayed but not written to the journal "
                          "(%s): its crash spool is kept", n, e)
                return
            self.replayed += n
            log.warning("state: %d counter updates a process that stopped without writing them (a crash, kill -9) "
                        "left in its crash spool, replayed", n)
        crashspool.discard(taken)

    def _warn(self, msg: str) -> None:
        self.warnings.append(msg)
        log.warning("%s", msg)
