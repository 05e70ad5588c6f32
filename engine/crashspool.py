"""Crash spools: what a process has promised (an answered message's verdict line, message id, counter update) but
not yet written to its file, in a memory-mapped file beside it, so a process killed before the write (kill -9, a
crash, the OOM killer) loses none of it: the next writer of that file takes it first. Used by the verdict log
(logwriters.py, below), the message-id log (smpp_proxy/idlog.py) and the state journal
(state/journalspool.py).

Theory of operation. `FileOut` (logwriters.py) keeps its lines in memory for its writer thread, as before; each line
also goes into a ring of CAPACITY bytes in `.<log name>.spool.<pid>.<token>` beside the log, through a shared
mapping (`mmap`), so the line is in the kernel's page cache as soon as it is copied: a process that dies leaves it
there (a power cut does not: the spool is never fsync'ed, as the log is not). The header counts the bytes ever
appended (`end`) and those the writer thread has written to the log (`written`); the loop copies a line, then moves
`end` (a line is whole or absent), the thread moves `written` after each write. The file is allocated whole when
made (posix_fallocate): a write into the mapping never meets a full disk (which would be SIGBUS), and named only
once locked and whole (O_TMPFILE). The live writer holds an exclusive flock on its spool; a spool nobody holds
belongs to a writer that died, and the next `FileOut` of that log (the next start, or a worker restarted) appends
its unwritten bytes to the log, then deletes it. A writer that ends with everything written deletes its own.

Exactly once, where the writer says where each write goes (the verdict log: `writing`). Under the log's lock, before
a write, the writer notes in the header the log's inode, its size (where the write lands: O_APPEND, every writer
locks) and the ring position the write reaches (`upto`). A writer killed between a write and its `written` mark
(its thread waits for the GIL after the write, for milliseconds under load: 33 lines of a 300-line burst were
appended twice) leaves `upto` past `written`: the recovery reads the log at that offset and counts the whole lines
of the write it finds there as written. A write it cannot check (the log renamed since, truncated) is appended
again: at least once, as the binary spools below always are. A recovery's own append is noted the same way in the
dead spool's header, so a crash during it does not repeat it either.

Bounds: CAPACITY bytes a writer (a disk that stalls for longer than the ring holds leaves the older unwritten
lines in memory only, as before).

The message-id log and the state journal spool binary records the same way, with `overwrite=False`: a record has
no line end to find the next one by, so one that would overwrite unwritten bytes is not spooled (`append` says so)
rather than cut the oldest; and they recover with `taken`, deleting the spools only once what they held is durable
in their own files. Their writers note nothing (at least once): their spools keep the TFSPOOL1 header, which the
version before this one reads too.
"""
from __future__ import annotations

import fcntl
import logging
import mmap
import os
import secrets
import struct
from pathlib import Path

log = logging.getLogger("telfilter")

MAGIC = b"TFSPOOL2"
# magic, capacity, end, written, and the write going on: the log's size before it, the log's inode, the ring
# position it reaches (native byte order, standard sizes)
_HEAD = struct.Struct("=8sQQQQQQ")
HEAD = _HEAD.size
_HEAD1 = struct.Struct("=8sQQQ")        # TFSPOOL1 (before the writes were noted): read at a recovery after an upgrade
CAPACITY = 8 << 20


def _prefix(log_path) -> tuple[Path, str]:
    p = Path(log_path)
    return p.parent, f".{p.name}.spool."


