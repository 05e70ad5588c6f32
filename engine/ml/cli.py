"""`telfilter ml train | eval | predict` (`ml cv`: cv.py; `compare | promote | rollback`: analyst_cli.py)."""
from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from ..durable import process_umask
from .data import DataError, read_all
from .provenance import say_trained_on, trained_on
from .model import ModelError, default_model_dir, load_scorer
from .thresholds import shown


def cmd_ml(args) -> int:
    try:
        if args.mcmd == "train":
            return _train(args)
        if args.mcmd == "eval":
            return _eval(args)
        if args.mcmd == "cv":
            from .cv import cmd
            return cmd(args)
        if args.mcmd == "predict":
            return _predict(args)
        if args.mcmd == "compare":
            from .analyst_cli import compare
            return compare(args)
        if args.mcmd in ("promote", "rollback"):
            from .analyst_cli import promote
            return promote(args)
    except (DataError, ModelError) as e:
        print(f"telfilter ml {args.mcmd}: error: {e}", file=sys.stderr)
        return 2
    return 1


SHOWN_ERRORS = 1000       # as `lists import`: the first 1,000 bad lines, then a count


def _skipped(what: str, errors, notes=()) -> None:
    """Bad input lines as FILE:LINE: why, the first SHOWN_ERRORS of them, then how many more (a verdict log
    or another file of the wrong kind given as --data must not print millions of lines); then what each file
    left out on purpose (unlabelled reports, call records), counted."""
    for e in errors[:SHOWN_ERRORS]:
        print(f"telfilter ml {what}: skipped bad line: {e}", file=sys.stderr)
    if len(errors) > SHOWN_ERRORS:
        print(f"telfilter ml {what}: ... and {len(errors) - SHOWN_ERRORS} more bad lines skipped "
              f"({len(errors)} in all)", file=sys.stderr)
    for n in notes:
        print(f"telfilter ml {what}: {n}", file=sys.stderr)


def _train(args) -> int:
    from .train import train
    ds, infos = read_all(args.data)
    texts, labels, errors = ds.texts, ds.labels, ds.errors
    _skipped("train", errors, ds.notes)
    if not texts:
        print("telfilter ml train: error: no labelled messages in the data", file=sys.stderr)
        return 2
    log = lambda m: print(m, file=sys.stderr)
    out = Path(args.out) if args.out else None
    why = _protected_out(out, args) if out is not None else None
    if why:
        print(f"telfilter ml train: error: --out {out}: {why}; write the candidate to a new directory (without "
              "--out: DATA_DIR/models/<model_version>) and install it with `telfilter ml promote`",
              file=sys.stderr)
        return 2
    if out is None:
        # A candidate beside the served model, never over it: it is written under a private name and
        # renamed to its model_version when complete (no half-written candidate under a real name).
        models = _data_dir(args) / "models"
        models.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=".training-", dir=models))
    try:
        card, _ = train(texts, labels, infos, out or work, args.target_blocked_ham, args.seed,
                        progress=not args.no_progress and sys.stderr.isatty(), log=log)
    except ValueError as e:
        print(f"telfilter ml train: error: {e}", file=sys.stderr)
        return 2
    finally:
        if out is None and not (work / "card.json").exists():
            shutil.rmtree(work, ignore_errors=True)
    if out is None:
        out = models / card["model_version"]
        n = 1
        while out.exists():                  # two trainings in the same second
            n += 1
            out = models / f"{card['model_version']}-{n}"
        # mkdtemp's 0700 would hide it from a serve running as another user: a mkdir's mode, as the files in it
        # (0755 was listable by all under the unit's UMask=0027)
        work.chmod(0o777 & ~process_umask())
        work.rename(out)
    print(json.dumps({"model": str(out), "model_version": card["model_version"],
                      "thresholds": card["thresholds"], "validation": card["metrics"]["validation"]}, indent=2))
    print(f"telfilter ml train: wrote {out}; evaluate it with `telfilter ml eval --model {out} --data FILE`, "
          f"compare it with `telfilter ml compare --model {out} --data FILE`, install it with "
          f"`telfilter ml promote {out}`", file=sys.stderr)
    return 1 if errors else 0


