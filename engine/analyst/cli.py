"""`telfilter reports list | show | label | export | tui`."""
from __future__ import annotations

import argparse

import json
import sys
from pathlib import Path

from ..cli_types import whole_number
from .store import LABELS, StoreError, Workspace, printable


def _count(v: str) -> int:
    """A whole number of at least 0 (argparse type)."""
    n = whole_number(v)
    if n < 0:
        raise argparse.ArgumentTypeError(f"must be 0 (all) or more, got {v!r}")
    return n


def add_parser(subs, sub) -> None:
    """Registers `reports` under the top-level parser (`sub` is engine/cli_parser.py's _sub)."""
    p = sub(subs, "reports", "5656 spam reports grouped into campaigns: list, show, label spam/ham, export a "
            "training set, or browse them in a terminal UI (labels go to DATA_DIR/labels.jsonl; reports.jsonl, "
            "which serve appends to, is only read)")
    rs = p.add_subparsers(dest="rcmd", metavar="ACTION", required=True)

    def common(q):
        q.add_argument("--reports", metavar="FILE", help="report store (default DATA_DIR/reports.jsonl; "
                       "labels are kept beside it in labels.jsonl)")
        q.add_argument("--similarity", type=float, default=None, metavar="J",
                       help="word-shingle Jaccard similarity from which two reports are one campaign (default 0.5)")
        q.add_argument("--no-progress", action="store_true", help="no progress bar while reading the store")

    q = sub(rs, "list", "campaigns, largest first: id, reports, label counts, reporters, a sample text")
    common(q)
    q.add_argument("--json", action="store_true", help="one JSON object per campaign (for scripts)")
    q.add_argument("--label", choices=["spam", "ham", "mixed", "unlabelled"], help="only campaigns with this label state")
    q.add_argument("--kind", choices=["S", "V", "FW"], help="only campaigns holding reports of this kind")
    q.add_argument("--min-size", type=int, default=1, metavar="N",
                   help="only campaigns of at least N reports (default 1)")
    q.add_argument("--sort", choices=["size", "recent", "first"], default="size",
                   help="size (default), recent (last report first) or first (store order)")
    q.add_argument("--limit", type=_count, default=0, metavar="N", help="at most N campaigns (0 = all)")
    q = sub(rs, "show", "the reports of campaigns or single reports, as JSON lines")
    common(q)
    q.add_argument("ids", nargs="+", metavar="ID", help="campaign id (c...) or report id (r...); a unique prefix "
                   "of 5+ characters will do")
    q = sub(rs, "label", "label whole campaigns or single reports (appends to labels.jsonl)")
    common(q)
    q.add_argument("label", choices=["spam", "ham", "clear"], help="the label; clear removes one")
    q.add_argument("ids", nargs="+", metavar="ID", help="campaign id (c...) or report id (r...); a unique prefix "
                   "of 5+ characters will do")
    q.add_argument("--only-unlabelled", action="store_true",
                   help="leave reports that already have a label as they are (label what joined a campaign since)")
    q = sub(rs, "export", "write the labelled reports as a training file for `telfilter ml train --data`")
    common(q)
    q.add_argument("--out", required=True, metavar="FILE", help="output file; written atomically ('-' = stdout)")
    q.add_argument("--format", choices=["tsv", "csv", "jsonl"],
                   help="default: from --out's extension (.csv, .jsonl), else tsv")
    q.add_argument("--keep-duplicates", action="store_true",
                   help="one row per report (default: one row per distinct text)")
    q.add_argument("--kind", action="append", choices=["S", "V", "FW"],
                   help="only these report kinds (repeatable; default S and FW: a V report's content describes a call)")
    q = sub(rs, "tui", "browse and label campaigns in a terminal UI (needs the [analyst] extra: textual); "
            "keys: s spam, h ham, c clear, tab campaigns/reports, u only unlabelled, e export, q quit")
    common(q)
    q.add_argument("--export", metavar="FILE", help="where the e key writes the labelled set (default DATA_DIR/labelled.tsv)")