def _name(fd: int, path) -> None:
    """Give an O_TMPFILE file its name: linkat(AT_SYMLINK_FOLLOW) of /proc/self/fd/N, open(2) O_TMPFILE (os.link
    with no src_dir_fd is link(2), which links the /proc symlink itself: EXDEV)."""
    proc = os.open("/proc/self/fd", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.link(str(fd), path, src_dir_fd=proc, follow_symlinks=True)
    finally:
        os.close(proc)


class Spool:
    """One writer's ring (see the module docstring). `append` is called with the writer's lock held."""

    def __init__(self, log_path, capacity: int = CAPACITY, overwrite: bool = True):
        d, prefix = _prefix(log_path)
        self.overwrite = overwrite          # False: `append` refuses bytes that would overwrite unwritten ones
        self.path = d / f"{prefix}{os.getpid()}.{secrets.token_hex(4)}"
        self.cap = capacity
        # Made without a name (O_TMPFILE), locked, allocated and given its header, then named: another writer of
        # the log starting at the same moment (serve --workers N) never finds it unlocked and empty, which
        # `recover` takes for a dead writer's spool that is not one (deleted: this writer's lines then went to a
        # file with no name). Where O_TMPFILE is not supported, made under its name (that race open again).
        fd = None
        if hasattr(os, "O_TMPFILE") and os.path.isdir("/proc/self/fd"):     # (`_name` needs /proc)
            try:
                fd = os.open(d, os.O_RDWR | os.O_TMPFILE | os.O_CLOEXEC, 0o600)
            except OSError:                                 # EOPNOTSUPP: a file system without it
                pass
        named = fd is None
        if named:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        # A spool of binary records (not to overwrite: the id log's, the state journal's) has no write notes: the
        # version before's header (TFSPOOL1), so that going back to it after a crash still recovers it
        head = HEAD if overwrite else _HEAD1.size
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.posix_fallocate(fd, 0, head + capacity)
            self.mm = mmap.mmap(fd, head + capacity)
            if overwrite:
                _HEAD.pack_into(self.mm, 0, MAGIC, capacity, 0, 0, 0, 0, 0)
            else:
                _HEAD1.pack_into(self.mm, 0, b"TFSPOOL1", capacity, 0, 0)
            if not named:
                _name(fd, self.path)
                named = True
        except BaseException:
            if hasattr(self, "mm"):
                self.mm.close()
            os.close(fd)
            if named:
                self.path.unlink(missing_ok=True)
            raise
        self.fd = fd
        self.end = self.written = 0
        # [2] end, [3] written, [4] at, [5] inode, [6] upto (native order: this host's)
        self.head = memoryview(self.mm)[:head].cast("Q")
        self.ring = memoryview(self.mm)[head:]

    def append(self, b: bytes) -> bool:
        """Line bytes `b`, after those before it; moves `end` once they are all in. False, nothing spooled, when
        the ring is not to `overwrite` and has no room for them beside the unwritten bytes."""
        n, cap, ring = len(b), self.cap, self.ring
        if not self.overwrite and self.end + n - self.written > cap:
            return False
        if n > cap:                         # longer than the ring (never a verdict line): its end, cut at a
            self.end += n - cap             # recovery as the ring's oldest bytes are
            b, n = b[-cap:], cap
        o = self.end % cap
        if o + n <= cap:
            ring[o:o + n] = b
        else:
            k = cap - o
            ring[o:cap] = b[:k]
            ring[:n - k] = b[k:]
        self.end += n
        self.head[2] = self.end
        return True

    def writing(self, at: int, ino: int, n: int) -> None:
        """The next `n` unwritten bytes are being written at offset `at` of the file with inode `ino` (called under
        the file's lock, before the write): a recovery finds there whatever of them the write put there. `upto`
        is stored last: a writer killed before it leaves the last write's, at or behind `written`, so no note.
        (A spool of lines only: one not to overwrite has no room for the note.)"""
        _note(self.head, self.written, at, ino, n)

    def wrote(self, n: int) -> None:
        """The writer thread has written (or given up on) the next `n` bytes."""
        self.written += n
        self.head[3] = self.written

    def close(self) -> None:
        """Deleted when everything was written (else left for the next writer to recover), then released."""
        if self.written >= self.end:
            self.path.unlink(missing_ok=True)
        self.head.release()
        self.ring.release()
        self.mm.close()
        os.close(self.fd)           # the lock with it


def _note(head, written: int, at: int, ino: int, n: int) -> None:
    head[4] = at
    head[5] = ino
    head[6] = written + n


def _ring(mm, head: int, cap: int, a: int, b: int) -> bytes:
    """Ring positions [a, b) of a spool whose ring starts at offset `head` of `mm` (b - a <= cap)."""
    o, n = a % cap, b - a
    if o + n <= cap:
        return mm[head + o:head + o + n]
    return mm[head + o:head + cap] + mm[head:head + n - (cap - o)]


def _in_log(log_path, at: int, ino: int, chunk: bytes) -> int:
    """How many bytes of `chunk`, whole lines, the file `log_path` holds at offset `at`, if it is still the
    file with inode `ino` (0 when it is not, or cannot be read)."""
    try:
        fd = os.open(log_path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return 0
    try:
        if os.fstat(fd).st_ino != ino:
            return 0
        got = os.pread(fd, len(chunk), at)
    except OSError:
        return 0
    finally:
        os.close(fd)
    if got == chunk:
        return len(chunk)
    lo, hi = 0, min(len(got), len(chunk))          # the longest common prefix, by halves (memcmp, not a byte loop)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if got[:mid] == chunk[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return chunk.rfind(b"\n", 0, lo) + 1


def _unwritten(mm, size: int, log_path=None) -> tuple[int, bytes] | None:
    """Where the bytes a dead writer's spool holds that did not reach the log begin (a ring position), and those
    bytes (whole lines); None: not a spool. A write noted in the header (`writing`) is read back from `log_path`:
    what of it is there counts as written."""
    if size < _HEAD1.size:
        return None
    magic = bytes(mm[:8])
    if magic == MAGIC and size >= HEAD:
        _, cap, end, written, at, ino, upto = _HEAD.unpack_from(mm, 0)
        head = HEAD
    elif magic == b"TFSPOOL1":
        _, cap, end, written = _HEAD1.unpack_from(mm, 0)
        head, upto = _HEAD1.size, 0
    else:
        return None
    if size != head + cap or cap == 0 or written > end:
        return None
    if log_path is not None and written < upto <= end:            # a write that may have reached the log
        first = max(written, end - cap)
        if first == written:
            written += _in_log(log_path, at, ino, _ring(mm, head, cap, written, upto))
        elif first < upto:                                          # its start overwritten: all of the rest, or none
            rest = _ring(mm, head, cap, first, upto)
            if _in_log(log_path, at + first - written, ino, rest) == len(rest):
                written = upto
    start = max(written, end - cap)
    if end - start <= 0:
        return start, b""
    data = _ring(mm, head, cap, start, end)
    if start > written:                 # the ring went round over unwritten bytes: from the first whole line
        cut = data.find(b"\n") + 1
        start, data = start + cut, data[cut:]
    return start, data


def recover(log_path, write, taken: list | None = None, notes: bool = False) -> int:
    """Give the unwritten lines of every dead writer's spool of `log_path` to `write(bytes)` (oldest spool first),
    then delete each; returns the number of lines. A spool another writer holds is left alone. With `taken` (a
    list), each spool read is appended to it and left as it is, for the caller to delete (`discard`) once what
    `write` had is durable: a crash before then recovers it again. With `notes`, `write(bytes, note)` calls
    `note(at, inode)` under the log's lock before its write, as a writer's `Spool.writing`: a crash during the
    append leaves it noted in the dead spool, and the next recovery appends only what did not reach the log."""
    d, prefix = _prefix(log_path)
    try:
        names = sorted((p for p in d.iterdir() if p.name.startswith(prefix)), key=lambda p: p.stat().st_mtime)
    except OSError:
        return 0
    lines = 0
    for p in names:
        try:
            fd = os.open(p, os.O_RDWR | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue                                    # a live writer's
            st = os.fstat(fd)
            try:
                if os.stat(p).st_ino != st.st_ino:          # another recovery took it while we waited
                    continue
            except FileNotFoundError:
                continue
            got = None
            if st.st_size >= _HEAD1.size:
                with mmap.mmap(fd, st.st_size) as mm:
                    got = _unwritten(mm, st.st_size, log_path)
                    if got is not None:
                        _give(mm, got, write, taken is None, notes)
                        lines += got[1].count(b"\n")
            if got is None:
                log.warning("crash spool %s: not a spool this version writes; deleted", p)
            elif taken is not None:
                taken.append(p)
                continue
            p.unlink(missing_ok=True)
        except OSError as e:
            log.error("crash spool %s could not be recovered: %s", p, e)
        finally:
            os.close(fd)
    return lines


def _give(mm, got: tuple[int, bytes], write, mark: bool, notes: bool) -> None:
    """A dead spool's unwritten bytes to `write`; with `mark`, its header then says all was written (nothing is
    left for a recovery that raced this one), and with `notes` (a TFSPOOL2 spool) the append is noted first."""
    start, data = got
    noted = notes and mark and bytes(mm[:8]) == MAGIC
    if data:
        if noted:
            head = memoryview(mm)[:HEAD].cast("Q")     # as a writer's Spool.head: [3] written, [6] upto
            try:
                head[6] = 0                 # (the writer's note: its offset was for the old `written`)
                head[3] = start             # written: what is before `start` reached the log or is lost
                write(data, lambda at, ino: _note(head, start, at, ino, len(data)))
            finally:
                head.release()              # (before the mapping closes)
        elif notes:
            write(data, lambda at, ino: None)
        else:
            write(data)
    if mark:
        struct.pack_into("=Q", mm, 24, struct.unpack_from("=Q", mm, 16)[0])


def discard(paths) -> None:
    """Delete the spools `recover(..., taken=...)` read, once what they held is durable elsewhere."""
    for p in paths:
        try:
            p.unlink(missing_ok=True)
        except OSError as e:
            log.error("crash spool %s read but not deleted (%s): the next start reads it again", p, e)
