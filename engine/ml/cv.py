"""`telfilter ml cv`: how stable is a training recipe? Repeated stratified hold-out.

One evaluation on one held-out set says little about a recipe whose targets sit a message or
two from the edge (issue 15: English MCC >= 0.95 with <= 0.2% of ham blocked; a quarter of the
UCI set has ~845 ham, so one false block is 0.12%). `ml cv` repeats what an independent check
does: for each of `--splits` seeds, every `--data` file is split in two, stratified by label
(`--test-size` held out), a model is trained with `ml train`'s defaults on the training parts
of all of them (plus every `--extra` file, which is only ever trained on, e.g. our own
examples), and each file's held-out part is scored by the trained model at its drop threshold,
as `ml eval` would, per file and per language. Splitting each file on its own keeps every
source in every held-out set in its own proportions.

Output: JSON (one row per split and file; a summary per file with mean and worst of each
metric, false blocks and misses per split), a table on stderr, and with `--report DIR` a plot
of each file's MCC, spam caught and blocked ham per split. `--fold-seed` is what `ml train --seed` would be (its
validation split and folds); with the split seeds it makes a run reproducible.
"""
from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from .thresholds import shown


def add_parser(ms, sub) -> None:
    from ..cli_types import _at_least_one, rate, seed
    q = sub(ms, "cv", "repeated stratified hold-out of a training recipe: train on part of each file, "
            "evaluate on the rest, per file and language, over many splits")
    q.add_argument("--data", action="append", required=True, metavar="FILE",
                   help="labelled file (repeatable): split into training and held-out parts")
    q.add_argument("--extra", action="append", default=[], metavar="FILE",
                   help="labelled file always in training, never held out (repeatable; e.g. your own examples)")
    q.add_argument("--splits", type=_at_least_one, default=16, help="number of repeated splits (default 16)")
    q.add_argument("--test-size", type=rate, default=0.25, help="held-out share of each file (default 0.25)")
    q.add_argument("--first-split", type=seed, default=0, help="seed of the first split (default 0)")
    q.add_argument("--fold-seed", type=seed, default=42, help="ml train's seed for its folds (default 42)")
    q.add_argument("--target-blocked-ham", type=rate, default=0.001, help="as for ml train (default 0.001)")
    q.add_argument("--json", metavar="FILE", help="write the JSON here instead of stdout")
    q.add_argument("--report", metavar="DIR", help="write cv.png (MCC, spam caught, blocked ham per split and file) here")
    q.add_argument("--no-progress", action="store_true", help="no progress bar")