def cmd_reports(args) -> int:
    from ..app import resolve_data_dir
    from ..config import load_settings
    ddir = resolve_data_dir(getattr(args, "data_dir", None),
                            load_settings(getattr(args, "config", None)), seed=False)
    if args.rcmd == "tui":
        if not (sys.stdin.isatty() and sys.stdout.isatty()):
            # textual would draw into a file or wait for keys that never come, and never exit
            print(f"telfilter reports {args.rcmd}: error: `reports tui` needs a terminal (stdin and stdout are not "
                  "both a TTY); without one use `reports list`, `reports show`, `reports label` and `reports export`",
                  file=sys.stderr)
            return 2
        try:
            from .tui import run
        except ImportError:
            print(f"telfilter reports {args.rcmd}: error: `reports tui` needs textual, in the [analyst] extra: "
                  "pip install 'telfilter[analyst]'", file=sys.stderr)
            return 2
    try:
        ws = Workspace(ddir, args.reports, args.similarity,
                       progress=not args.no_progress and sys.stderr.isatty())
    except (StoreError, ValueError) as e:
        print(f"telfilter reports {args.rcmd}: error: {e}", file=sys.stderr)
        return 2
    for e in ws.errors:
        print(f"telfilter reports: skipped bad line: {e}", file=sys.stderr)
    try:
        if args.rcmd == "list":
            return _list(ws, args)
        if args.rcmd == "show":
            return _show(ws, args)
        if args.rcmd == "label":
            n = ws.label(args.ids, None if args.label == "clear" else args.label, args.only_unlabelled)
            print(json.dumps({"labelled": n, "label": args.label, "labels_file": str(ws.labels.path)}))
            return 0
        if args.rcmd == "export":
            return _export(ws, args)
        if args.rcmd == "tui":
            return run(ws, args.export)
    except StoreError as e:
        print(f"telfilter reports {args.rcmd}: error: {e}", file=sys.stderr)
        return 2
    return 1


def json_line(obj) -> str:
    """One JSON line, Vietnamese as written, but every character that is not printable as a \\u escape: JSON
    escapes C0 controls itself, not C1 ones (U+009B is CSI to many terminals), DEL, line separators or direction
    overrides a subscriber's text may hold (the same value to a JSON reader; nothing that drives the terminal)."""
    s = json.dumps(obj, ensure_ascii=False)
    return s if s.isprintable() else "".join(c if c.isprintable() else json.dumps(c)[1:-1] for c in s)


def _list(ws: Workspace, args) -> int:
    rows = []
    for c in ws.ordered_campaigns(args.sort):
        if c.size < args.min_size or (args.label and c.label != args.label) or (
                args.kind and all(r.kind != args.kind for r in c.reports)):
            continue
        rows.append(c.summary())
        if args.limit and len(rows) >= args.limit:
            break
    if args.json:
        for s in rows:
            print(json_line(s))
        return 0
    print(f"{len(ws.reports)} reports in {len(ws.campaigns)} campaigns ({ws.reports_path})")
    print(f"{'CAMPAIGN':<12} {'N':>5} {'SPAM':>5} {'HAM':>5} {'NEW':>5} {'REPORTERS':>9}  SAMPLE")
    for s in rows:
        sample = printable(" ".join(s["sample"].split()))      # an SMS's escape codes never reach the terminal
        print(f"{s['campaign']:<12} {s['reports']:>5} {s['spam']:>5} {s['ham']:>5} {s['unlabelled']:>5} "
              f"{s['reporters']:>9}  {sample[:70]}")
    return 0


def _show(ws: Workspace, args) -> int:
    for ident in args.ids:
        for r in ws.resolve(ident):
            print(json_line({"id": r.id, "campaign": r.campaign, "line": r.line, "label": r.label, "kind": r.kind,
                             "time": r.time, "reporter": r.reporter, "reported": r.reported, "content": r.content}))
    return 0


def _export(ws: Workspace, args) -> int:
    from .export import DEFAULT_KINDS, format_for, labelled_rows, render, without_text, write_atomic
    kinds = tuple(args.kind or DEFAULT_KINDS)
    rows, conflicts = labelled_rows(ws.reports, dedupe=not args.keep_duplicates, kinds=kinds)
    for c in conflicts:
        print(f"telfilter reports export: left out, labelled both ways: {c}", file=sys.stderr)
    empty = without_text(ws.reports, kinds)           # (they vanished from the counts without a word)
    for r in empty:
        print(f"telfilter reports export: left out, no text to train on: {r}", file=sys.stderr)
    text = render(rows, format_for(args.out, args.format))
    if args.out == "-":
        sys.stdout.write(text)
    else:
        write_atomic(Path(args.out), text, keep=(ws.reports_path, ws.labels.path))
    counts = {k: sum(r["label"] == k for r in rows) for k in LABELS}
    print(json.dumps({"out": args.out, "rows": len(rows), **counts, "conflicts": len(conflicts), "no_text": len(empty)}),
          file=sys.stderr if args.out == "-" else sys.stdout)
    return 0
