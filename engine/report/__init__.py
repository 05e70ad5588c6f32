"""`telfilter report`: the regulator's report (Decision 1609/QĐ-BTTTT task IV.8) from verdict logs.

    telfilter report --log verdicts.log* [--reports DATA/reports.jsonl] [--from 2026-01-01]
                     [--to 2026-12-31] [--period day|week|month] --out DIR

reads the logs `serve --log` writes (plain or rotated/compressed, streamed: a year of logs
is never in memory) and writes into DIR:

    summary.json   the contract: totals {sms|call: {allow, tag, drop, refuse: n}}, symbols {SYMBOL: n},
                   dnc {registered, cancelled}, reports {S, V, FW}, from, to (dates in `timezone`,
                   the configured [engine] timezone, inclusive);
                   beside them dnc_by_channel, top_senders_by_drops, top_owners_by_drops,
                   advertising_by_owner, models, period, inputs (files, malformed lines),
                   late_parts and late_parts_untied (lines of late parts of concatenated messages: each
                   counted with its message, the one its `"concat"` names; aggregate.py, late.py),
                   shortcode_redeliveries (lines of 5656 commands the SMSC delivered again, `"redelivery":
                   true`: counted by their first delivery's line, smpp_proxy/mo_redelivery.py),
                   scheduled_ads_cancelled {cancelled, refused_by_smsc} (ads scheduled ahead whose
                   recipient registered DK DNC before their delivery: the `"kind": "cancel"` lines)
                   calls_unsent and calls_unsent_untied (calls let through that never left, the
                   `"kind": "call_unsent"` lines: each counted under call/refuse and out of the advertising
                   volume, tied to its call's line; unsent.py)
    *.csv          one file per table (totals, symbols, dnc, reports, volume_by_period, ...)
    *.png          volume by action over time, top symbols, DNC changes over time, reports by kind
    report.html    all of it on one printable page (report.pdf too when wkhtmltopdf is installed)

Reading: reader.py; counting: aggregate.py; writing: render.py.
"""
from __future__ import annotations

import os
import stat
import sys
from datetime import date, datetime, timezone
from pathlib import Path

from ..cli_types import date_order_error
from .aggregate import Aggregator
from .logfiles import distinct_logs, hold_room
from .reader import Malformed, read_reports, read_verdicts
from .render import OUTPUTS, clear_outputs, plots, tables, write_csvs, write_html, write_pdf, write_summary

__all__ = ["make_report", "cmd_report", "Aggregator", "OUTPUTS"]


