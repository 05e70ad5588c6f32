"""Labelled data readers: TSV `label<TAB>text` (UCI SMS Spam Collection layout), CSV with
`label` and `text` columns, JSONL `{"label": "spam"|"ham", "text": ...}`, and the 5656
report store (`reports.jsonl`: `content` as text, only reports an analyst has labelled)."""
from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path

LABELS = {"spam": 1, "ham": 0}


class DataError(Exception):
    pass


def _label(v, where):
    if isinstance(v, str) and v.strip().lower() in LABELS:
        return LABELS[v.strip().lower()]
    raise DataError(f"{where}: label must be spam or ham, got {v!r}")


def read_labelled(path) -> tuple[list[str], list[int], dict, list[str]]:
    """Returns (texts, labels, info, errors). `info` has the file's sha256 and counts."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise DataError(f"{p}: {e.strerror}") from None
    text = raw.decode("utf-8", errors="replace")
    texts, labels, errors = [], [], []
    skipped = 0
    name = p.name.lower()
    if name.endswith((".jsonl", ".json", ".ndjson")):
        for i, line in enumerate(text.splitlines(), 1):
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
                else:
                    t = o["text"]
                if not isinstance(t, str):
                    raise DataError(f"{p}:{i}: text must be a string")
                labels.append(_label(o.get("label"), f"{p}:{i}"))
                texts.append(t)
            except (ValueError, KeyError) as e:
                errors.append(f"{p}:{i}: {e if isinstance(e, DataError) else 'bad JSON line: ' + str(e)}")
            except DataError as e:
                errors.append(str(e))
    elif name.endswith(".csv"):
        rd = csv.reader(io.StringIO(text, newline=""))
        header = [h.strip().lower() for h in next(rd, [])]
        if "label" not in header or "text" not in header:
            raise DataError(f"{p}:1: CSV header needs `label` and `text` columns")
        li, ti = header.index("label"), header.index("text")
        for row in rd:
            ln = rd.line_num
            if not row:
                continue
            try:
                labels.append(_label(row[li], f"{p}:{ln}"))
                texts.append(row[ti])
            except IndexError:
                labels.pop() if len(labels) > len(texts) else None
                errors.append(f"{p}:{ln}: missing columns")
            except DataError as e:
                errors.append(str(e))
    else:   # TSV
        for i, line in enumerate(text.split("\n"), 1):
            line = line.rstrip("\r")
            if not line.strip():
                continue
            if "\t" not in line:
                errors.append(f"{p}:{i}: expected label<TAB>text")
                continue
            lab, t = line.split("\t", 1)
            try:
                labels.append(_label(lab, f"{p}:{i}"))
                texts.append(t)
            except DataError as e:
                errors.append(str(e))
    info = {"path": str(p), "sha256": hashlib.sha256(raw).hexdigest(), "rows": len(texts),
            "spam": sum(labels), "ham": len(labels) - sum(labels), "unlabelled_skipped": skipped,
            "bad_lines": len(errors)}
    return texts, labels, info, errors
