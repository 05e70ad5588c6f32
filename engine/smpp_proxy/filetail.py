"""The whole lines appended to a file since it was last read: mo_redelivery follows the 5656 commands other
processes of a data dir write (reports.jsonl, dnc.delta) with it."""
from __future__ import annotations

import logging
import os

log = logging.getLogger("telfilter.smpp")


class Tail:
    """The lines appended to a file since it was last read (a file replaced, as a fold of the DNC journal replaces
    it, is read from its start). A line longer than one read (`most` bytes, 1 MiB: no 5656 command's line is near
    it) is skipped whole, said once: it used to be read again at every look, the lines after it never reached."""

    def __init__(self, path):
        self.path, self.ino, self.off = path, None, 0
        self.skipping = False               # inside a line longer than one read: up to its newline, left out
        try:
            st = path.stat()
            self.ino, self.off = st.st_ino, st.st_size
        except (OSError, AttributeError):
            pass

    def lines(self, most: int = 1 << 20) -> list:
        try:
            f = open(self.path, "rb")
        except (OSError, TypeError):
            return []
        with f:
            st = os.fstat(f.fileno())
            if st.st_ino != self.ino or st.st_size < self.off:
                self.ino, self.off, self.skipping = st.st_ino, 0, False
            f.seek(self.off)
            data = f.read(most)
        start = 0
        if self.skipping:
            start = data.find(b"\n") + 1
            if start == 0:
                self.off += len(data)
                return []
            self.skipping = False
        end = data.rfind(b"\n") + 1             # (a line being written is read once whole)
        if end == 0 and len(data) == most:      # a line longer than a read: left out, up to its newline
            log.warning("%s: a line of over %d bytes at byte %d left out (no 5656 command's line)", self.path,
                        most, self.off)
            self.off += len(data)
            self.skipping = True
            return []
        self.off += end
        return data[start:end].splitlines()
