"""Reading the 5656 report store and keeping analysts' labels beside it.

`reports.jsonl` (engine/lists/reports.py) is appended to by `serve` and only read here.
`labels.jsonl` in the same directory is this package's: one JSON object a line,
    {"id": "r3f9a0c1d2e", "label": "spam" | "ham" | null, "time": ISO-8601, "by": "user"}
appended under an exclusive flock on the file and fsynced; for each id the last line wins and
null clears a label. A report's own `label` field (from a store labelled before this tool) is
the starting value that labels.jsonl overrides.
"""
from __future__ import annotations

import fcntl
import getpass
import io
import json
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from hashlib import blake2b
from pathlib import Path

from .. import durable
from ..durable import append_all, ends_in_newline
from ..jsonl import decoded_line, unpaired_in, whole_object
from ..numbers import normalise_number

REPORTS = "reports.jsonl"
LABELS_FILE = "labels.jsonl"
LABELS = ("spam", "ham")


class StoreError(Exception):
    pass


@dataclass
class Report:
    id: str               # "r" + 10 hex digits of the line's BLAKE2b (20 for a line whose 10 another line has
                          # before it): stable as the store grows
    line: int             # 1-based line in reports.jsonl
    reporter: str
    reported: str
    content: str
    time: str
    kind: str             # S (SMS spam), V (call spam), FW (an advertiser's copy of its ad)
    label: str | None     # effective label: labels.jsonl over the report's own field
    campaign: str = ""    # "c" + the id digits of the campaign's first report


def report_id(raw: bytes) -> str:
    return "r" + blake2b(raw.rstrip(b"\r\n"), digest_size=5).hexdigest()


def read_reports(path: Path, progress=None, raw: bytes | None = None) -> tuple[list[Report], list[str]]:
    """Every report of the store, in file order, and `path:line: why` for each unreadable line; `raw`: the
    store's bytes as the caller read them (what it hashed), not read again.

    A line repeated byte for byte (the same MO stored twice) is kept once; a different line whose short id an
    earlier one has gets a longer one.
    """
    path = Path(path)
    out, errors, seen = [], [], {}
    try:
        f = open(path, "rb") if raw is None else io.BytesIO(raw)
    except FileNotFoundError:
        raise StoreError(f"{path}: no report store (serve writes it when a 5656 report arrives)") from None
    except OSError as e:
        raise StoreError(f"{path}: {e.strerror}") from None
    with f:
        for n, raw in enumerate(f, 1):
            if progress is not None:
                progress(len(raw))
            if not raw.strip():
                continue
            if not raw.endswith(b"\n") and not whole_object(raw):
                # serve is writing this very line (its one write() is not yet whole): not a report yet; a whole one
                # ends a store written with no final newline ("\n".join): it was left out of everything, unsaid
                break
            where = f"{path}:{n}"
            # decoded here, a bad byte said as check --jsonl and ml train say it (jsonl.py, column in characters):
            # json.loads(bytes) said "'utf-8' codec can't decode byte 0xe9 in position 65: invalid continuation
            # byte", or read a line starting 0xFF 0xFE as UTF-16
            text, why = decoded_line(raw)
            if why is not None:
                errors.append(f"{where}: {why}")
                continue
            try:
                r = json.loads(text)
            except (ValueError, RecursionError) as e:
                errors.append(f"{where}: not JSON ({e})")
                continue
            if not isinstance(r, dict):
                errors.append(f"{where}: not a JSON object")
                continue
            why = unpaired_in(text, r)         # no character: list --json, show and export stopped on a traceback
            if why is not None:
                errors.append(f"{where}: {why}")
                continue
            content, kind = r.get("content"), r.get("kind")
            if not isinstance(content, str) or kind not in ("S", "V", "FW"):
                errors.append(f"{where}: needs a string `content` and `kind` S, V or FW")
                continue
            rid = report_id(raw)
            whole = blake2b(raw.rstrip(b"\r\n"), digest_size=16).digest()
            if rid in seen and seen[rid] != whole:
                # another report's short id (40 bits: a pair of ids alike is likely once the store nears a million
                # reports): this one, later in the store, gets a longer id, the same at every read as the store
                # only grows; before, it was skipped as a repeated line and lost to the analyst and to training
                rid = "r" + blake2b(raw.rstrip(b"\r\n"), digest_size=10).hexdigest()
            if rid in seen:
                continue
            seen[rid] = whole
            lab = r.get("label")
            out.append(Report(rid, n, str(r.get("reporter") or ""), str(r.get("reported") or ""), content,
                              str(r.get("time") or ""), kind, lab if lab in LABELS else None))
    return out, errors


