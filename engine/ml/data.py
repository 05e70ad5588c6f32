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

import hashlib
import json
import re
from pathlib import Path

from ..jsonl import lone_surrogate, unpaired
from .data_rows import LABELS, DataError, Dataset, add_csv, add_tsv, header_separator, parse_label
from .data_sniff import is_labels_log, is_store, json_object_first, not_text


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
            ds.add(t, parse_label(o.get("label"), f"{p}:{i}"), kind if isinstance(kind, str) else None,
                   lang if isinstance(lang, str) else None)
        except DataError as e:
            ds.errors.append(str(e) if str(e).startswith(f"{p}:{i}:") else f"{p}:{i}: {e}")
        except ValueError as e:
            ds.errors.append(f"{p}:{i}: not JSON ({e})")
    return {"unlabelled_skipped": skipped, "calls_skipped": calls}



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
        sep = header_separator(text) or ("," if name.endswith(".csv") else "\t")
        if sep == "\t":
            add_tsv(ds, p, text)
        else:
            add_csv(ds, p, text, sep)
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
