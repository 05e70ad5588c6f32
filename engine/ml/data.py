"""Labelled data readers.

- TSV: `label<TAB>text` (UCI SMS Spam Collection layout), or a header row naming the
  columns (`label`, `text`, optional `kind`, `lang`/`language`, any others ignored);
- CSV: a header row with `label` and `text` columns (and optional `kind`, `lang`), or none: label,text rows;
  a file is a CSV or a TSV by its header row (naming them, split at commas, ';' (Excel's) or tabs) whatever its
  name; a ';' CSV without one is refused, said so;
- without a header row, a file whose every row has a third field, the second (or last) one word of a few (a
  `kind` column whose header was deleted, data_sniff.unnamed_column) is refused: the header row is asked for;
- a CSV quote left open is a bad line at the line it opens on, to the end of the file or up to a line inside it
  that begins as a row does (data_sniff.runs_on);
- in TSV and CSV a text that `telfilter reports export` wrote with a leading apostrophe (a text a
  spreadsheet would run as a formula, engine/csvcell.py) is read as sent;
- JSONL: `{"label": "spam"|"ham", "text": ..., "kind"?: ..., "lang"?: ...}`; a record with no `text` is a bad
  line, but a `check` corpus's call records (`"kind": "call"`) are skipped and counted (`calls_skipped`);
- the 5656 report store (serve's `reports.jsonl`: a JSONL whose first record has `reporter`, `content` and `time`,
  no `text`, and `kind` S, V or FW) as `telfilter reports export` gives it: each report's label from `labels.jsonl` beside the store
  (the analysts' log, over the report's own field), S and FW reports only, one row per distinct text; the reports
  left out are counted (`unlabelled_skipped`, `call_reports_skipped`, `same_text_skipped`, `conflicts`).

Every row keeps its `kind` and `lang` when the file has them (None otherwise): evaluation
breaks its metrics down by both.
"""
from __future__ import annotations

import csv
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..csvcell import uncell
from ..jsonl import lone_surrogate, unpaired
from .data_sniff import (csv_records, ends_quoted, first_line, is_labels_log, is_store, json_object_first,
                         not_text, runs_on, semicolon_separated, text_takes_the_surplus, unnamed_column)

LABELS = {"spam": 1, "ham": 0, "1": 1, "0": 0, "true": 1, "false": 0}


class DataError(Exception):
    pass


@dataclass
class Dataset:
    texts: list = field(default_factory=list)
    labels: list = field(default_factory=list)
    kinds: list = field(default_factory=list)
    langs: list = field(default_factory=list)
    errors: list = field(default_factory=list)
    notes: list = field(default_factory=list)       # `path: what was left out and why`, for the user to see
    info: dict = field(default_factory=dict)

    def add(self, text, label, kind=None, lang=None):
        if not text.strip():
            # a label with no message (a spreadsheet's label filled down past the texts): nothing to learn from,
            # and as `reports export` leaves an empty report out, a bad line here rather than an empty example
            raise DataError("empty text")
        self.texts.append(text)
        self.labels.append(label)
        self.kinds.append(kind or None)
        self.langs.append(lang or None)

    def extend(self, other: "Dataset"):
        for k in ("texts", "labels", "kinds", "langs", "errors", "notes"):
            getattr(self, k).extend(getattr(other, k))


def _label(v, where):
    if isinstance(v, int) and not isinstance(v, bool) and v in (0, 1):
        v = str(v)                      # a JSON 1 / 0 (as the message below says)
    if isinstance(v, str) and v.strip().lower() in LABELS:
        return LABELS[v.strip().lower()]
    raise DataError(f"{where}: label must be spam or ham (or 1 / 0), got {v!r}")


