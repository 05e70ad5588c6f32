"""`telfilter ml compare`: two or more models on the same messages, side by side.

The data is a labelled file (`ml train`'s formats: TSV, CSV, JSONL, a `reports export`) or
unlabelled text: a `telfilter check` corpus (JSONL with `text`; calls are skipped) or the
report store itself (`content`; V reports, whose content describes a call, skipped). With
labels, each model gets `ml eval`'s metrics (mcc, spam caught, blocked ham) with a per-language
and per-kind breakdown; without, the share of
messages each model would tag and drop. Either way every message whose action (allow / tag /
drop, at each model's own thresholds) differs from the first model's is listed.
"""
from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..csvcell import cell, dict_writer

ACTIONS = ("allow", "tag", "drop")


@dataclass
class Messages:
    texts: list = field(default_factory=list)
    labels: list | None = None          # 1 spam / 0 ham per text, or None when the data has none
    kinds: list = field(default_factory=list)
    langs: list = field(default_factory=list)
    errors: list = field(default_factory=list)
    notes: list = field(default_factory=list)       # what a file left out on purpose, counted (ml/data.py)


def read_messages(paths) -> Messages:
    """Labelled when every file is; a file with no label anywhere is read as unlabelled text."""
    from ..ml.data import DataError, read_dataset
    out, labelled, with_labels = Messages(labels=[]), True, []
    for p in paths:
        ds = read_dataset(p)
        if ds.texts:
            with_labels.append(str(p))
            out.texts += ds.texts
            out.labels += ds.labels
            out.kinds += ds.kinds
            out.langs += ds.langs
            out.errors += ds.errors
            out.notes += ds.notes
            continue
        texts, errors, notes = _unlabelled(Path(p))
        out.notes += notes
        if not texts:
            # a TSV or CSV is no JSON: its own reader's problem, not "not JSON"; but a file of JSON objects is
            # JSON lines whatever its name (a verdict log is `--log verdicts.log`): say why its lines are no use
            objects = any(": not JSON (" not in e and not e.endswith(": not a JSON object")
                          and ": not valid UTF-8: " not in e for e in errors)
            if not objects and not str(p).lower().endswith((".jsonl", ".json", ".ndjson")):
                errors = ds.errors
            raise DataError(f"{p}: no messages (labelled rows, or JSON lines with `text` or `content`)"
                            + (f"; first problem: {errors[0]}" if errors else ""))
        if labelled:
            unlabelled = str(p)
        labelled = False
        out.texts += texts
        out.kinds += [None] * len(texts)
        out.langs += [None] * len(texts)
        out.errors += errors
    if not labelled:
        out.labels = None
        if with_labels:     # the metrics asked for by a labelled file went without a word
            out.notes.append(f"the labels of {', '.join(with_labels)} are not used: {unlabelled} has none, and "
                             "metrics need every --data file labelled (compare the labelled files on their own)")
    return out


_NOT_UTF8 = re.compile("[\udc80-\udcff]")        # what surrogateescape makes of a byte that is not UTF-8


