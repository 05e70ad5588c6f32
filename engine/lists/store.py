"""`ListStore`: a data directory of list snapshots and the DNC journal, and the user
operations on it (import, add, remove, export). The locking protocol is in journal.py."""
from __future__ import annotations

import contextlib
import os
import re
import secrets
from pathlib import Path

from .csvio import KINDS, write_csv
from .journal import (JOURNAL_COMPACT_BYTES, append_line, append_lines, flocked, install_recent, journal_header,
                      keep_folded, keep_rejected, prepare_recent, read_journal, read_journal_gen, replace_with_tail)
from . import changes, edits, importing, mlexempt
from .sections import decode, encode
from .sets import Lists
from .snapshot import (SnapshotError, install_snapshot, prepare_snapshot, read_snapshot_identified,
                       snapshot_identity)


class ListStore:
    """A data directory of list snapshots. `load()` returns a fresh `Lists`; the write
    operations follow the locking protocol in `journal.py`, so they can run beside `serve`."""

    def __init__(self, data_dir: Path, tz=None):
        self.dir = Path(data_dir)
        self.tz = tz                # [engine] timezone: an mlexempt row's days are its local days (None: the host's)
        self.warnings: list[str] = []
        self.dnc_refused: str | None = None     # why the last load read the dnc list from `.prev` (None: it did not)
        self.publish = None         # callable(op, number, channel): replication of journalled changes
        self.audit_by: str | None = None    # "cli uid N": each change is a line of lists/changes.jsonl (changes.py)
        self.audit_error: OSError | None = None     # why the last change's audit line was not written (it stands)
        self._installed = False         # the write under way has installed its snapshot (modify's audit line)

    def today(self):
        """The local day of the engine's time zone: what an mlexempt row is checked and kept against."""
        return mlexempt.today(self.tz)

    def path(self, kind: str) -> Path:
        return self.dir / "lists" / f"{kind}.snap"

    @property
    def delta_path(self) -> Path:
        return self.dir / "lists" / "dnc.delta"

    @property
    def journal_lock(self) -> Path:
        return self.dir / "lists" / "journal.lock"

    @property
    def changes_path(self) -> Path:
        return self.dir / "lists" / changes.FILE_NAME

    @property
    def write_lock(self) -> Path:
        return self.dir / "lists" / "write.lock"

    def snapshot_signature(self) -> tuple:
        """Changes whenever any snapshot is replaced (serve polls it to pick up CLI changes)."""
        sig = []
        for kind in KINDS:
            try:
                st = os.stat(self.path(kind))
                sig.append((st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size))
            except FileNotFoundError:
                sig.append(None)
        return tuple(sig)

    def journal_signature(self) -> tuple | None:
        """Changes whenever the DNC journal is appended to or rewritten (serve polls it to pick up
        lines another process appended: `check --jsonl` replaying 5656 commands on this data dir)."""
        try:
            st = os.stat(self.delta_path)
        except FileNotFoundError:
            return None
        return st.st_ino, st.st_size

    _DNC_MAYBE_MISSING = " (DNC changes folded into the refused generation may be missing: re-import the last DNC file)"

    LOAD_TRIES = 5          # loads read again while a writer keeps replacing the dnc snapshot under them

    def load(self, strict: bool = False, kinds=KINDS) -> Lists:
        """Load every kind (or those of `kinds`: the others stay empty), then the DNC journal when the DNC is among
        them. A bad snapshot falls back to `.prev` (warning) unless strict. `L.sources`: each kind read straight
        from its file, that file's identity (None: no file); a kind read from `.prev` is not there.

        The dnc snapshot is read first and the journal last (under the journal's lock), with no lock between: a
        writer that installed a new dnc snapshot and rewrote the journal meanwhile (it folded the journal's lines
        into that snapshot, under the same lock) left the old snapshot and the new journal's tail, and the lines
        folded in neither (a 5656 registration missing until the next load). The dnc snapshot read is checked
        to be the one there after the journal was read (a writer installs it before it rewrites the journal:
        a journal read after the rewrite sees the new snapshot too), none read still none (a writer's first fold),
        else the whole load is read again (one read from `.prev` is not checked)."""
        for _ in range(self.LOAD_TRIES - 1):
            L = self._load_once(strict, kinds)
            if "dnc" not in kinds or "dnc" not in L.sources \
                    or snapshot_identity(self.path("dnc")) == L.sources["dnc"]:
                return L
        return self._load_once(strict, kinds)       # (a writer at work all along: its last state, as before)

    def _load_once(self, strict: bool, kinds) -> Lists:
        L = Lists()
        self.warnings = []
        mark = nxt = None
        self.dnc_refused = None
        for kind in kinds:
            extra = self._load_kind(kind, L, strict)
            if kind == "dnc" and extra and "journal_gen" in extra:
                mark = (extra["journal_gen"], int(extra.get("journal_offset", 0)))
                nxt = extra.get("journal_next")
        if self.dnc_refused is not None and mark is not None:
            # the previous generation lacks the journal lines the refused one folded in: they were kept in
            # dnc.delta.prev when the journal was rewritten, up to where the refused one folded it. Of the
            # journal this generation began (its `journal_next`), every line came after it; of the one it
            # read up to its mark (it folded nothing), the lines after the mark. Applied before the
            # journal's own lines.
            path = self.delta_path.with_name(self.delta_path.name + ".prev")
            g = read_journal_gen(path)
            folded = read_journal(path) if g is not None and g == nxt else \
                read_journal(path, mark) if g is not None and g == mark[0] else None
            if folded is not None:
                for op, n, ch in folded.ops:
                    (L.add_dnc if op == "add" else L.remove_dnc)(n, ch)
                again = (f" (the {len(folded.ops)} DNC journal lines folded into the refused generation applied "
                         f"again from {self.delta_path.name}.prev)")
                self.warnings = [w.replace(self._DNC_MAYBE_MISSING, again) for w in self.warnings]
        if "dnc" in kinds:
            j = self._read_journal(mark)
            self._apply(L, j)
            if mark is not None and nxt is not None and j.gen == nxt:
                L.journal_folded = (mark[0],)       # its lines: in the snapshot, or in this journal's tail just read
        moved = L.rekey_service_numbers()
        if moved:
            self.warnings.append(f"{self.dir}: {moved} Vietnamese 1800/1900 service number entries stored as +1… by an "
                                 "earlier version are matched as +84… now (kept so in each list's next snapshot, which any change "
                                 "to that list writes: an import, add or remove; until then this is said at each "
                                 "load)")
        odd = L.foreign_landline_forms()
        if odd:
            self.warnings.append(f"{self.dir}: {odd} list entries are foreign numbers of ten digits starting with a "
                                 "Vietnamese area code (+2xx…): a Vietnamese landline written without its 0 "
                                 "(2439998888) was stored so by an earlier version and is read as +84… now; if "
                                 "these are such landlines, import them again")
        return L

    def _read_journal(self, mark):
        if not self.delta_path.exists():
            return read_journal(self.delta_path, mark)
        try:
            with flocked(self.journal_lock):      # no half-written line from a concurrent append
                return read_journal(self.delta_path, mark)
        except PermissionError:
            # a read-only view of someone else's data dir: an append in progress is an
            # unterminated last line, which read_journal leaves unread anyway
            return read_journal(self.delta_path, mark)

    def _load_kind(self, kind: str, L: Lists, strict: bool) -> dict | None:
        p = self.path(kind)
        prev = p.with_name(p.name + ".prev")
        if not p.exists() and not prev.exists():
            L.sources[kind] = None
            return None
        try:
            secs, meta, L.sources[kind] = read_snapshot_identified(p, kind)
            decode(kind, secs, L, p)
            L.created[kind] = meta.get("created")
            return meta.get("extra", {})
        except SnapshotError as e:
            L.sources.pop(kind, None)
            if strict:
                raise
            try:
                secs, meta, _ = read_snapshot_identified(prev, kind)
                decode(kind, secs, L, prev)
            except SnapshotError:
                raise e from None
            L.created[kind], extra = meta.get("created"), meta.get("extra", {})
            msg = f"{e}; using previous good snapshot {prev}"
            if kind == "dnc":
                msg += self._DNC_MAYBE_MISSING
                self.dnc_refused = str(e)
            self.warnings.append(msg)
            return extra

    def _apply(self, L: Lists, j) -> None:
        for op, n, ch in j.ops:
            (L.add_dnc if op == "add" else L.remove_dnc)(n, ch)
        for lineno, _ in j.bad:
            self.warnings.append(f"{self.delta_path}:{lineno}: unreadable DNC journal line "
                                 f"(kept; moved to {self.delta_path.name}.rejected by the next write)")
        L.journal_mark = (j.gen, j.end)
        L.journal_bad = list(L.journal_bad) + j.bad

    def catch_up(self, L: Lists) -> None:
        """Apply journal lines appended since `L` was loaded (serve, after a background reload)."""
        self.warnings = []
        self._apply(L, self._read_journal(L.journal_mark))

    def append_delta(self, op: str, number: int, channel: str) -> None:
        """Journal one DNC change (5656 command, `ctl lists`) durably; folded into the snapshot
        by the next write. With replication on (engine/state/replication.py) the change is then
        published to the other nodes."""
        append_line(self.delta_path, self.journal_lock, op, number, channel)
        self.announce(((op, number, channel),))

    def journal(self, changes) -> tuple | None:
        """Journal DNC changes [(op, number, channel)] durably with one write and one fsync (5656
        commands written together off the event loop: any thread); `announce` them once in force.
        Returns where the journal ends after them, (generation, offset)."""
        return append_lines(self.delta_path, self.journal_lock, changes)

    def announce(self, changes) -> None:
        """Publish journalled changes to the other nodes when replication is on (the event loop)."""
        if self.publish is not None:
            for op, number, channel in changes:
                self.publish(op, number, channel)

    def append_replicated(self, changes) -> None:
        """Journal DNC changes [(op, number, channel)] that came from another node (one fsync)."""
        append_lines(self.delta_path, self.journal_lock, changes)

    def save(self, L: Lists, kinds=KINDS) -> None:
        """Write `L`'s lists of `kinds`. The journal lines `L` has applied (its mark) are
        folded into the dnc snapshot; lines appended since stay in the journal."""
        with flocked(self.write_lock):
            self._save(L, kinds)

    def _save(self, L: Lists, kinds, intent: dict | None = None) -> None:
        """`intent`: the audit record of the change saved, written ahead (changes.write_intent) once any earlier
        writer's has been settled."""
        (self.dir / "lists").mkdir(parents=True, exist_ok=True)
        self._sweep_leftovers()
        pending = self.dir / "lists" / changes.PENDING_NAME
        said = changes.settle_before_write(pending, self.changes_path, intent is not None)
        if said:
            self.warnings.append(said)
        if intent is not None:
            changes.write_intent(pending, intent, self.path(kinds[0]))
        try:
            self._write(L, kinds)
        except BaseException:
            self._sweep_leftovers()         # ours (a full disk): they must not keep it full until the next write
            if intent is not None and not self._installed:
                with contextlib.suppress(OSError):
                    changes.drop_intent(pending)        # (not saved: no record)
            raise

    def _write(self, L: Lists, kinds) -> None:
        mark = L.journal_mark
        gen = secrets.token_hex(8)      # the journal's generation once this snapshot has folded it in
        staged = []
        for kind in kinds:
            extra = {"journal_gen": mark[0], "journal_offset": mark[1], "journal_next": gen} \
                if kind == "dnc" and mark else {}
            staged.append((kind, prepare_snapshot(self.path(kind), kind, encode(kind, L), extra)))
        # the 5656 commands' digests past this fold (journal.py), made before the journal lock (appends wait on it)
        recent = prepare_recent(self.delta_path, mark[1]) if "dnc" in kinds and mark is not None else None
        with flocked(self.journal_lock):
            for kind, tmp in staged:
                install_snapshot(tmp, self.path(kind), kind)
            self._installed = True          # (in force from here: a fold below that fails still changed the list)
            if "dnc" not in kinds or mark is None or read_journal_gen(self.delta_path) != mark[0]:
                if recent is not None:
                    recent.unlink(missing_ok=True)      # (no fold of this journal; on an error: _sweep_leftovers)
                return
            if L.journal_bad:
                rej = keep_rejected(self.delta_path, L.journal_bad)
                for lineno, _ in L.journal_bad:
                    self.warnings.append(f"{self.delta_path}:{lineno}: unreadable DNC journal line moved to {rej}")
                L.journal_bad = []
            keep_folded(self.delta_path, mark[1])     # what the new generation's .prev lacks, for a fall-back
            install_recent(recent, self.delta_path)
            replace_with_tail(self.delta_path, mark[1], gen)
            L.journal_mark = (gen, len(journal_header(gen)))

    # the temporary files a writer makes (snapshot.prepare_snapshot, install_snapshot's link, journal._replace_durably)
    _LEFTOVER = re.compile(rf"(?:{'|'.join(KINDS)})\.snap(?:\.prev)?\.tmp\d+|dnc\.delta(?:\.prev|\.recent)?\.tmp\d+")

    def _sweep_leftovers(self) -> None:
        """Remove the temporary files of a writer killed half-way (kill -9, the OOM killer). Called with the write lock
        held: every writer makes its temporary files under that lock and removes them before letting it go (or on an
        error), so any still there belong to a writer that died holding it. Each crash left a snapshot-sized file
        under a new name (its pid) for good."""
        for p in (self.dir / "lists").iterdir():
            if self._LEFTOVER.fullmatch(p.name):
                p.unlink(missing_ok=True)

    def compact_journal(self, min_bytes: int = JOURNAL_COMPACT_BYTES) -> bool:
        """Fold a journal larger than `min_bytes` into the dnc snapshot (serve, off the loop).
        Returns False without waiting if an offline writer is at work (it folds it anyway)."""
        try:
            if self.delta_path.stat().st_size < min_bytes:
                return False
        except FileNotFoundError:
            return False
        with flocked(self.write_lock, wait=False) as got:
            if not got:
                return False
            # the DNC alone: it is all a fold writes, and reading the registry and blacklist too cost serve's
            # worker thread 1.7 s of GIL at 200k registry rows and 1M blacklist entries, every compaction
            self._save(self.load(strict=True, kinds=("dnc",)), ("dnc",))
        return True

    def modify(self, kind: str, change, replace: bool = False, audit=None):
        """Read-modify-write one kind under the writer lock; `change(L)` returns False for no change. Only that kind is
        read (it is all that is written): `lists add blacklist` read a 200k-row registry too, ~2 s beside serve.
        `replace`: `change` replaces the whole list, so a damaged snapshot of it, which every edit refuses to build on,
        is not refused (the way back from one): the stored list is not read, the DNC's is read as a start reads it
        (from `.prev` then: its journal mark is what the replace needs, the 5656 lines after it survive).
        `audit(result)`: the change's audit line (op, value, detail, found), recorded under the lock once saved."""
        with flocked(self.write_lock):
            try:
                L = Lists() if replace and kind != "dnc" else self.load(strict=not replace, kinds=(kind,))
            except SnapshotError as e:
                if replace:
                    raise
                raise SnapshotError(e.path, f"{e.reason}; an edit of the {kind} list builds on it and is refused: "
                                            f"`telfilter lists import {kind} FILE --replace` writes a good one (`lists "
                                            f"export {kind}` gives the rows of the previous generation)") from None
            result = change(L)
            self._installed = False
            rec = self._change_record(kind, *audit(result)) if audit is not None else None
            if result is not False:
                try:
                    self._save(L, (kind,), rec)
                except BaseException:
                    if rec is not None and self._installed:     # the snapshot is in: a saved change, recorded
                        self._record_change(rec)
                    raise
            if rec is not None:         # (a remove of what was not listed too, "found": false, as ctl's)
                self._record_change(rec)
            return result

    def _change_record(self, kind: str, op: str, value: str, detail: str, found: bool = True) -> dict | None:
        """A change's audit record when this store's changes are audited (`audit_by`), else None."""
        return None if self.audit_by is None else changes.record_of(kind, op, value, detail, found, self.audit_by)

    def _record_change(self, rec: dict | None) -> None:
        """A change's audit line in lists/changes.jsonl, written under the write lock right after the save (its
        write-ahead then removed); a failure is kept in `audit_error` (the change stands: the caller says it) and
        never undoes the change."""
        self.audit_error = None
        if rec is None:
            return
        try:
            changes.append_change(self.changes_path, rec)
        except OSError as e:
            self.audit_error = e
        changes.drop_intent(self.dir / "lists" / changes.PENDING_NAME)  # (the operator is told of a failure)

    # --- user operations ---
    def import_csv(self, kind: str, data: bytes, name: str = "<csv>", replace: bool = False,
                   allow_partial: bool = False):
        """Import good rows; returns (count, errors) (importing.py)."""
        return importing.import_csv(self, kind, data, name, replace, allow_partial)

    def add(self, kind: str, value: str, channel: str = "SV", extra: list[str] | None = None) -> str:
        """Add one row; the row as `lists export` writes it."""
        return self.add_replacing(kind, value, channel, extra)[0]

    def add_replacing(self, kind: str, value: str, channel: str = "SV", extra: list[str] | None = None):
        """Add one row: (the row as `lists export` writes it, the rows it replaced so written: a registration of the
        sender for the same dates -- another owner's too --, an mlexempt renewal's earlier valid_to and note; which
        `ctl lists add` and `lists add` say; how many mlexempt rows past their valid_to left the list with it)."""
        now = self.today()
        r = edits.record(kind, value, channel, extra, now)
        left = 0

        def change(L):
            nonlocal left
            # (the number's own lapsed row is replaced by the add, and said so: a renewal)
            left = self.drop_expired(L, kind, now, keep=getattr(r, "number", None))
            return edits.add(L, kind, r)
        old = self.modify(kind, change, audit=lambda _: ("add", value, changes.edit_detail(kind, channel, extra, left)))
        return edits.as_exported(kind, r), [edits.as_exported(kind, e) for e in old], left

    def remove(self, kind: str, value: str, channel: str = "SV", extra: list[str] | None = None) -> bool:
        return self.remove_listing(kind, value, channel, extra)[0]

    def remove_listing(self, kind: str, value: str, channel: str = "SV", extra: list[str] | None = None):
        """Remove: (whether anything was, the senders registrations removed as `lists export` writes them: a
        `remove senders X` without a field takes every registration of X, and the answer says which)."""
        got = self.modify(kind, lambda L: edits.remove(L, kind, value, channel, extra),
                          audit=lambda got: ("remove", value, changes.edit_detail(kind, channel, extra), bool(got)))
        rows = [edits.as_exported(kind, e) for e in got] if isinstance(got, tuple) else []
        return bool(got), rows

    @staticmethod
    def drop_expired(L, kind: str, now, keep=None) -> int:
        """An mlexempt row whose valid_to is before `now` exempts nothing: a change of the list (add, import) takes it
        out (but number `keep`'s), so the list holds what is in force and its bound counts that. Returns how many
        went (the caller says so once the change is saved)."""
        if kind != "mlexempt":
            return 0
        gone = [n for n in mlexempt.expired(L.ml_exempt, now) if n != keep]
        for n in gone:
            del L.ml_exempt[n]
        return len(gone)

    def export(self, kind: str, out) -> int:
        L = self.load(kinds=(kind,))
        # the import format: a row that expired since the list last changed would be refused by its import
        if gone := self.drop_expired(L, kind, now := self.today()):
            self.warnings.append(f"{gone} mlexempt row(s) whose valid_to is before {now} not exported "
                                 "(they exempt nothing now; the list's next add or import takes them out)")
        return write_csv(kind, L.rows(kind), out)