def _columns(header: list[str], where: str) -> dict | None:
    """Column indexes by name, or None when this row is not a header."""
    h = [c.strip().lower() for c in header]
    if "label" not in h or "text" not in h:
        return None
    cols = {"label": h.index("label"), "text": h.index("text")}
    for name, keys in (("kind", ("kind",)), ("lang", ("lang", "language"))):
        for k in keys:
            if k in h:
                cols[name] = h.index(k)
                break
    width = len(h)
    while width > 2 and not h[width - 1]:       # a spreadsheet's unused columns, no part of the header
        width -= 1
    cols["width"] = width
    return cols


_QUOTED = re.compile(r'"(?:[^"]|"")*"', re.S)


def _unquote(v: str) -> str:
    """A field a CSV writer quoted because it held quotes ("... ""x"" ...": the doubled quotes prove it) as its
    text; any other as it is: the shared files are plain TSV whose texts may begin and end with a quote of their
    own (34 UCI texts are "wrapped" so, with nothing doubled inside)."""
    return v[1:-1].replace('""', '"') if len(v) >= 4 and '""' in v[1:-1] and _QUOTED.fullmatch(v) else v


def _row(ds: Dataset, fields: list[str], cols: dict, where: str, sep: str = ","):
    width = cols.get("width")
    if width is not None:
        fields = text_takes_the_surplus(fields, cols["text"], width, sep)
    if sep == "\t":
        fields = [_unquote(f) for f in fields]
    try:
        lab, t = fields[cols["label"]], uncell(fields[cols["text"]])
    except IndexError:
        ds.errors.append(f"{where}: {_short_row(cols, len(fields))}")
        return
    k = fields[cols["kind"]].strip() if "kind" in cols and cols["kind"] < len(fields) else None
    g = fields[cols["lang"]].strip() if "lang" in cols and cols["lang"] < len(fields) else None
    try:
        ds.add(t, _label(lab, where), k, g)
    except DataError as e:
        ds.errors.append(str(e) if str(e).startswith(where) else f"{where}: {e}")


def _short_row(cols: dict, n: int) -> str:
    """Why a row of `n` fields is too short for the header's columns (it said "expected 3 named columns" under a
    six-column `reports export` header: the three it reads, not where they are)."""
    return (f"missing columns: the header row puts `label` in column {cols['label'] + 1} and `text` in column "
            f"{cols['text'] + 1}, this row has {n}")


def _jsonl(ds: Dataset, p: Path, text: str) -> dict:
    skipped = calls = 0
    for i, line in enumerate(text.split("\n"), 1):      # not splitlines(): U+2028 inside a text is no line end
        if not line.strip():
            continue
        try:
            o = json.loads(line)
            if not isinstance(o, dict):
                raise DataError(f"{p}:{i}: not a JSON object")
            if "content" in o and "text" not in o:         # report store record
                if o.get("label") in (None, ""):
                    skipped += 1
                    continue
                t = o["content"]
            elif "text" in o:
                t = o["text"]
            elif o.get("kind") == "call":                  # a `check` corpus's call: no text to classify
                calls += 1
                continue
            elif "hits" in o and "action" in o:             # serve's --log: a verdict, not a message
                raise DataError(f"{p}:{i}: a verdict log keeps no message text: give a labelled file (TSV, CSV, "
                                "JSONL) or the report store")
            else:
                raise DataError(f"{p}:{i}: record has no `text` field (a labelled record needs `label` and `text`)")
            if not isinstance(t, str):
                raise DataError(f"{p}:{i}: text must be a string")
            lone = lone_surrogate(t)
            if lone is not None:        # a "\ud83d" escape without its pair: no character, and no card could hold it
                raise DataError(f"{p}:{i}: {unpaired(lone)}")
            kind, lang = o.get("kind"), o.get("lang", o.get("language"))
            ds.add(t, _label(o.get("label"), f"{p}:{i}"), kind if isinstance(kind, str) else None,
                   lang if isinstance(lang, str) else None)
        except DataError as e:
            ds.errors.append(str(e) if str(e).startswith(f"{p}:{i}:") else f"{p}:{i}: {e}")
        except ValueError as e:
            ds.errors.append(f"{p}:{i}: not JSON ({e})")
    return {"unlabelled_skipped": skipped, "calls_skipped": calls}