def _unlabelled(p: Path) -> tuple[list[str], list[str], list[str]]:
    """The texts of a `check` corpus or of the report store, `path:line: why` for each bad line, and what was left
    out on purpose, counted (V (call) reports, call records), as ml/data.py says them."""
    from ..jsonl import open_jsonl, unpaired_in
    texts, errors, calls, call_records = [], [], 0, 0
    with open_jsonl(str(p)) as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            bad = _NOT_UTF8.search(line)
            if bad:         # decoded with U+FFFD in its place, the text was scored without its accented letters
                errors.append(f"{p}:{n}: not valid UTF-8: byte 0x{ord(bad.group()) - 0xDC00:02x} at column "
                              f"{bad.start() + 1}")
                continue
            try:
                o = json.loads(line)
            except (ValueError, RecursionError) as e:
                errors.append(f"{p}:{n}: not JSON ({e})")
                continue
            if not isinstance(o, dict):
                errors.append(f"{p}:{n}: not a JSON object")
                continue
            why = unpaired_in(line, o)
            if why is not None:     # no character: scored, it stopped --changes on a traceback (no UTF-8 holds it)
                errors.append(f"{p}:{n}: {why}")
                continue
            if o.get("kind") == "call":                  # a `check` corpus's call: no text to classify
                call_records += 1
                continue
            if o.get("kind") == "V" and "content" in o and "text" not in o:
                # a 5656 call report: its content describes a call, no message any model judges (as the labelled
                # store is read: ml/data.py); scored, it was counted in every model's actions and changes
                calls += 1
                continue
            t = o.get("text", o.get("content"))
            if not isinstance(t, str):
                why = ("a verdict log keeps no message text: compare on the `check` corpus or the report store"
                       if "hits" in o and "action" in o else "needs a string `text` (or `content`)")
                errors.append(f"{p}:{n}: {why}")
                continue
            if not t.strip():       # a bad line, as `ml eval` and `ml train` take it (it was dropped, counted nowhere)
                errors.append(f"{p}:{n}: empty text")
                continue
            texts.append(t)
    notes = [f"{p}: {calls} V (call) reports skipped: their content describes a call"] * bool(calls)
    notes += [f"{p}: {call_records} call records skipped (no text to classify)"] * bool(call_records)
    return texts, errors, notes


def compare(scorers: list, names: list[str], msgs: Messages, progress=None):
    """(summary, changed rows, probabilities [model, message], languages). Scores every message
    with every model once; `progress`, if given, is called with 1 per score."""
    from ..ml.features import language
    n = len(msgs.texts)
    P = np.empty((len(scorers), n))
    for i, sc in enumerate(scorers):
        for j, t in enumerate(msgs.texts):
            P[i, j] = sc.score(t)
            if progress is not None:
                progress(1)
    acts = [[sc.action(p) for p in P[i]] for i, sc in enumerate(scorers)]
    langs = [g or language(t) for g, t in zip(msgs.langs, msgs.texts)]
    summary = {"messages": n, "labelled": msgs.labels is not None, "models": []}
    y = np.array(msgs.labels, dtype=bool) if msgs.labels is not None else None
    for i, (sc, name) in enumerate(zip(scorers, names)):
        m = {"model": name, "model_version": sc.version, "tag_threshold": sc.tag_threshold,
             "drop_threshold": sc.drop_threshold,
             "actions": {a: sum(x == a for x in acts[i]) for a in ACTIONS}}
        if y is not None:
            from ..ml.train import breakdown, metrics
            m["metrics"] = metrics(P[i], y, sc.drop_threshold)
            m["by_language"] = breakdown(P[i], y, sc.drop_threshold, langs)
            if any(msgs.kinds):
                m["by_kind"] = breakdown(P[i], y, sc.drop_threshold, msgs.kinds)
        summary["models"].append(m)
    changed = []
    for j in range(n):
        if any(acts[i][j] != acts[0][j] for i in range(1, len(scorers))):
            row = {"index": j, "text": msgs.texts[j], "lang": langs[j], "kind": msgs.kinds[j],
                   "label": (("spam" if msgs.labels[j] else "ham") if msgs.labels is not None else None)}
            for i, name in enumerate(names):
                row[f"p_{i + 1}"] = round(float(P[i, j]), 6)
                row[f"action_{i + 1}"] = acts[i][j]
            changed.append(row)
    summary["changed"] = len(changed)
    # transitions baseline -> each other model, e.g. {"allow->drop": 3}
    summary["transitions"] = [_transitions(acts[0], acts[i]) for i in range(1, len(scorers))]
    if y is not None:
        for i in range(1, len(scorers)):
            fixed = sum(1 for r in changed if _right(r, i + 1) and not _right(r, 1))
            broke = sum(1 for r in changed if _right(r, 1) and not _right(r, i + 1))
            summary["models"][i]["versus_first"] = {"now_right": fixed, "now_wrong": broke}
    return summary, changed, P, langs


