"""`telfilter ml compare | promote | rollback`: the analyst's side of the classifier (a candidate against the served
model, then installed where serve loads it and hot-swapped; engine/analyst/ does the work)."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from .cli import _skipped, serving_scorer
from .provenance import file_digests, say_trained_on, trained_on
from .model import ModelError, load_scorer


def add_analyst_parsers(ms, sub) -> None:
    """`ml compare | promote | rollback` (registered by engine/cli_parser.py; `sub` is its _sub)."""
    q = sub(ms, "compare", "score the same messages with two or more models: metrics side by side, the messages "
            "whose action changes, plots")
    q.add_argument("--model", action="append", default=[], metavar="DIR",
                   help="model directory (repeatable, the first is the baseline); given once, it is compared "
                        "with the model serve loads ([ml] model of --config, else the bundled one)")
    q.add_argument("--data", action="append", required=True, metavar="FILE",
                   help="messages (repeatable): a labelled TSV/CSV/JSONL or `reports export`, or unlabelled JSONL "
                        "with `text` (a `check` corpus) or `content` (the report store)")
    q.add_argument("--changes", metavar="FILE", help="write the messages whose action changes (.csv, else JSONL)")
    q.add_argument("--report", metavar="DIR", help="write plots (score scatter, per-language rates) here")
    q.add_argument("--no-progress", action="store_true", help="no progress bar")
    q = sub(ms, "promote", "install a model where serve loads it ([ml] model), keep the one before for rollback, "
            "and hot-swap it into a running serve")
    q.add_argument("model", metavar="MODEL", help="model directory to promote (checked before anything changes)")
    q.add_argument("--gate", action="append", default=[], metavar="FILE",
                   help="labelled messages (repeatable; `ml train`'s formats, a `reports export`): install only if, "
                        "in each language, the model drops no more of their ham than the model serve loads, and "
                        "catches no less of their spam less --spam-tolerance; else exit 3, nothing changed (2: it "
                        "could not be measured)")
    q.add_argument("--spam-tolerance", type=float, default=None, metavar="SHARE",
                   help="with --gate: how much less spam (a share, per language) the model may catch than the "
                        "served one (default 0.02)")
    _swap_args(q)
    q = sub(ms, "rollback", "put back the model that was served before the last promote (or rollback), "
            "and hot-swap it into a running serve")
    _swap_args(q)


def _swap_args(q) -> None:
    q.add_argument("--socket", metavar="PATH", help="control socket of the running serve (default DATA_DIR/control.sock)")
    q.add_argument("--no-reload", action="store_true", help="only install; do not tell a running serve")
    q.add_argument("--timeout", type=float, default=60.0, metavar="SECONDS",
                   help="wait this long for serve's answer (default 60)")


def compare(args) -> int:
    from ..analyst.compare import compare as compare_models, plots, read_messages, render_changes
    from ..analyst.export import write_atomic
    dirs = [Path(m) for m in args.model]
    if not dirs:
        print("telfilter ml compare: error: give --model at least once", file=sys.stderr)
        return 2
    keep = []
    if args.changes:        # never over an input, the report store or the label log (replaced, not appended to)
        from ..analyst.export import refuse_overwrite
        from ..analyst.store import LABELS_FILE, REPORTS, StoreError
        keep = [Path(f) for f in args.data] + [Path(f).parent / LABELS_FILE for f in args.data]
        try:
            from ..app import resolve_data_dir
            from ..config import load_settings
            dd = resolve_data_dir(getattr(args, "data_dir", None), load_settings(getattr(args, "config", None)),
                                  seed=False)
            keep += [Path(dd) / REPORTS, Path(dd) / LABELS_FILE]
        except Exception:           # no config or data dir to read: the --data files are still kept
            pass
        try:
            refuse_overwrite(Path(args.changes), keep)
        except StoreError as e:
            print(f"telfilter ml compare: error: --changes {e}", file=sys.stderr)
            return 2
    over = {}
    scorers = [load_scorer(d) for d in dirs]
    if len(dirs) == 1:
        # against the model serve loads: each judged with the thresholds serve would use for it
        # (telfilter.toml's [ml] ones, when set, apply to whatever model is promoted)
        served, sc, over = serving_scorer(args, first_install=True)
        cand = scorers[0]
        over_cand = {}
        for name, v in over.items():
            over_cand[name] = {"telfilter.toml": v["telfilter.toml"], "card": getattr(cand, name)}
            setattr(cand, name, v["telfilter.toml"])
        dirs.insert(0, served)
        scorers.insert(0, sc)
    msgs = read_messages(args.data)
    _skipped("compare", msgs.errors, msgs.notes)
    need = ["sklearn"] * (msgs.labels is not None) + ["matplotlib"] * bool(args.report)
    for mod in need:
        try:
            __import__(mod)
        except ImportError:
            print(f"telfilter ml compare: error: {'plots' if mod == 'matplotlib' else 'metrics on labelled data'} "
                  "need the [train] extra: pip install 'telfilter[train]'", file=sys.stderr)
            return 2
    from .train import _progress
    bar = _progress(len(scorers) * len(msgs.texts), "ml compare",
                    not args.no_progress and sys.stderr.isatty() and len(msgs.texts) > 2000)
    try:
        summary, changed, P, langs = compare_models(scorers, [str(d) for d in dirs], msgs, bar.update)
    finally:
        bar.close()
    if over:                    # the thresholds telfilter.toml sets, not the cards': said per model
        summary["models"][0]["thresholds_overridden"] = over
        summary["models"][1]["thresholds_overridden"] = over_cand
    digests = file_digests(args.data)           # (each file read once, whatever the number of models)
    for d, sc, m in zip(dirs, scorers, summary["models"]):
        seen = trained_on(sc.card, digests)
        say_trained_on("compare", str(d), seen)
        if seen:
            m["in_training_data"] = seen
    if args.changes:
        fmt = "csv" if args.changes.lower().endswith(".csv") else "jsonl"
        write_atomic(Path(args.changes), render_changes(changed, fmt, len(dirs)), keep=keep)
        summary["changes_file"] = args.changes
    if args.report:
        summary["plots"] = [str(Path(args.report) / f) for f in
                            plots(Path(args.report), summary, P, msgs.labels, langs, [str(d) for d in dirs])]
    print(json.dumps(summary, indent=2, ensure_ascii=False))
    return 0


def _thresholds_refused(settings, model_dir) -> str | None:
    """app.threshold_pair_error for the model at `model_dir` (its card's thresholds), None when unreadable
    (install's own checks say why)."""
    from ..app import threshold_pair_error
    if model_dir is None:
        return None
    try:
        th = json.loads((Path(model_dir) / "card.json").read_text(encoding="utf-8"))["thresholds"]
        return threshold_pair_error(settings, float(th["tag"]), float(th["drop"]), model_dir)
    except (OSError, ValueError, KeyError, TypeError):
        return None


GATE_REFUSED = 3        # `ml promote --gate` measured the candidate worse (2: it could not run; a script tells them apart)


def _gate(args, cand: Path):
    """The --gate result for the candidate at `cand` against the model serve loads (both with the thresholds serve
    would judge by, as `ml compare` scores them), or an exit status when it cannot be measured."""
    from ..analyst.compare import compare as compare_models, read_messages
    from ..analyst.gate import SPAM_TOLERANCE, gate
    tol = SPAM_TOLERANCE if args.spam_tolerance is None else args.spam_tolerance
    if not 0 <= tol <= 1:
        print(f"telfilter ml promote: error: --spam-tolerance {tol} is not a share in [0, 1]", file=sys.stderr)
        return 2
    msgs = read_messages(args.gate)
    _skipped("promote --gate", msgs.errors, msgs.notes)
    if msgs.labels is None:
        print("telfilter ml promote: error: --gate needs labelled messages (label spam/ham in every file)",
              file=sys.stderr)
        return 2
    try:
        __import__("sklearn")
    except ImportError:
        print("telfilter ml promote: error: --gate measures with the [train] extra: pip install 'telfilter[train]'",
              file=sys.stderr)
        return 2
    try:
        served, sc, over = serving_scorer(args, first_install=True)
    except ModelError as e:
        print(f"telfilter ml promote: error: --gate cannot measure the served model: {e} (promote without --gate "
              "to replace it)", file=sys.stderr)
        return 2
    cand_sc = load_scorer(cand)
    for name, v in over.items():            # telfilter.toml's thresholds apply to whatever model is promoted
        setattr(cand_sc, name, v["telfilter.toml"])
    summary = compare_models([sc, cand_sc], [str(served), str(cand)], msgs)[0]
    # said as `ml compare` says it: a gate file the candidate was trained on is passed by what it learned (a cron
    # job exporting the labelled reports into both training and gate), its figures no hold-out's
    seen = trained_on(cand_sc.card, file_digests(args.gate))
    say_trained_on("promote --gate", str(cand), seen)
    return {**gate(summary, tol), "served": str(served), "served_version": sc.version, "messages": summary["messages"],
            **({"in_training_data": seen} if seen else {})}


def _notify_serves(target: Path, sock: Path, find: bool, timeout: float, out: dict) -> dict:
    """Tell the serve on `sock` and, with `find`, every serve noted as loading `target` (analyst/serves.py: the one
    serve the promote's own data dir named was often not the one running); the answer the command goes by: a
    refusal first, else a serve's that reloaded, else `sock`'s. Several serves: each one's in out["serves"]."""
    from ..analyst.promote import notify
    from ..analyst.serves import forget, registered
    noted = registered(target) if find else []
    socks = [sock] + [s for s in noted if os.path.abspath(s) != os.path.abspath(sock)]
    answers = {}
    for s in socks:
        a = notify(s, timeout)
        if a["serve"] == "none" and a.get("gone") and s in noted and s != sock:
            forget(target, s)           # a killed serve's note (one that did not answer in time stays: said below)
            continue
        answers[str(s)] = a
    running = [a for a in answers.values() if a["serve"] == "running"]
    ans = next((a for a in running if not a["reloaded"]), None) or (running[0] if running else answers[str(sock)])
    missed = [k for k, a in answers.items() if a["serve"] != "running" and k != str(sock)]
    if len(running) > 1 or missed:
        out["serves"] = answers         # (a noted serve that did not answer in time is named there)
    out["serve"] = ans
    return ans


def promote(args) -> int:
    from ..analyst.promote import versions_dir
    from ..config import load_settings
    settings = load_settings(getattr(args, "config", None))
    what = f"telfilter ml {args.mcmd}"
    if not settings.ml_model and args.mcmd != "promote":
        print(f"{what}: error: {settings.config_dir / 'telfilter.toml'}: [ml] model is not set: serve loads the "
              "bundled model and nothing was promoted, so there is nothing to roll back to", file=sys.stderr)
        return 2
    if not settings.ml_model:
        print(f"{what}: error: {settings.config_dir / 'telfilter.toml'}: [ml] model is not set, so serve loads the "
              "bundled model, which is not replaced; set it, e.g. model = \"/var/lib/telfilter/model\", then run "
              "this command again: it installs the model there and a running serve re-reads [ml] as it reloads (no "
              "restart needed; until a model is there, a restarted serve refuses the path)", file=sys.stderr)
        return 2
    target = Path(settings.ml_model).absolute()       # as serve resolves it: from its working directory
    # one promote or rollback of a model path at a time: two at once each took the other's model for the one to
    # keep (rollback to a model neither meant, a refused model put back over the other's)
    from ..lists.journal import flocked
    try:
        with flocked(versions_dir(target) / ".lock", wait=False) as mine:
            if not mine:
                print(f"{what}: error: {target}: another `telfilter ml promote` or `rollback` of this model path is "
                      "running; nothing changed (run this again when it has finished)", file=sys.stderr)
                return 2
            return _promote_locked(args, settings, what, target)
    except OSError as e:
        print(f"{what}: error: {getattr(e, 'filename', '') or target}: {e.strerror or e}", file=sys.stderr)
        return 2


def _promote_locked(args, settings, what: str, target: Path) -> int:
    from ..analyst.promote import PromoteError, coverage_warnings, install, previous, put_back, rollback
    from ..app import resolve_data_dir
    from ..control import default_socket
    incoming = Path(args.model) if args.mcmd == "promote" else previous(target)
    why = _thresholds_refused(settings, incoming)
    if why:             # serve would refuse it (now, or at its next start): nothing is installed
        print(f"{what}: error: {why}", file=sys.stderr)
        return 2
    gated = None
    if args.mcmd == "promote" and args.gate:
        gated = _gate(args, Path(args.model))
        if isinstance(gated, int):
            return gated
        if not gated["passed"]:
            print(json.dumps({"model": args.model, "installed": False, "gate": gated}, indent=2, ensure_ascii=False))
            print(f"{what}: error: refused by --gate, nothing changed: " + "; ".join(gated["reasons"]),
                  file=sys.stderr)
            return GATE_REFUSED
    warnings = coverage_warnings(Path(args.model), target) if args.mcmd == "promote" else []
    prev_before = previous(target)          # what `previous` names until this command: put back if serve refuses
    try:
        out = install(Path(args.model), target) if args.mcmd == "promote" else rollback(target)
    except PromoteError as e:
        print(f"{what}: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"{what}: error: {getattr(e, 'filename', '') or target}: {e.strerror or e}", file=sys.stderr)
        return 2
    for w in warnings:              # said, not refused: the analyst may mean it
        print(f"{what}: warning: {w}", file=sys.stderr)
    if out.get("already_installed"):
        print(f"{what}: {args.model} is the model installed at {target} already: no copy made, the model before it "
              f"({out['previous_version'] or 'none'}) is still the one `ml rollback` puts back", file=sys.stderr)
    if warnings:
        out["warnings"] = warnings
    if gated is not None:
        out["gate"] = gated
    if args.no_reload:
        print(json.dumps(out, indent=2))
        return 0
    sock = Path(args.socket) if args.socket else default_socket(
        resolve_data_dir(getattr(args, "data_dir", None), settings, seed=False))
    ans = _notify_serves(target, sock, args.socket is None, args.timeout, out)
    if ans["serve"] == "running" and not ans["reloaded"] and out.get("already_installed"):
        print(json.dumps(out, indent=2))        # nothing was swapped by this command: nothing to put back
        print(f"{what}: error: the running serve refused the model and keeps its old one; {target} is as it was "
              f"(this model was installed there before): {ans['error']}", file=sys.stderr)
        return 1
    if ans["serve"] == "running" and not ans["reloaded"]:
        # serve keeps its old model; put the files back so a restart does not load the refused one
        try:
            if args.mcmd == "promote":
                put_back(target, out, prev_before)
            else:
                rollback(target, check=False)   # a rollback refused: swapped forward again
            out["rolled_back"] = True
        except PromoteError as e:           # nothing was there before this promote
            out["rolled_back"] = False
            print(f"{what}: warning: {e}", file=sys.stderr)
        print(json.dumps(out, indent=2))
        print(f"{what}: error: the running serve refused the model and keeps its old one; the model path points "
              f"at that one again: {ans['error']}", file=sys.stderr)
        return 1
    print(json.dumps(out, indent=2))
    if ans["serve"] == "none":
        print(f"{what}: installed; {ans['error']}: serve loads it when it starts", file=sys.stderr)
    elif ans["model_version"] is None and not settings.ml_enabled:
        print(f"{what}: error: installed at {target}, but {settings.config_dir / 'telfilter.toml'} has [ml] "
              "enabled = false, so serve judges without a model (`telfilter ctl stats`: model version null); set "
              "enabled = true and run `telfilter ctl reload model` to put this one in force", file=sys.stderr)
        return 1
    elif ans["model_version"] != out["model_version"]:
        print(f"{what}: error: serve reloaded but reports model {ans['model_version']!r}, not "
              f"{out['model_version']!r} (does its [ml] model name {target}?)", file=sys.stderr)
        return 1
    return 0