def _header_first(text: str) -> str | None:
    """The separator, tab, comma or ';', when the first non-blank line is a header naming `label` and `text` split
    at it: the file is that whatever its name (`reports export --format csv --out labelled.txt`, a TSV export
    named .csv, Excel's CSV separated by ';'), which read by its name gave a bad line of each or refused it."""
    line = first_line(text)
    if line is None:
        return None
    if _columns(line.rstrip("\r").split("\t"), "") is not None:
        return "\t"
    for sep in (",", ";"):
        try:
            first = next(csv.reader([line], delimiter=sep))
        except csv.Error:       # a carriage return inside the line (`spam,a\rb`): no CSV header
            return None
        if _columns(first, "") is not None:
            return sep
    return None


def _semicolons(p: Path, line: str | None) -> None:
    why = semicolon_separated(line)
    if why:
        raise DataError(f"{p}:1: {why}")


def _store(ds: Dataset, p: Path, raw: bytes) -> dict:
    """The report store's labelled reports, chosen and labelled by the code `telfilter reports export` runs, from
    `raw`, the bytes whose sha256 the model card keeps (read again, a store serve appended to meanwhile gave rows
    that hash does not cover)."""
    from ..analyst.export import DEFAULT_KINDS, labelled_rows
    from ..analyst.store import LABELS_FILE, StoreError, read_store
    try:
        reports, errors = read_store(p, raw=raw)
    except StoreError as e:
        raise DataError(str(e)) from None
    rows, conflicts = labelled_rows(reports, kinds=DEFAULT_KINDS)
    for r in rows:
        ds.add(r["text"], LABELS[r["label"]], r["kind"])
    ds.errors += errors
    ds.notes += [f"{p}: left out, labelled both ways: {c}" for c in conflicts]
    labelled = [r for r in reports if r.label is not None]
    calls = sum(r.kind not in DEFAULT_KINDS for r in labelled)
    usable = sum(r.kind in DEFAULT_KINDS and bool(r.content.strip()) for r in labelled)
    empty = sum(r.kind in DEFAULT_KINDS for r in labelled) - usable
    lf = p.parent / LABELS_FILE
    try:
        lsum = hashlib.sha256(lf.read_bytes()).hexdigest()
    except OSError:
        lsum = None
    return {"labels_file": str(lf), "labels_sha256": lsum, "reports": len(reports),
            "unlabelled_skipped": len(reports) - len(labelled), "call_reports_skipped": calls,
            "same_text_skipped": usable - len(rows), "no_text_skipped": empty, "conflicts": len(conflicts)}


def _csv(ds: Dataset, p: Path, text: str, sep: str = ","):
    recs = csv_records(text, sep)
    first = recs[0][1] if recs else []
    cols = _columns(first, f"{p}:1")
    bare = cols is None
    if bare:
        if not (len(first) >= 2 and first[0].strip().lower() in LABELS):
            _semicolons(p, first_line(text))
            found = ", ".join(repr(c) for c in first[:6])
            raise DataError(f"{p}:1: CSV header needs `label` and `text` columns (found {found}); without a header, "
                            "each row is label,text")
        cols = {"label": 0, "text": 1}             # no header: label,text rows, as a TSV without one
        _no_unnamed_column(p, 1, [_cells(r) for _, r, _ in recs if r], ",")
    else:
        recs = recs[1:]
    for n, (start, row, lines) in enumerate(recs, 1):
        if not row:
            continue
        end = start + len(lines) - 1
        if end > start and n == len(recs) and ends_quoted(text, sep):
            # the file ended inside a quoted text: every row after its opening quote was read as that text, lost to
            # training with no word (`spam,"Win` then 500 rows: one spam message)
            ds.errors.append(f"{p}:{start}: a quoted text opened on this line is never closed: the lines from here "
                             f"to the end of the file ({end}) would be one text; close it with \"")
            continue
        run = (runs_on(lines, cols["label"], row[cols["label"]], sep) if end > start and len(row) > cols["label"]
               else None)
        if run:
            # closed by a later quote instead: the rows between were read as part of that text, as silently
            ds.errors.append(f"{p}:{start + run[0]}: a quoted text opened on this line runs on into line "
                             f"{start + run[1]}, which begins as a row of its own: lines {start + run[0]} to {end} "
                             "would be one text; close the quote with \"")
            continue
        # the line the record starts on (a text with newlines ends lines later)
        _row(ds, _label_text(row) if bare else row, cols, f"{p}:{start}", sep)