def read_store(path: Path, progress=None, raw: bytes | None = None) -> tuple[list[Report], list[str]]:
    """The reports of the store at `path` (or in `raw`, its bytes as read) with their effective labels (labels.jsonl
    beside it over each report's own field), and `path:line: why` for each unreadable line of either file."""
    reports, errors = read_reports(path, progress, raw)
    lab, lerr = LabelLog(Path(path).parent).load()
    for r in reports:
        if r.id in lab:
            r.label = lab[r.id]
    return reports, errors + lerr


class LabelLog:
    """labels.jsonl beside the report store: append-only, flocked, fsynced."""

    def __init__(self, data_dir: Path):
        self.path = Path(data_dir) / LABELS_FILE

    def load(self) -> tuple[dict[str, str | None], list[str]]:
        """id -> label (None = cleared), and `path:line: why` for each unreadable line."""
        labels, errors, _ = self.load_from(0)
        return labels, errors

    def load_from(self, offset: int) -> tuple[dict[str, str | None], list[str], int]:
        """As `load`, for the lines from byte `offset` on (line numbers counted from there), and the offset
        where the file ended: the next call reads only what was appended since."""
        if not self.path.exists():
            return {}, [], 0
        with open(self.path, "rb") as f:
            fcntl.flock(f, fcntl.LOCK_SH)          # a writer's lines are whole when we read
            return self._read(f, offset)

    def _read(self, f, offset: int) -> tuple[dict[str, str | None], list[str], int]:
        """`load_from` on `f`, whose lock the caller holds."""
        labels, errors = {}, []
        f.seek(offset if offset <= os.fstat(f.fileno()).st_size else 0)   # a log replaced since: read it whole
        for n, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            # decoded as the store's lines are: json.loads(bytes) said a bad byte in the codec's words, or read
            # a line starting 0xFF 0xFE as UTF-16
            text, why = decoded_line(raw)
            try:
                o = json.loads(text) if why is None else None
            except (ValueError, RecursionError) as e:
                # said as the store's lines are; the decoder's message alone ("Expecting value: line 1 column
                # 1 (char 0)") did not say the line is no JSON
                why = f"not JSON ({e})"
            if why is None:
                why = unpaired_in(text, o)      # an id no report has, or a label log no UTF-8 could write
            if why is not None:
                errors.append(f"{self.path}:{n}: {why}")
                continue
            if not isinstance(o, dict) or not isinstance(o.get("id"), str) or o.get("label") not in (*LABELS, None):
                errors.append(f"{self.path}:{n}: needs `id` and `label` spam, ham or null")
                continue
            labels[o["id"]] = o["label"]
        return labels, errors, f.tell()

    def append(self, ids, label: str | None, by: str | None = None, since: int | None = None, select=None) -> int:
        """Append `label` for `ids`; with `select`, for the ids `select(labels)` returns instead, `labels` being
        what was appended from byte `since` on, read under the exclusive lock this append holds: a choice made on
        an older look at the log (skip what has this label already, `--only-unlabelled`) is made again on what
        another analyst wrote meanwhile, never on what this process last saw."""
        if label not in (*LABELS, None):
            raise StoreError(f"label must be spam, ham or clear, got {label!r}")
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        who = by or _user()
        if select is None and not ids:
            return 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        new = not self.path.exists()
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)         # another analyst's batch is never split by ours
            if select is not None:
                with os.fdopen(os.dup(fd), "rb") as f:     # the same open file: the lock held covers it
                    ids = select(*self._read(f, since or 0)[::2])
            data = "".join(json.dumps({"id": i, "label": label, "time": now, "by": who}) + "\n" for i in ids).encode()
            if not data:
                return 0
            n = data.count(b"\n")
            if not ends_in_newline(fd):
                data = b"\n" + data                # a line a crash cut short ends here; ours stay readable
            append_all(fd, data)
            if new:         # the log's name made durable too: a power cut could take the file, its fsynced labels in it
                durable.fsync_dir(self.path.parent)
        finally:
            os.close(fd)                            # releases the lock
        return n