def _settings(args):
    """The Settings of this --config (a ConfigError said as a ModelError, as every `ml` command says its errors)."""
    from ..config import ConfigError, load_settings
    try:
        return load_settings(getattr(args, "config", None))
    except ConfigError as e:
        raise ModelError(str(e)) from None


def _data_dir(args) -> Path:
    from ..app import resolve_data_dir
    settings = _settings(args)
    return resolve_data_dir(getattr(args, "data_dir", None), settings, seed=False)


def _protected_out(out: Path, args) -> str | None:
    """Why `ml train --out` must not write into `out`, or None. Training writes its files in place: into
    the model serve loads it would put an unchecked model in force at the next reload or restart, and
    into a promoted version it would make the rollback history lie (a version directory holding
    another model). The bundled model is the fallback of every install."""
    from ..analyst.promote import versions_holding
    try:
        real = out.resolve()
    except (OSError, RuntimeError):
        return None
    if real == default_model_dir().resolve():
        return "that is the bundled model"
    try:
        served = serving_model_dir(args)
    except ModelError:
        served = None
    why = _served_out(out, real, served) if served is not None else None
    vd = versions_holding(out)
    # whatever --config names: a promote's layout says what the directory is (with the shipped config, a train
    # into /var/lib/telfilter/model rewrote the model in force there)
    return why or (f"that is inside {vd}, the promoted models kept for rollback (one of them the model serve "
                   "loads)" if vd is not None else None)


def _served_out(out: Path, real: Path, served: Path) -> str | None:
    """Why `out` is the model serve loads with this --config, or one kept for its rollback; None when neither."""
    from ..analyst.promote import versions_dir
    if served.absolute() == out.absolute() or (served.exists() and served.resolve() == real):
        return "that is the model serve loads ([ml] model)"
    vd = versions_dir(served.absolute())
    try:
        if vd.exists() and real.is_relative_to(vd.resolve()):
            return f"that is inside {vd}, the promoted models kept for rollback"
    except OSError:
        return None
    return None


def serving_scorer(args, first_install: bool = False):
    """(directory, scorer) of the model serve would load with this --config, with the thresholds serve
    judges by: telfilter.toml's [ml] tag_threshold / drop_threshold when set, else the card's. The
    third item names the overrides ({} when the card's thresholds are used). `first_install`: an [ml] model
    path with nothing there yet (before a first `ml promote`) reads as the bundled model, which it replaces
    (`ml promote --gate`, `ml compare` and `ml eval` alike: the README's "the model serve loads")."""
    s = _settings(args)
    d = Path(s.ml_model) if s.ml_model and not (first_install and _nothing_at(Path(s.ml_model))) \
        else default_model_dir()
    who = f"telfilter ml {getattr(args, 'mcmd', '')}".rstrip()    # the command run, as its other lines say
    if s.ml_model and d != Path(s.ml_model):
        print(f"{who}: note: nothing is installed at [ml] model {s.ml_model} yet (`telfilter ml promote` "
              f"puts a model there): measuring the bundled model, {d}, which it replaces", file=sys.stderr)
    sc = load_scorer(d)
    if not s.ml_enabled:
        # measured all the same (the model it loads once enabled), but said: serve judges with no model now
        print(f"{who}: warning: {s.config_dir / 'telfilter.toml'}: [ml] enabled = false, so serve judges "
              f"without a model; these figures are for {d}, which it loads once [ml] enabled = true",
              file=sys.stderr)
    from ..app import threshold_pair_error
    why = threshold_pair_error(s, sc.tag_threshold, sc.drop_threshold, d)
    if why:                 # serve refuses this pair: judging by it would measure a filter that never runs
        raise ModelError(why)
    over = {}
    for name in ("tag_threshold", "drop_threshold"):
        v = getattr(s, f"ml_{name}")
        if v is not None:
            over[name] = {"telfilter.toml": float(v), "card": getattr(sc, name)}
            setattr(sc, name, float(v))
    return d, sc, over


def _nothing_at(d: Path) -> bool:
    """Whether no model was installed at `d`: nothing there, or an empty directory (made ready for the first
    `ml promote`, which was measured as a broken model: --gate refused the first promote, "not a model directory")."""
    try:
        return not d.exists() or d.is_dir() and next(d.iterdir(), None) is None
    except OSError:
        return False