def _split(y: np.ndarray, test_size: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, held-out) indices, stratified by label; everything trains if a class has < 2."""
    from sklearn.model_selection import train_test_split
    idx = np.arange(len(y))
    if min(int(y.sum()), int((~y).sum())) < 2:
        return idx, idx[:0]
    tr, te = train_test_split(idx, test_size=test_size, stratify=y, random_state=seed)
    return np.sort(tr), np.sort(te)


def _row(p, y, thr) -> dict:
    from .train import metrics
    m = metrics(p, y, thr)
    c = m["confusion"]
    return {"n": m["n"], "spam": m["spam"], "ham": m["ham"], "mcc": m["mcc"], "spam_caught_rate": m["recall"],
            "blocked_ham_rate": m["blocked_ham_rate"], "false_blocks": c["fp"], "misses": c["fn"]}


def run(data: list, extra: list, splits: int, test_size: float = 0.25, first: int = 0, fold_seed: int = 42,
        target: float = 0.001, progress=None) -> dict:
    """data, extra: [(name, Dataset)]. The rows and the summary (see the module docstring)."""
    from .features import language
    from .model import load_scorer
    from .train import train
    ys = [np.array(ds.labels, dtype=bool) for _, ds in data]
    langs = [np.array([g or language(t) for g, t in zip(ds.langs, ds.texts)]) for _, ds in data]
    rows = []
    for s in range(first, first + splits):
        parts = [_split(y, test_size, s) for y in ys]
        texts, labels = [], []
        for (_, ds), (tr, _) in zip(data, parts):
            texts += [ds.texts[i] for i in tr]
            labels += [ds.labels[i] for i in tr]
        for _, ds in extra:
            texts += ds.texts
            labels += ds.labels
        with tempfile.TemporaryDirectory(prefix="telfilter-cv-") as d:
            train(texts, labels, [], Path(d), target, fold_seed, progress=False, log=lambda m: None)
            sc = load_scorer(Path(d))
        for (name, ds), (_, te), y, lg in zip(data, parts, ys, langs):
            if not len(te):
                continue
            p = np.array([sc.score(ds.texts[i]) for i in te])
            r = {"split": s, "file": name, **_row(p, y[te], sc.drop_threshold), "by_language": {}}
            for g in sorted(set(lg[te])):
                m = lg[te] == g
                r["by_language"][str(g)] = _row(p[m], y[te][m], sc.drop_threshold)
            rows.append(r)
        if progress is not None:
            progress.update(1)
    return {"splits": splits, "first_split": first, "test_size": test_size, "fold_seed": fold_seed,
            "target_blocked_ham": target, "rows": rows, "summary": summary(rows)}


def _stats(rs: list) -> dict:
    out = {}
    for k, worst in (("mcc", min), ("spam_caught_rate", min), ("blocked_ham_rate", max)):
        v = [r[k] for r in rs if r[k] is not None]      # (None: a split with nothing to count, e.g. no ham)
        out[k] = {"mean": float(np.mean(v)), "worst": float(worst(v))} if v else {"mean": None, "worst": None}
    out["false_blocks"] = [r["false_blocks"] for r in rs]
    out["misses"] = [r["misses"] for r in rs]
    # over all splits together: the rates an unseen set of the same kind should show (a split's own rate is
    # one or two messages, and its mean over splits weighs a small split like a large one)
    ham, spam = sum(r["ham"] for r in rs), sum(r["spam"] for r in rs)
    out["pooled"] = {"blocked_ham_rate": sum(out["false_blocks"]) / ham if ham else None,
                     "spam_caught_rate": 1 - sum(out["misses"]) / spam if spam else None}
    out["held_out"] = {"spam": int(np.mean([r["spam"] for r in rs])), "ham": int(np.mean([r["ham"] for r in rs]))}
    return out


def summary(rows: list) -> dict:
    """Per file (and per file and language): mean and worst of MCC, spam caught and blocked ham;
    false blocks and misses of each split; spam caught and blocked ham pooled over the splits."""
    out = {}
    for f in dict.fromkeys(r["file"] for r in rows):
        rs = [r for r in rows if r["file"] == f]
        out[f] = _stats(rs)
        out[f]["by_language"] = {g: _stats([r["by_language"][g] for r in rs if g in r["by_language"]])
                                 for g in sorted({g for r in rs for g in r["by_language"]})}
    return out


def short_names(paths) -> dict:
    """Each path's shortest trailing part that tells it from the others (two train.tsv files)."""
    parts = {p: Path(p).parts for p in paths}
    out = {}
    for p, ps in parts.items():
        k = 1
        while k < len(ps) and sum(1 for q in parts.values() if q[-k:] == ps[-k:]) > 1:
            k += 1
        out[p] = str(Path(*ps[-k:]))
    return out


def table(result: dict, min_held_out: int = 10) -> str:
    """The summary as a text table (what a person reads first); a language with fewer than
    min_held_out held-out messages of a file (a stray detection) is left to the JSON."""
    names = short_names(result["summary"])
    lines = [f"{'file':32s} {'lang':4s} {'held out':>12s} {'MCC mean/worst':>16s} {'caught mean/worst':>18s} "
             f"{'blocked max':>11s} {'pooled caught/blocked':>22s}  false blocks per split (a digit each, 9: 9 or more)"]
    for f, s in result["summary"].items():
        for g, t in [("all", s)] + list(s["by_language"].items()):
            if t["held_out"]["spam"] + t["held_out"]["ham"] < min_held_out:
                continue
            lines.append(f"{names[f][-32:]:32s} {g:4s} {t['held_out']['spam']:>4d}+{t['held_out']['ham']:<5d}  "
                         f"{shown(t['mcc']['mean'], '.4f'):>7s}/{shown(t['mcc']['worst'], '.4f')} "
                         f"{shown(t['spam_caught_rate']['mean'], '.1%'):>8s}/{shown(t['spam_caught_rate']['worst'], '.1%'):<8s} "
                         f"{shown(t['blocked_ham_rate']['worst'], '.3%'):>11s} "
                         f"{shown(t['pooled']['spam_caught_rate'], '.2%'):>12s}/{shown(t['pooled']['blocked_ham_rate'], '.3%'):<9s}  "
                         f"{''.join(str(min(x, 9)) for x in t['false_blocks'])}")
    return "\n".join(lines)