def _no_unnamed_column(p: Path, line: int, rows: list[list[str]], sep: str):
    """Refuses a file without a header row whose rows hold a column the header would name (unnamed_column)."""
    why = unnamed_column(rows, sep)
    if why:
        raise DataError(f"{p}:{line}: {why}")


def _label_text(row: list[str]) -> list[str]:
    """A CSV row without a header as [label, text]: the commas after the label are the text's own, as a TSV's tabs
    are (a hand-written "spam,Win a prize, call now" trained on "Win a prize", the rest dropped without a word)."""
    row = _cells(row)
    return [row[0], ",".join(row[1:])]


def _cells(row: list[str]) -> list[str]:
    """A CSV row without the empty cells ending it: a spreadsheet's unused columns, no part of it."""
    n = len(row)
    while n > 2 and row[n - 1] == "":
        n -= 1
    return row[:n]


def _tsv(ds: Dataset, p: Path, text: str):
    cols = None
    for i, line in enumerate(text.split("\n"), 1):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        if "\t" not in line:
            if not ds.texts and not ds.errors:
                _semicolons(p, line)
            ds.errors.append(f"{p}:{i}: {_short_row(cols, 1) if cols else 'expected label<TAB>text'}")
            continue
        fields = line.split("\t")
        if cols is None and not ds.texts and not ds.errors:
            cols = _columns(fields, f"{p}:{i}")
            if cols is not None:                        # a header row: columns by name
                continue
            cols = {}                                   # no header: label<TAB>text (text may hold tabs)
            named = fields[0].strip().lower() not in LABELS
            rows = [r.rstrip("\r").split("\t") for r in text.split("\n")[i - 1 + named:]
                    if "\t" in r and r.strip()]
            _no_unnamed_column(p, i + named, rows, "\t")
            if named:
                # neither: a header naming its columns otherwise ("class<TAB>sms") said "label must be spam or
                # ham, got 'class'", as if a data row were wrong
                found = ", ".join(repr(f) for f in fields[:6])
                ds.errors.append(f"{p}:{i}: a header row needs `label` and `text` columns (found {found}); "
                                 "without a header, each line is label<TAB>text")
                continue
        if cols:
            _row(ds, fields, cols, f"{p}:{i}", "\t")
        else:
            _row(ds, [fields[0], line.split("\t", 1)[1]], {"label": 0, "text": 1}, f"{p}:{i}", "\t")


_NOT_UTF8 = re.compile("[\udc80-\udcff]")        # what surrogateescape makes of a byte that is not UTF-8


def _line_of(error: str, p: Path) -> int:
    n = error[len(f"{p}:"):].split(":", 1)[0] if error.startswith(f"{p}:") else ""
    return int(n) if n.isdigit() else 0