def serving_model_dir(args) -> Path:
    """The model `serve` would load with this --config: [ml] model, else the bundled one."""
    s = _settings(args)
    return Path(s.ml_model) if s.ml_model else default_model_dir()


def _eval(args) -> int:
    from .features import language
    from .train import breakdown, metrics
    over = {}
    if args.model:
        mdir = Path(args.model)
        sc = load_scorer(mdir)
    else:                       # as serve judges: [ml] thresholds of telfilter.toml win over the card's
        mdir, sc, over = serving_scorer(args, first_install=True)
    ds, infos = read_all(args.data)
    _skipped("eval", ds.errors, ds.notes)
    seen = trained_on(sc.card, {str(a): i["sha256"] for a, i in zip(args.data, infos)})     # (hashed as read)
    say_trained_on("eval", str(mdir), seen)
    if not ds.texts:
        print("telfilter ml eval: error: no labelled messages", file=sys.stderr)
        return 2
    y = np.array(ds.labels, dtype=bool)
    p = np.array([sc.score(t) for t in ds.texts])
    m = metrics(p, y, sc.drop_threshold)
    m["model"] = str(mdir)
    m["model_version"] = sc.version
    m["tag_threshold"] = sc.tag_threshold
    if over:
        m["thresholds_overridden"] = over
    if seen:
        m["in_training_data"] = seen
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
    if len(set(y)) == 1:
        # no curve for one class: an earlier run's curves into this directory stayed beside this summary, another
        # model's or data's figures read as these
        for f in ("precision_recall.png", "roc.png"):
            (d / f).unlink(missing_ok=True)
    else:
        pr, rc, _ = precision_recall_curve(y, p)
        fig, ax = plt.subplots(figsize=(6, 4.5))
        ax.plot(rc, pr)
        if m["precision"] is not None:          # (None: the threshold drops nothing, a point with no precision)
            ax.scatter([m["recall"]], [m["precision"]], color="red", zorder=3,
                       label=f"drop threshold {sc.drop_threshold:.3f}")
            ax.legend(loc="lower left")         # (none to show without it: matplotlib warned on stderr)
        ax.set(xlabel="recall (spam caught)", ylabel="precision", title="Precision-recall", xlim=(0, 1.01), ylim=(0, 1.01))
        ax.grid(alpha=.3)
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
    groups = _group_plot(d, m, plt)
    c = m["confusion"]
    # a figure with nothing to count (no spam: caught, precision, MCC; no ham: blocked ham) is a dash, as in the
    # per-language rows, not a 0 that reads as "catches nothing"; only the plots written are linked
    images = ("![precision-recall](precision_recall.png) ![ROC](roc.png) " if len(set(y)) > 1 else "") + \
        "![histogram](score_histogram.png)"
    md = f"""# Model evaluation: {sc.version}

| metric | value |
|---|---|
| MCC | {shown(m['mcc'], '.4f')} |
| precision | {shown(m['precision'], '.4f')} |
| recall (spam caught) | {shown(m['recall'], '.4f')} |
| F1 | {shown(m['f1'], '.4f')} |
| accuracy | {shown(m['accuracy'], '.4f')} |
| blocked ham rate | {shown(m['blocked_ham_rate'], '.4%')} |
| ROC AUC | {shown(m['roc_auc'], '.5f')} |

At the drop threshold {sc.drop_threshold:.4f} (tag threshold {sc.tag_threshold:.4f}) on {m['n']} messages
({m['spam']} spam, {m['ham']} ham). Confusion: TP {c['tp']}, FP {c['fp']}, FN {c['fn']}, TN {c['tn']}.

{images}
"""
    for key, title in (("by_language", "Per language"), ("by_kind", "Per kind")):
        if m.get(key):
            md += (f"\n## {title}\n\n| {key[3:]} | messages | spam | spam caught | blocked ham | MCC |\n"
                   "|---|---|---|---|---|---|\n" + "".join(_group_row(g, r) for g, r in m[key].items()))
    if groups:
        md += "\n![per language](per_language.png)\n"
    (d / "summary.md").write_text(md, encoding="utf-8")
    return d


def _group_row(g, r) -> str:
    """One summary.md row; a rate with nothing to count (no spam, no ham) shows as a dash."""
    return (f"| {g} | {r['n']} | {r['spam']} | {shown(r['spam_caught_rate'], '.2%')} | "
            f"{shown(r['blocked_ham_rate'], '.3%')} | {shown(r['mcc'], '.4f')} |\n")


