"""The labelled reports as a training file `telfilter ml train --data` reads.

TSV (default; a header row `label kind campaign id reported text`), CSV (same columns) or JSONL
({"label", "text", "kind", ...}). A text's tabs and line breaks become spaces in TSV (its rows
are one line each). Cells a spreadsheet would run as a formula (a text beginning with `=`, `+`, `-`,
`@`) get a leading apostrophe in CSV and TSV (engine/csvcell.py); `ml train` reads them back as
sent. With `dedupe` a text that several reports carry (the same campaign copy
reported by many subscribers) is one row: a training set weighted by how often a text was
reported would learn the loudest campaign, not the language of spam. A text labelled both spam
and ham is left out and reported as a conflict.
"""
from __future__ import annotations

import errno
import io
import json
import os
from pathlib import Path

from .. import durable
from ..csvcell import cell, dict_writer
from .store import StoreError
from ..textnorm import content_key

COLUMNS = ("label", "kind", "campaign", "id", "reported", "text")
# a V report's content describes a call, not a message: by default only S and FW reports train the classifier
DEFAULT_KINDS = ("S", "FW")


def labelled_rows(reports, dedupe: bool = True, kinds=("S", "FW", "V")) -> tuple[list[dict], list[str]]:
    rows, conflicts, by_key = [], [], {}
    for r in reports:
        if r.label is None or r.kind not in kinds or not r.content.strip():
            continue
        row = {"label": r.label, "kind": r.kind, "campaign": r.campaign, "id": r.id, "reported": r.reported,
               "text": r.content}
        if not dedupe:
            rows.append(row)
            continue
        k = content_key(r.content)
        j = by_key.get(k)
        if j is None:
            by_key[k] = len(rows)
            rows.append(row)
        elif rows[j] is not None and rows[j]["label"] != r.label:
            conflicts.append(f"{rows[j]['id']} ({rows[j]['label']}) and {r.id} ({r.label}) carry the same text")
            rows[j] = None
    return [r for r in rows if r is not None], conflicts


def without_text(reports, kinds=("S", "FW", "V")) -> list[str]:
    """`id (label)` of each labelled report of `kinds` that labelled_rows leaves out for having no text (a 5656
    `S 0912345678` names a number and no content): nothing to train on, but a label the analyst gave."""
    return [f"{r.id} ({r.label})" for r in reports if r.label is not None and r.kind in kinds and not r.content.strip()]


def render(rows: list[dict], fmt: str) -> str:
    if fmt == "jsonl":
        return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    if fmt == "csv":
        buf = io.StringIO()
        w = dict_writer(buf, COLUMNS)
        w.writeheader()
        w.writerows({c: cell(v) for c, v in r.items()} for r in rows)
        return buf.getvalue()
    flat = lambda v: cell(" ".join(str(v).replace("\t", " ").splitlines()))
    return "".join("\t".join(flat(r[c]) for c in COLUMNS) + "\n" for r in [dict(zip(COLUMNS, COLUMNS)), *rows])


def format_for(path: str, fmt: str | None) -> str:
    if fmt:
        return fmt
    p = path.lower()
    return "jsonl" if p.endswith((".jsonl", ".ndjson", ".json")) else "csv" if p.endswith(".csv") else "tsv"


def refuse_overwrite(path: Path, keep) -> None:
    """StoreError when `path` is one of the files in `keep` (or a link to one)."""
    path = Path(path)
    for k in keep:
        try:
            same = Path(k).exists() and path.exists() and os.path.samefile(path, k)
        except OSError:
            same = False
        if same or path.absolute() == Path(k).absolute():
            raise StoreError(f"{path}: that is {k}, which this command only reads; nothing written (give another "
                             "output file)")


def write_atomic(path: Path, text: str, keep=()) -> None:
    """Write `text` to `path` (a temporary file renamed over it). `keep`: files it must never replace (the report
    store serve appends to, the label log, the input data): refused with StoreError, nothing written."""
    path = Path(path)
    refuse_overwrite(path, keep)
    # a link: the file it names is replaced, as by `check --out` (renamed over the link, the link became a file of its
    # own and the file it named, a shared labelled set say, stayed as it was, unsaid)
    path = durable.output_target(path)
    if path.is_dir():       # named as given, before a temporary file is written (the rename's error named that)
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
    durable.make_parent(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        # created, never opened through a link planted at the temporary name (its data went into the file it named)
        with os.fdopen(durable.create_new(tmp), "w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)
        durable.fsync_dir(path.parent)      # the rename made durable (a power cut could bring back the old file)
    finally:                # a full disk or a failed rename leaves no .NAME.PID.tmp behind
        tmp.unlink(missing_ok=True)