def read_dataset(path) -> Dataset:
    """All labelled rows of one file, with `info` (sha256, counts) and per-line errors."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise DataError(f"{p}: {e.strerror}") from None
    if not_text(raw):
        raise DataError(f"{p}:1: {not_text(raw)}")
    text = raw.decode("utf-8-sig", errors="surrogateescape")  # a byte-order mark is no part of the first header
    if "\r" in text and "\n" not in text:
        # lines ended by a carriage return alone (a spreadsheet's "CSV (Macintosh)"): read as one line, the
        # header sniffing's csv reader raised a traceback in every `ml` command
        text = text.replace("\r", "\n")
    ds = Dataset()
    not_utf8 = []
    if _NOT_UTF8.search(text):
        # a line with bytes that are not UTF-8 (a file saved as Windows-1252/1258, Latin-1) is a bad line, named:
        # decoded with U+FFFD in their place it was trained on and scored with every accented letter lost
        lines = text.split("\n")
        for i, line in enumerate(lines, 1):
            m = _NOT_UTF8.search(line)
            if m:
                not_utf8.append(f"{p}:{i}: not valid UTF-8: byte 0x{ord(m.group()) - 0xDC00:02x} at column "
                                f"{m.start() + 1} (save the file as UTF-8)")
                lines[i - 1] = ""
        text = "\n".join(lines)
    counts = {"unlabelled_skipped": 0}
    name = p.name.lower()
    # JSON lines whatever the name: serve's log is `--log verdicts.log` and rotates to `.1`; read as a TSV, each
    # of its lines said "expected label<TAB>text" and hid why it is no use (a TSV line is never a JSON object)
    if name.endswith((".jsonl", ".json", ".ndjson")) or json_object_first(text):
        if is_store(text):
            counts = _store(ds, p, raw)
            not_utf8 = []                   # the store's reader names those lines itself: each was said twice
        elif is_labels_log(text):
            raise DataError(f"{p}:1: the analysts' labels, no texts: give the report store beside it "
                            f"(--data {p.with_name('reports.jsonl')}), read with these labels")
        else:
            counts = _jsonl(ds, p, text)
    else:
        sep = _header_first(text) or ("," if name.endswith(".csv") else "\t")
        if sep == "\t":
            _tsv(ds, p, text)
        else:
            _csv(ds, p, text, sep)
    # named in file order, so the first 1,000 shown are the file's first (the UTF-8 pass ran before the rest)
    ds.errors = sorted(not_utf8 + ds.errors, key=lambda e: _line_of(e, p))
    spam = sum(ds.labels)
    ds.info = {"path": str(p), "sha256": hashlib.sha256(raw).hexdigest(), "rows": len(ds.texts),
               "spam": spam, "ham": len(ds.labels) - spam, **counts, "bad_lines": len(ds.errors)}
    for key, what in _LEFT_OUT:
        if counts.get(key):
            ds.notes.append(f"{p}: {counts[key]} {what}")
    if not ds.texts:
        # an empty file (an export made before anything was labelled, a header row alone) given beside others
        # added nothing, and nothing said so: the analyst's reports were thought trained on
        ds.notes.append(f"{p}: no labelled messages in it")
    return ds


_LEFT_OUT = (("unlabelled_skipped", "unlabelled reports skipped (label them with `telfilter reports label` or "
                                    "`reports tui`; the labels are kept in labels.jsonl beside the store)"),
             ("call_reports_skipped", "labelled V (call) reports skipped: their content describes a call"),
             ("same_text_skipped", "reports skipped for carrying another report's text (one row per distinct text; "
                          "a text labelled both spam and ham is left out)"),
             ("no_text_skipped", "labelled reports skipped for having no text (a report naming a number only; "
                                 "`reports export` names them)"),
             ("calls_skipped", "call records skipped (no text to classify)"))


def read_labelled(path) -> tuple[list[str], list[int], dict, list[str]]:
    """Returns (texts, labels, info, errors). `info` has the file's sha256 and counts."""
    ds = read_dataset(path)
    return ds.texts, ds.labels, ds.info, ds.errors


def read_all(paths) -> tuple[Dataset, list[dict]]:
    """Several files as one dataset, with each file's info."""
    out, infos = Dataset(), []
    for p in paths:
        ds = read_dataset(p)
        out.extend(ds)
        infos.append(ds.info)
    return out, infos