def printable(s: str) -> str:
    """`s` with control and format characters (ESC, BEL, bidi overrides ...) as `?`: a subscriber's text shown in
    a terminal must not drive it (clear it, retitle it, write the clipboard)."""
    return s if s.isprintable() else "".join(c if c.isprintable() or c == " " else "?" for c in s)


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


@dataclass
class Campaign:
    id: str
    reports: list[Report]

    @property
    def size(self) -> int:
        return len(self.reports)

    def counts(self) -> dict[str, int]:
        c = {"spam": 0, "ham": 0, "unlabelled": 0}
        for r in self.reports:
            c[r.label or "unlabelled"] += 1
        return c

    @property
    def label(self) -> str:
        """spam / ham when every report has that label, mixed, or unlabelled (none has one)."""
        c = self.counts()
        if c["unlabelled"] == self.size:
            return "unlabelled"
        for k in LABELS:
            if c[k] == self.size:
                return k
        return "mixed"

    def summary(self) -> dict:
        # by instant (reports carry their node's UTC offset; as strings 05:00+00:00 came after 10:00+07:00), a time
        # that does not parse only when none does
        times = sorted((r.time for r in self.reports if r.time), key=_when)
        times = [t for t in times if _when(t)] or times
        return {"campaign": self.id, "reports": self.size, "label": self.label, **self.counts(),
                "reporters": len({r.reporter for r in self.reports}),
                **self._reported(),
                "kinds": sorted({r.kind for r in self.reports}),
                "first": times[0] if times else None, "last": times[-1] if times else None,
                "sample": self.reports[0].content}


    def _reported(self) -> dict[str, int]:
        """Distinct numbers and distinct sender names (a brandname or alphanumeric originator a 5656 report
        named, `S VCB …`) the campaign's reports name: a number counted once however it was written."""
        numbers, senders = set(), set()
        for r in self.reports:
            if r.reported:
                n = normalise_number(r.reported)
                if n is not None:
                    numbers.add(n)
                else:
                    senders.add(r.reported.casefold())
        return {"reported_numbers": len(numbers), "reported_senders": len(senders)}