def _group_plot(d: Path, m: dict, plt) -> bool:
    """per_language.png: spam caught and blocked ham of each language at the drop threshold,
    beside the targets (issue 15: Vietnamese >= 85% caught at <= 1% blocked, English <= 0.2%)."""
    by = m.get("by_language") or {}
    if not by:
        return False
    names = list(by)
    x = np.arange(len(names))
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(8, 3.8))
    # a language with no spam (no ham) has no bar there, and no figure over it
    caught = [(by[g]["spam_caught_rate"] or 0) * 100 for g in names]
    blocked = [(by[g]["blocked_ham_rate"] or 0) * 100 for g in names]
    a1.bar(x, caught, color="tab:green")
    a1.axhline(85, color="grey", ls="--", lw=1, label="85% (vi target)")
    a1.set(xticks=x, xticklabels=[f"{g}\nMCC {shown(by[g]['mcc'], '.3f')}" for g in names], ylabel="%", ylim=(0, 100),
           title="spam caught")
    a2.bar(x, blocked, color="tab:red")
    for lvl, lab in ((1.0, "1% (vi)"), (0.2, "0.2% (en)")):
        a2.axhline(lvl, color="grey", ls="--", lw=1)
        a2.text(len(names) - 0.5, lvl, lab, va="bottom", ha="right", fontsize=8)
    a2.set(xticks=x, xticklabels=[f"{g}\n{by[g]['confusion']['fp']}/{by[g]['ham']} ham" for g in names], ylabel="%",
           ylim=(0, max(2.0, max(blocked) * 1.2)), title="blocked ham")
    for ax, key, fmt in ((a1, "spam_caught_rate", "{:.1f}"), (a2, "blocked_ham_rate", "{:.2f}")):
        for i, g in enumerate(names):
            if by[g][key] is not None:
                ax.text(i, by[g][key] * 100, fmt.format(by[g][key] * 100), ha="center", va="bottom", fontsize=8)
    a1.legend(loc="lower right", fontsize=8)
    fig.suptitle("Per language, at the drop threshold")
    fig.tight_layout(); fig.savefig(d / "per_language.png", dpi=110); plt.close(fig)
    return True


def _predict(args) -> int:
    # without --model, as serve judges (eval's default too): [ml] model and thresholds, else the bundled model
    sc = load_scorer(Path(args.model)) if args.model else serving_scorer(args, first_install=True)[1]
    from .predict_extras import Exemptions, explained
    exempt = Exemptions(args)
    if args.text is not None:
        p = sc.score(args.text)
        out = {"probability": round(p, 6), "action": sc.action(p), "model_version": sc.version}
        if args.explain is not None:
            out.update(explained(sc, args.text, args.explain))
        out.update(exempt.of(args.sender))
        print(json.dumps(out, ensure_ascii=False))
        return 0
    # read as `check --jsonl` reads (jsonl.py): a line that is not UTF-8 or not JSON costs its line an error
    # record, not the run a traceback
    from ..jsonl import NOT_JSON_ID, dumps_line, echoed_id, error_line, loads, not_json, numbered, open_jsonl
    bad = 0
    with open_jsonl(args.jsonl) as inp:
        for i, line in numbered(inp):
            o = None
            try:
                o = loads(line)
                t = o.get("text") if isinstance(o, dict) else None
                if not isinstance(t, str):
                    raise ValueError("needs a string `text` field")
                if not t.strip():       # as ml train's "empty text": the model's bias is no score of a message
                    raise ValueError("empty text: there is nothing to score")
                if not_json(o.get("id")):          # written back: NaN, Infinity are no JSON
                    raise ValueError(NOT_JSON_ID)
            except ValueError as e:
                sys.stdout.write(error_line(i, echoed_id(o, e), str(e)))      # its id too, as check --jsonl's
                bad += 1
                continue
            p = sc.score(t)
            out = {"id": o.get("id")} if "id" in o else {}
            out.update(probability=round(p, 6), action=sc.action(p), model_version=sc.version)
            if args.explain is not None:
                out.update(explained(sc, t, args.explain))
            out.update(exempt.of(o.get("sender")))
            sys.stdout.write(dumps_line(out, i))
    return 0