def _right(row, k) -> bool:
    """A drop is right on spam, an allow or tag is right on ham (the drop threshold is the decision)."""
    return (row[f"action_{k}"] == "drop") == (row["label"] == "spam")


def _transitions(a, b) -> dict:
    out = {}
    for x, z in zip(a, b):
        if x != z:
            out[f"{x}->{z}"] = out.get(f"{x}->{z}", 0) + 1
    return dict(sorted(out.items()))


def change_columns(n_models: int) -> list[str]:
    """The columns of a changed-message row (compare()), for `n_models` models."""
    cols = ["index", "text", "lang", "kind", "label"]
    for i in range(n_models):
        cols += [f"p_{i + 1}", f"action_{i + 1}"]
    return cols


def render_changes(rows: list[dict], fmt: str, n_models: int = 2) -> str:
    if fmt == "jsonl":
        return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    buf = io.StringIO()
    # the header even when nothing changed: a script or spreadsheet reading the file gets its columns
    w = dict_writer(buf, list(rows[0]) if rows else change_columns(n_models))
    w.writeheader()
    w.writerows({c: cell(v) for c, v in r.items()} for r in rows)   # texts as a spreadsheet shows them
    return buf.getvalue()


def plots(d: Path, summary: dict, P, labels, langs, names) -> list[str]:
    """Score scatter (first model against each other), per-language caught / blocked-ham bars."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    d.mkdir(parents=True, exist_ok=True)
    written = []
    y = np.array(labels, dtype=bool) if labels is not None else None
    for i in range(1, len(names)):
        fig, ax = plt.subplots(figsize=(5.5, 5.5))
        if y is None:
            ax.scatter(P[0], P[i], s=6, alpha=.5, label="messages")
        else:
            ax.scatter(P[0][~y], P[i][~y], s=6, alpha=.5, label="ham")
            ax.scatter(P[0][y], P[i][y], s=6, alpha=.5, label="spam", color="crimson")
        m0, mi = summary["models"][0], summary["models"][i]
        ax.axvline(m0["drop_threshold"], color="grey", ls="--")
        ax.axhline(mi["drop_threshold"], color="grey", ls="--")
        ax.set(xlabel=f"model 1 ({m0['model_version']}) spam probability",
               ylabel=f"model {i + 1} ({mi['model_version']}) spam probability",
               title="Scores, dashed: drop thresholds", xlim=(-.02, 1.02), ylim=(-.02, 1.02))
        ax.legend(loc="upper left"); ax.grid(alpha=.3)
        fig.tight_layout(); name = f"scores_1_vs_{i + 1}.png"; fig.savefig(d / name, dpi=110); plt.close(fig)
        written.append(name)
    if y is not None:
        groups = sorted({g for g in langs if g})
        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        w = .8 / len(names)
        for i, m in enumerate(summary["models"]):
            bl = m["by_language"]
            xs = np.arange(len(groups)) + i * w
            for ax, k in zip(axes, ("spam_caught_rate", "blocked_ham_rate")):     # (None: nothing to count, no bar)
                ax.bar(xs, [bl.get(g, {}).get(k) or 0 for g in groups], w, label=f"{i + 1}: {m['model_version']}")
        for ax, t in zip(axes, ("spam caught", "ham blocked")):
            ax.set_xticks(np.arange(len(groups)) + .4 - w / 2, groups)
            ax.set(title=f"{t} per language", ylabel="rate"); ax.grid(alpha=.3, axis="y")
            ax.set_ylim(bottom=0)       # a rate: with none blocked the axis ran from -0.04
        axes[0].legend(fontsize=8)
        fig.tight_layout(); fig.savefig(d / "per_language.png", dpi=110); plt.close(fig)
        written.append("per_language.png")
    # what an earlier run wrote here and this one did not (a third model's scatter, rates of labelled data) stayed
    # beside these plots, read as this comparison's
    for old in [*d.glob("scores_1_vs_*.png"), d / "per_language.png"]:
        if old.name not in written:
            old.unlink(missing_ok=True)
    return written