def plot(result: dict, d: Path) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    d.mkdir(parents=True, exist_ok=True)
    files = list(result["summary"])
    names = short_names(files)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for f in files:
        rs = [r for r in result["rows"] if r["file"] == f]
        x = [r["split"] for r in rs]
        scaled = lambda k, by: [np.nan if r[k] is None else r[k] * by for r in rs]    # (None: a gap, nothing to count)
        axes[0].plot(x, scaled("mcc", 1), marker="o", label=names[f])
        axes[1].plot(x, scaled("spam_caught_rate", 100), marker="o", label=names[f])
        axes[2].plot(x, scaled("blocked_ham_rate", 100), marker="o", label=names[f])
    axes[0].set(xlabel="split", ylabel="MCC", title="MCC per held-out part")
    axes[1].set(xlabel="split", ylabel="spam caught (%)", title="spam caught at the drop threshold")
    axes[2].set(xlabel="split", ylabel="blocked ham (%)", title="ham blocked at the drop threshold")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"ml cv: {result['splits']} stratified splits, {result['test_size']:.0%} held out")
    fig.tight_layout()
    out = d / "cv.png"
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def cmd(args) -> int:
    from .data import read_dataset
    from .train import _progress
    if args.first_split + args.splits - 1 > 2**32 - 1:      # split k is seeded first_split + k
        print(f"telfilter ml cv: error: --first-split + --splits - 1 must be at most {2**32 - 1}", file=sys.stderr)
        return 2
    both = set(args.data) & set(args.extra)
    if both:
        print(f"telfilter ml cv: error: {sorted(both)[0]} is given as --data and as --extra", file=sys.stderr)
        return 2
    from .cli import _skipped
    sets = {}
    for p in args.data + args.extra:
        sets[p] = read_dataset(p)
    # as train and eval say them: the first 1,000 bad lines (a verdict log given as --extra printed every line),
    # then what each file left out (unlabelled reports, calls)
    _skipped("cv", [e for ds in sets.values() for e in ds.errors], [n for ds in sets.values() for n in ds.notes])
    data = [(p, sets[p]) for p in args.data]
    if not any(ds.texts for _, ds in data):
        print("telfilter ml cv: error: no labelled messages in --data", file=sys.stderr)
        return 2
    if args.json:           # never over an input: refused before the splits run, not after
        from ..analyst.export import refuse_overwrite
        from ..analyst.store import StoreError
        try:
            refuse_overwrite(Path(args.json), list(args.data) + list(args.extra))
        except StoreError as e:
            print(f"telfilter ml cv: error: --json {e}", file=sys.stderr)
            return 2
    prog = _progress(args.splits, "ml cv", not args.no_progress and sys.stderr.isatty())
    try:
        res = run(data, [(p, sets[p]) for p in args.extra], args.splits, args.test_size, args.first_split,
                  args.fold_seed, args.target_blocked_ham, prog)
    except ValueError as e:
        print(f"telfilter ml cv: error: {e}", file=sys.stderr)
        return 2
    finally:
        prog.close()
    if args.report:
        res["report"] = str(plot(res, Path(args.report)))
    text = json.dumps(res, indent=2)
    if args.json:
        from ..analyst.export import write_atomic
        write_atomic(Path(args.json), text + "\n")        # whole or not at all (written after minutes of work)
    else:
        print(text)
    print(table(res), file=sys.stderr)
    return 0