def make_report(logs, out: Path, tz, reports: str | None = None, start: date | None = None,
                end: date | None = None, period: str = "day", lists=None, progress: bool = True,
                top: int = 20, with_plots: bool = True) -> dict:
    """Read, count and write; returns the summary (as written to summary.json)."""
    out = Path(out)
    read, repeated = distinct_logs(logs)
    for p in [*read, *([reports] if reports is not None else [])]:
        # a missing or unreadable input said at once: a --reports store that is not there was said after a year of
        # logs had been read (minutes), and --out was made for nothing. A pipe (`--log <(zcat …)`, a FIFO) is not
        # opened twice: its writer could see its reader gone
        mode = os.stat(p).st_mode if p != "-" else 0
        if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
            with open(p, "rb"):         # (a directory: IsADirectoryError)
                pass
    _refuse_inputs_in_out([*read, *([reports] if reports is not None else [])], out)
    hold_room(read)                     # (read_verdicts checks it too: here before --out is made)
    out.mkdir(parents=True, exist_ok=True)
    bad = Malformed()
    agg = Aggregator(tz, period, start, end, lists=lists, reports_from_log=reports is None)
    for ts, rec in read_verdicts(read, bad, progress=progress):
        agg.add_verdict(ts, rec)
    if reports is not None:
        for ts, rec in read_reports(reports, bad):
            agg.add_report(ts, rec)
    summary = agg.summary(top)
    inputs = {"logs": [str(p) for p in read], "repeated_logs": repeated, "reports": reports,
              "reports_source": (f"5656 report store {reports}" if reports is not None
                                 else "SPAM_REPORTED / AD_COPY_RECEIVED hits in the verdict logs"),
              "owners_from": "sender registry in the data dir" if lists is not None else None,
              "malformed": bad.count, "malformed_lines": bad.shown,
              "generated": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    summary["inputs"] = inputs
    tabs = tables(agg, summary)
    clear_outputs(out, tabs)
    files = write_csvs(out, tabs)
    pngs = plots(out, agg, summary) if with_plots else []
    html_path = write_html(out, summary, tabs, pngs, inputs)
    pdf, pdf_failed = write_pdf(html_path)
    if pdf_failed:
        inputs["pdf_failed"] = pdf_failed
    inputs["files"] = ["summary.json", "report.html"] + (["report.pdf"] if pdf else []) + files + pngs
    write_summary(out, summary)
    return summary


def _refuse_inputs_in_out(inputs, out: Path) -> None:
    """A log or store that is one of the files the report writes (`--log report/summary.json --out report`) was
    read, then replaced by the report: refused before anything is read, as `check --out` refuses its input."""
    for p in inputs:
        for name in OUTPUTS:
            try:
                same = p != "-" and os.path.samefile(p, out / name)
            except OSError:         # (not there: nothing to replace)
                same = False
            if same:
                raise OSError(f"--out {out}: its {name} is {p}, which this command only reads; nothing written "
                              "(give another --out, or move the file)")


def cmd_report(args) -> int:
    from ..config import default_data_dir, load_settings
    from ..lists import ListStore
    settings = load_settings(getattr(args, "config", None))
    start, end = args.date_from, args.date_to          # (cli_types.day: parsed by argparse, as verdicts' are)
    if why := date_order_error(start, end):
        print(f"telfilter report: error: {why}", file=sys.stderr)
        return 2
    lists = None
    # owners come from the sender registry of the data dir when there is one (never seeded here)
    data_dir = getattr(args, "data_dir", None) or default_data_dir()
    if (Path(data_dir) / "lists").exists():
        store = ListStore(Path(data_dir))
        lists = store.load()
        for w in store.warnings:
            print(f"telfilter: warning: {w}", file=sys.stderr)
    try:
        import matplotlib  # noqa: F401
        with_plots = True
    except ImportError:             # a serve-only node (no [train] extra) still writes the regulator's report
        with_plots = False
        print("telfilter report: warning: matplotlib is not installed (the [train] extra: pip install "
              "'telfilter[train]'): summary.json, the CSV files and report.html are written without plots",
              file=sys.stderr)
    s = make_report(args.log, Path(args.out), settings.tz, reports=args.reports, start=start, end=end,
                    period=args.period, lists=lists, progress=not args.no_progress, top=args.top,
                    with_plots=with_plots)
    if "pdf_failed" in s["inputs"]:
        print(f"telfilter report: warning: {s['inputs']['pdf_failed']}", file=sys.stderr)
    for line in s["inputs"]["repeated_logs"]:
        print(f"telfilter report: warning: log named twice, read once: {line}", file=sys.stderr)
    for line in s["inputs"]["malformed_lines"]:
        print(f"telfilter report: malformed line skipped: {line}", file=sys.stderr)
    more = s["inputs"]["malformed"] - len(s["inputs"]["malformed_lines"])
    if more > 0:
        print(f"telfilter report: ... and {more} more malformed lines (counted in summary.json)", file=sys.stderr)
    t = s["totals"]

    def counts(d):
        return ", ".join(f"{k} {v:,}" for k, v in d.items())
    span = f"from {s['from']} to {s['to']}" if s["records"] else "(no records in the period)"
    if s["outside_period"]:     # logs of another month, or a --from/--to typed wrong: said, not only in the HTML
        span += f" ({s['outside_period']:,} lines outside --from/--to left out)"
    print(f"telfilter report: {s['records']:,} records {span}: sms: {counts(t['sms'])}; call: {counts(t['call'])}; "
          f"wrote {args.out}/report.html, summary.json and "
          f"{sum(1 for f in s['inputs']['files'] if f.endswith('.csv'))} CSV files", file=sys.stderr)
    return 0
