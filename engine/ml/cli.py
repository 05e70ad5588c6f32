"""`telfilter ml train | eval | predict`."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from .data import DataError, read_all, read_labelled
from .model import ModelError, default_model_dir, load_scorer


def _read_all(paths):
    texts, labels, infos, errors = [], [], [], []
    for p in paths:
        t, l, info, errs = read_labelled(p)
        texts += t
        labels += l
        infos.append(info)
        errors += errs
    return texts, labels, infos, errors


def cmd_ml(args) -> int:
    try:
        if args.mcmd == "train":
            return _train(args)
        if args.mcmd == "eval":
            return _eval(args)
        if args.mcmd == "predict":
            return _predict(args)
    except (DataError, ModelError) as e:
        print(f"telfilter ml: error: {e}", file=sys.stderr)
        return 2
    return 1


def _train(args) -> int:
    from .train import train
    texts, labels, infos, errors = _read_all(args.data)
    for e in errors:
        print(f"telfilter ml train: skipped bad line: {e}", file=sys.stderr)
    if not texts:
        print("telfilter ml train: error: no labelled messages in the data", file=sys.stderr)
        return 2
    log = lambda m: print(m, file=sys.stderr)
    try:
        card, _ = train(texts, labels, infos, Path(args.out), args.target_blocked_ham, args.seed,
                        progress=not args.no_progress and sys.stderr.isatty(), log=log)
    except ValueError as e:
        print(f"telfilter ml train: error: {e}", file=sys.stderr)
        return 2
    print(json.dumps({"model": str(args.out), "model_version": card["model_version"],
                      "thresholds": card["thresholds"], "validation": card["metrics"]["validation"]}, indent=2))
    return 1 if errors else 0


def serving_model_dir(args) -> Path:
    """The model `serve` would load with this --config: [ml] model, else the bundled one."""
    from ..config import ConfigError, load_settings
    try:
        s = load_settings(getattr(args, "config", None))
    except ConfigError as e:
        raise ModelError(str(e)) from None
    return Path(s.ml_model) if s.ml_model else default_model_dir()


def _eval(args) -> int:
    from .features import language
    from .train import breakdown, metrics
    mdir = Path(args.model) if args.model else serving_model_dir(args)
    sc = load_scorer(mdir)
    ds, _ = read_all(args.data)
    for e in ds.errors:
        print(f"telfilter ml eval: skipped bad line: {e}", file=sys.stderr)
    if not ds.texts:
        print("telfilter ml eval: error: no labelled messages", file=sys.stderr)
        return 2
    y = np.array(ds.labels, dtype=bool)
    p = np.array([sc.score(t) for t in ds.texts])
    m = metrics(p, y, sc.drop_threshold)
    m["model"] = str(mdir)
    m["model_version"] = sc.version
    m["tag_threshold"] = sc.tag_threshold
    # per language (the data's `lang` column, else as the scorer detects it) and per `kind`
    langs = [g or language(t) for g, t in zip(ds.langs, ds.texts)]
    m["by_language"] = breakdown(p, y, sc.drop_threshold, langs)
    if any(ds.kinds):
        m["by_kind"] = breakdown(p, y, sc.drop_threshold, ds.kinds)
    if args.report:
        m["report"] = str(write_report(Path(args.report), p, y, m, sc))
    print(json.dumps(m, indent=2))
    return 0


def write_report(d: Path, p, y, m, sc) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import precision_recall_curve, roc_curve
    d.mkdir(parents=True, exist_ok=True)
    if len(set(y)) > 1:
        pr, rc, _ = precision_recall_curve(y, p)
        fig, ax = plt.subplots(figsize=(6, 4.5))
        ax.plot(rc, pr)
        ax.scatter([m["recall"]], [m["precision"]], color="red", zorder=3, label=f"drop threshold {sc.drop_threshold:.3f}")
        ax.set(xlabel="recall (spam caught)", ylabel="precision", title="Precision-recall", xlim=(0, 1.01), ylim=(0, 1.01))
        ax.legend(loc="lower left"); ax.grid(alpha=.3)
        fig.tight_layout(); fig.savefig(d / "precision_recall.png", dpi=110); plt.close(fig)
        fpr, tpr, _ = roc_curve(y, p)
        fig, ax = plt.subplots(figsize=(6, 4.5))
        ax.plot(fpr, tpr, label=f"AUC {m['roc_auc']:.4f}")
        ax.scatter([m["blocked_ham_rate"]], [m["recall"]], color="red", zorder=3, label="drop threshold")
        ax.set_xscale("symlog", linthresh=1e-3)
        ax.set(xlabel="blocked ham rate (false positive rate, symlog)", ylabel="spam caught rate", title="ROC")
        ax.legend(loc="lower right"); ax.grid(alpha=.3)
        fig.tight_layout(); fig.savefig(d / "roc.png", dpi=110); plt.close(fig)
    fig, ax = plt.subplots(figsize=(6, 4.5))
    bins = np.linspace(0, 1, 41)
    ax.hist(p[~y], bins=bins, alpha=.6, label=f"ham ({int((~y).sum())})", log=True)
    ax.hist(p[y], bins=bins, alpha=.6, label=f"spam ({int(y.sum())})", log=True)
    ax.axvline(sc.tag_threshold, color="orange", ls="--", label="tag")
    ax.axvline(sc.drop_threshold, color="red", ls="--", label="drop")
    ax.set(xlabel="spam probability", ylabel="messages (log)", title="Score histogram per class")
    ax.legend(); fig.tight_layout(); fig.savefig(d / "score_histogram.png", dpi=110); plt.close(fig)
    c = m["confusion"]
    md = f"""# Model evaluation: {sc.version}