class Workspace:
    """The reports of one data dir with their labels, grouped into campaigns."""

    def __init__(self, data_dir: Path, reports_path: Path | None = None, similarity: float | None = None,
                 progress: bool = False):
        from .campaigns import SIMILARITY, group
        from .progress import bar as _bar, count_bar as _count_bar
        self.data_dir = Path(data_dir)
        self.reports_path = Path(reports_path) if reports_path else self.data_dir / REPORTS
        self.similarity = similarity
        self.labels = LabelLog(self.reports_path.parent)
        bar = _bar(self.reports_path, progress)
        try:
            self.reports, self.errors = read_reports(self.reports_path, bar and (lambda n: bar.update(n)))
            lab, lerr, self._labels_end = self.labels.load_from(0)     # read_store's, keeping where the log ended
            for r in self.reports:
                if r.id in lab:
                    r.label = lab[r.id]
            self.errors += lerr
        finally:
            if bar:
                bar.close()
        gbar = _count_bar(len(self.reports), "grouping", progress)
        try:
            roots = group([r.content for r in self.reports], SIMILARITY if similarity is None else similarity,
                          gbar and (lambda n: gbar.update(n)))
        finally:
            if gbar:
                gbar.close()
        by_root: dict[int, list[Report]] = {}
        for r, root in zip(self.reports, roots):
            by_root.setdefault(root, []).append(r)
        self.campaigns: dict[str, Campaign] = {}
        for root, rs in by_root.items():
            cid = "c" + self.reports[root].id[1:]
            for r in rs:
                r.campaign = cid
            self.campaigns[cid] = Campaign(cid, rs)
        self.by_id = {r.id: r for r in self.reports}

    def resolve(self, ident: str) -> list[Report]:
        """The reports a campaign id or report id names (a unique prefix of 5+ characters will do)."""
        ident = ident.strip().lower()   # pasted from a ticket or a spreadsheet: `C380BE0FAAC`, ` c380be0faac`
        table = self.campaigns if ident.startswith("c") else self.by_id if ident.startswith("r") else None
        if table is None:
            raise StoreError(f"{ident!r}: a campaign id starts with c, a report id with r")
        if ident not in table and len(ident) < 5:
            # said as "no campaign with this id" while `reports list` showed one beginning with it
            raise StoreError(f"{ident!r}: too short: give the whole id or a unique prefix of 5 characters or more")
        hits = [ident] if ident in table else [k for k in table if k.startswith(ident)] if len(ident) >= 5 else []
        if not hits and table is self.campaigns:
            # a campaign is named after its first report; a later report close to two campaigns joins them under
            # the older one's name, and the younger name is gone: say where its reports are now
            r = "r" + ident[1:]
            first = [k for k in self.by_id if k.startswith(r)] if len(ident) >= 5 else ([r] if r in self.by_id else [])
            if len(first) == 1:
                now = self.by_id[first[0]].campaign
                raise StoreError(f"{ident!r}: no campaign of this name any more: its reports joined campaign {now} "
                                 f"(a report that arrived since is close to both); label {now}, or single reports "
                                 f"by their r… ids (`reports show {now}`)")
        if len(hits) != 1:
            raise StoreError(f"{ident!r}: {'no' if not hits else 'more than one'} "
                             f"{'campaign' if ident.startswith('c') else 'report'} with this id in {self.reports_path}")
        v = table[hits[0]]
        return v.reports if isinstance(v, Campaign) else [v]

    def reload_labels(self) -> bool:
        """Take labels.jsonl as it is on disk now (another analyst may have labelled since this workspace was
        read: the last line for an id wins there, not what this process last saw); True when a label changed."""
        # read whole once, then only what was appended since (one key press must not re-read a long log)
        lab, _, end = self.labels.load_from(self._labels_end)
        return self._take(lab, end)

    def label(self, idents, label: str | None, only_unlabelled: bool = False) -> int:
        named = {}                                 # an ordered set: a report named twice is written once
        for ident in idents:
            for r in self.resolve(ident):
                named[r.id] = r

        def select(since: dict, end: int) -> list[str]:
            # under the log's lock: labels another analyst appended since this workspace last looked count
            # (they were lost: a report labelled ham meanwhile was labelled over by `--only-unlabelled`, and a
            # `label spam` run after another's `label ham` wrote nothing, its report thought spam still)
            self._take(since, end)
            return [i for i, r in named.items() if (not only_unlabelled or r.label is None) and r.label != label]

        n = self.labels.append(None, label, since=self._labels_end, select=select)
        for r in named.values():
            if not only_unlabelled or r.label is None:
                r.label = label
        return n

    def _take(self, labels: dict, end: int) -> bool:
        """Labels read from the log up to byte `end` over the reports' own; True when one changed."""
        self._labels_end, changed = end, False
        for r in self.reports:
            if r.id in labels and r.label != labels[r.id]:
                r.label, changed = labels[r.id], True
        return changed

    def ordered_campaigns(self, sort: str = "size") -> list[Campaign]:
        cs = list(self.campaigns.values())
        if sort == "size":
            cs.sort(key=lambda c: (-c.size, c.reports[0].line))
        elif sort == "recent":
            cs.sort(key=lambda c: max(_when(r.time) for r in c.reports), reverse=True)
        else:
            cs.sort(key=lambda c: c.reports[0].line)
        return cs


def _when(t: str) -> float:
    """Seconds since the epoch of an ISO-8601 time (reports carry their local offset), 0 if unreadable."""
    try:
        return datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp()
    except (ValueError, AttributeError):
        return 0.0