| metric | value |
|---|---|
| MCC | {m['mcc']:.4f} |
| precision | {m['precision']:.4f} |
| recall (spam caught) | {m['recall']:.4f} |
| F1 | {m['f1']:.4f} |
| accuracy | {m['accuracy']:.4f} |
| blocked ham rate | {m['blocked_ham_rate']:.4%} |
| ROC AUC | {m['roc_auc'] if m['roc_auc'] is None else round(m['roc_auc'], 5)} |

At the drop threshold {sc.drop_threshold:.4f} (tag threshold {sc.tag_threshold:.4f}) on {m['n']} messages
({m['spam']} spam, {m['ham']} ham). Confusion: TP {c['tp']}, FP {c['fp']}, FN {c['fn']}, TN {c['tn']}.

![precision-recall](precision_recall.png) ![ROC](roc.png) ![histogram](score_histogram.png)
"""
    (d / "summary.md").write_text(md, encoding="utf-8")
    return d


def _predict(args) -> int:
    sc = load_scorer(Path(args.model))
    if args.text is not None:
        p = sc.score(args.text)
        print(json.dumps({"probability": round(p, 6), "action": sc.action(p), "model_version": sc.version}, ensure_ascii=False))
        return 0
    inp = sys.stdin if args.jsonl == "-" else open(args.jsonl, encoding="utf-8")
    bad = 0
    with inp:
        for i, line in enumerate(inp, 1):
            if not line.strip():
                continue
            try:
                o = json.loads(line)
                t = o["text"] if isinstance(o, dict) else None
                if not isinstance(t, str):
                    raise ValueError("needs a string `text` field")
            except (ValueError, KeyError) as e:
                print(json.dumps({"line": i, "error": str(e) if isinstance(e, ValueError) else "needs a `text` field"}))
                bad += 1
                continue
            p = sc.score(t)
            out = {"id": o.get("id")} if "id" in o else {}
            out.update(probability=round(p, 6), action=sc.action(p))
            print(json.dumps(out, ensure_ascii=False))
    return 0
