"""Writing the report: summary.json, one CSV per table, PNG plots and report.html.

The HTML page is self-contained (plots embedded as data: URIs, CSS inline, no script) so it
can be mailed or printed as is; the PNGs and CSVs sit beside it for anyone who wants the
numbers. A PDF is written too when `wkhtmltopdf` is installed.
"""
from __future__ import annotations

import base64
import html
import json
import shutil
import subprocess
from pathlib import Path

from ..csvcell import row, writer as csv_writer
from .aggregate import ACTIONS, CHANNELS, LIST_OPS, REPORT_KINDS
from .hits import VIOLATIONS


def tables(agg, summary: dict) -> dict[str, tuple[list, list]]:
    """name -> (header, rows): every table of the report, as written to CSV."""
    periods = agg.periods()
    t = {
        "totals": (["channel", "action", "count"],
                   [[ch, a, n] for ch, row in summary["totals"].items() for a, n in row.items()]),
        "symbols": (["symbol", "count"], [[s, n] for s, n in summary["symbols"].items()]),
        "dnc": (["channel", "registered", "cancelled"],
                [[ch, v["registered"], v["cancelled"]] for ch, v in summary["dnc_by_channel"].items()]),
        "reports": (["kind", "count"], [[k, summary["reports"][k]] for k in REPORT_KINDS]),
        "volume_by_period": (["period_start"] + [f"{ch}_{a}" for ch in CHANNELS for a in ACTIONS],
                             [[p.isoformat()] + agg.volume.get(p, [0] * 8) for p in periods]),
        "dnc_by_period": (["period_start", "registered", "cancelled"],
                          [[p.isoformat()] + agg.dnc_series.get(p, [0, 0]) for p in periods]),
        "reports_by_period": (["period_start"] + list(REPORT_KINDS),
                              [[p.isoformat()] + agg.report_series.get(p, [0, 0, 0]) for p in periods]),
        "top_senders_by_drops": (["channel", "sender", "drops"],
                                 [[r["channel"], r["sender"], r["drops"]] for r in summary["top_senders_by_drops"]]),
        "top_owners_by_drops": (["owner", "drops"], [[r["owner"], r["drops"]] for r in summary["top_owners_by_drops"]]),
        "advertising_by_owner": (["owner", "volume", "dropped"] + list(VIOLATIONS),
                                 [[o, a["volume"], a["dropped"]] + [a[v] for v in VIOLATIONS]
                                  for o, a in summary["advertising_by_owner"].items()]),
        "models": (["version", "ml_spam_hits", "first", "last"],
                   [[v, m["hits"], m["first"], m["last"]] for v, m in summary["models"].items()]),
        # ctl lists on a running serve, offline `telfilter lists` (DATA/lists/changes.jsonl given as a --log)
        "list_changes": (["period_start", "list", *LIST_OPS],
                         [[p, k, *(n[op] for op in LIST_OPS)] for p, by in summary["list_changes"].items()
                          for k, n in by.items()]),
    }
    return t


def write_csvs(out: Path, tabs) -> list[str]:
    names = []
    for name, (header, rows) in tabs.items():
        # a lone surrogate (the verdict log escapes a peer's undecodable bytes as \udcXX) is
        # written as that escape, not refused
        with open(out / f"{name}.csv", "w", encoding="utf-8", errors="backslashreplace", newline="") as f:
            w = csv_writer(f)          # a bare CR in a sender ID quoted (csvcell)
            w.writerow(header)
            w.writerows(row(r) for r in rows)     # sender IDs a spreadsheet would run as formulas: csvcell
        names.append(f"{name}.csv")
    return names


PLOTS = ("volume_by_action.png", "top_symbols.png", "dnc_by_period.png", "reports_by_kind.png")
# every name a report writes into --out (one CSV per table of tables()): an input there under one of them would be
# replaced by the report it is read for
TABLES = ("totals", "symbols", "dnc", "reports", "volume_by_period", "dnc_by_period", "reports_by_period",
          "top_senders_by_drops", "top_owners_by_drops", "advertising_by_owner", "models", "list_changes")
OUTPUTS = ("summary.json", "report.html", "report.pdf", *PLOTS, *(f"{t}.csv" for t in TABLES))


def clear_outputs(out: Path, tabs) -> None:
    """Remove what an earlier report left in `out` under the names this one writes: a run without plots (no
    matplotlib) or without a PDF (no wkhtmltopdf, or it failed) left the earlier run's PNGs and report.pdf beside
    this summary, another period's figures read as this one's; and a run stopped while writing left the earlier
    summary.json beside its new CSVs. summary.json is written last: there, the set is this run's and whole."""
    for name in ("summary.json", "report.html", "report.pdf", *PLOTS, *(f"{t}.csv" for t in tabs)):
        (out / name).unlink(missing_ok=True)


def plots(out: Path, agg, summary: dict) -> list[str]:
    """PNG files: volumes by action over time, top symbols, DNC changes over time, reports by kind."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    periods = agg.periods()
    written = []

    xs = list(range(len(periods)))

    def dates_axis(ax):
        # one bar per period at 0..n-1, at most ~12 labels whatever the length of the period covered
        step = max(1, len(periods) // 12)
        ax.set_xticks(xs[::step], [p.isoformat() for p in periods[::step]], rotation=30, ha="right", fontsize=8)

    def save(fig, name):
        fig.tight_layout()
        fig.savefig(out / name, dpi=100)
        plt.close(fig)
        written.append(name)

    fig, ax = plt.subplots(figsize=(9, 3.6))
    colours = {"allow": "#4c9f70", "tag": "#e0a030", "drop": "#c0392b", "refuse": "#7f8c8d"}
    if periods:
        bottom = [0] * len(periods)
        for ch_i, ch in enumerate(CHANNELS):
            for a_i, a in enumerate(ACTIONS):
                ys = [agg.volume.get(p, [0] * 8)[ch_i * len(ACTIONS) + a_i] for p in periods]
                if any(ys):
                    ax.bar(xs, ys, bottom=bottom, label=f"{ch} {a}", color=colours[a],
                           hatch="//" if ch == "call" else None, edgecolor="white",
                           linewidth=0.3 if len(xs) <= 60 else 0, width=0.8 if len(xs) <= 60 else 1.0)
                    bottom = [b + y for b, y in zip(bottom, ys)]
        if ax.get_legend_handles_labels()[0]:   # none in a period with no records: matplotlib warned on stderr
            ax.legend(fontsize=8, ncol=4)
        dates_axis(ax)
    ax.set_title(f"Messages and calls per {agg.period}, by action")
    ax.set_ylabel("count")
    save(fig, "volume_by_action.png")

    fig, ax = plt.subplots(figsize=(9, 4))
    syms = list(summary["symbols"].items())[:15][::-1]
    ax.barh([s for s, _ in syms], [n for _, n in syms], color="#34495e")
    ax.set_title("Top symbols (rule hits)")
    ax.set_xlabel("hits")
    save(fig, "top_symbols.png")

    fig, ax = plt.subplots(figsize=(9, 3.2))
    if periods:
        ax.bar(xs, [agg.dnc_series.get(p, [0, 0])[0] for p in periods], label="registered (DK DNC)", color="#2980b9")
        ax.bar(xs, [-agg.dnc_series.get(p, [0, 0])[1] for p in periods], label="cancelled (HUY DNC)", color="#95a5a6")
        ax.axhline(0, color="black", linewidth=0.5)
        ax.legend(fontsize=8)
        dates_axis(ax)
    ax.set_title(f"DNC registrations and cancellations per {agg.period}")
    save(fig, "dnc_by_period.png")

    fig, ax = plt.subplots(figsize=(5, 3.2))
    kinds = list(REPORT_KINDS)
    ax.bar(["S (SMS spam)", "V (call spam)", "FW (ad copy)"], [summary["reports"][k] for k in kinds],
           color=["#c0392b", "#8e44ad", "#16a085"])
    ax.set_title("Reports to 5656 by kind")
    save(fig, "reports_by_kind.png")
    return written


def _table(header, rows, limit=None, name=None) -> str:
    cut = len(rows) - limit if limit and len(rows) > limit else 0
    rows = rows[:limit] if limit else rows
    th = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td{' class=n' if isinstance(c, int) else ''}>{html.escape(str(c))}</td>"
                                    for c in r) + "</tr>" for r in rows)
    more = f"<p class=note>… and {cut} more rows in {html.escape(name)}.csv</p>" if cut else ""
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body or '<tr><td>none</td></tr>'}</tbody></table>{more}"


_CSS = """body{font-family:sans-serif;max-width:60em;margin:1em auto;color:#222}
h1{font-size:1.5em}h2{font-size:1.15em;border-bottom:1px solid #ccc;margin-top:1.6em}
table{border-collapse:collapse;margin:.5em 0;font-size:.9em}td,th{border:1px solid #ccc;padding:.2em .6em}
th{background:#f0f0f0;text-align:left}td.n{text-align:right}img{max-width:100%}.note{color:#555;font-size:.85em}
@media print{h2{page-break-after:avoid}table,img{page-break-inside:avoid}}"""


def write_html(out: Path, summary: dict, tabs, pngs: list[str], inputs: dict) -> Path:
    def img(name):
        if name not in pngs:
            return ""
        b = base64.b64encode((out / name).read_bytes()).decode("ascii")
        return f'<p><img alt="{name}" src="data:image/png;base64,{b}"></p>'

    t = summary["totals"]
    n_sms, n_call = sum(t["sms"].values()), sum(t["call"].values())
    # from/to are null with no record and no --from/--to: "None to None" was printed
    span = (f", {summary['from'] or '…'} to {summary['to'] or '…'}" if summary["from"] or summary["to"]
            else ": no records")
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>telfilter report{html.escape(span)}</title>"
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Spam filtering report{html.escape(span)}</h1>",
        f"<p class=note>Days are counted in the {html.escape(str(summary['timezone']))} time zone.</p>",
        f"<p>{n_sms} SMS and {n_call} calls judged; {t['sms']['drop']} SMS and {t['call']['drop']} calls blocked; "
        f"{summary['dnc']['registered']} DNC registrations and {summary['dnc']['cancelled']} cancellations; "
        f"{sum(summary['reports'].values())} reports to 5656.</p>",
        "<h2>Volumes by action</h2>", _table(*tabs["totals"]), img("volume_by_action.png"),
        "<h2>Rule hits</h2>", _table(*tabs["symbols"], limit=30, name="symbols"), img("top_symbols.png"),
        "<h2>Do-Not-Call list changes</h2>", _table(*tabs["dnc"]), img("dnc_by_period.png"),
        _table(["ads scheduled ahead, their recipient registered before their delivery", "n"],
               [["cancelled at the SMSC", summary["scheduled_ads_cancelled"]["cancelled"]],
                ["cancel refused by the SMSC (delivered already)", summary["scheduled_ads_cancelled"]["refused_by_smsc"]]]),
        "<h2>Reports to 5656</h2>", _table(*tabs["reports"]),
        f"<p class=note>source: {html.escape(inputs['reports_source'])}</p>", img("reports_by_kind.png"),
        "<h2>Top senders by blocked messages and calls</h2>", _table(*tabs["top_senders_by_drops"]),
        "<h2>Top brandname owners by blocked messages</h2>", _table(*tabs["top_owners_by_drops"]),
        "<h2>Advertising by owner</h2>", _table(*tabs["advertising_by_owner"], limit=50, name="advertising_by_owner"),
        "<p class=note>Owners from the sender registry as it is when the report is made; advertising = sender "
        "registered as QC, or any AD_* rule hit (on its line or a late part's).</p>",
        "<h2>Classifier models in force</h2>", _table(*tabs["models"]),
        "<h2>List changes made on a running serve (ctl lists) or offline (lists, DATA/lists/changes.jsonl)</h2>",
        _table(*tabs["list_changes"]),
        "<p class=note>An import is one change whatever its rows (replace: an import with --replace); offline "
        "changes are counted when DATA/lists/changes.jsonl is given as a --log.</p>",
        "<h2>Inputs</h2>",
        _table(["", ""], [["verdict logs", ", ".join(inputs["logs"])],
                          ["logs named twice (read once)", ", ".join(inputs.get("repeated_logs", ())) or "none"],
                          ["records counted", summary["records"]],
                          ["records outside the period", summary["outside_period"]],
                          ["late parts of concatenated messages (counted with their message)",
                           summary.get("late_parts", 0)],
                          ["... whose message was not found (their DNC changes and reports counted only)",
                           summary.get("late_parts_untied", 0)],
                          ["5656 commands the SMSC delivered again (counted by their first delivery)",
                           summary.get("shortcode_redeliveries", 0)],
                          ["malformed lines (skipped)", inputs["malformed"]]]),
    ]
    if inputs["malformed_lines"]:
        parts.append("<pre>" + html.escape("\n".join(inputs["malformed_lines"])) + "</pre>")
    parts.append(f"<p class=note>generated {html.escape(inputs['generated'])} by telfilter report; "
                 f"tables as CSV beside this file.</p></body></html>")
    p = out / "report.html"
    p.write_text("\n".join(parts), encoding="utf-8", errors="backslashreplace")
    return p


PDF_TIMEOUT_S = 120


def write_pdf(html_path: Path) -> tuple[Path | None, str | None]:
    """(report.pdf, None) when wkhtmltopdf made it; (None, why) when wkhtmltopdf is installed and made none (a
    part it wrote removed); (None, None) without wkhtmltopdf. A hung wkhtmltopdf ended the report with a
    traceback before summary.json was written."""
    exe = shutil.which("wkhtmltopdf")
    if exe is None:
        return None, None
    pdf = html_path.with_suffix(".pdf")
    try:
        r = subprocess.run([exe, "--quiet", str(html_path), str(pdf)], capture_output=True, timeout=PDF_TIMEOUT_S)
        why = None if r.returncode == 0 and pdf.exists() else \
            f"exit status {r.returncode}: {r.stderr.decode(errors='replace').strip()[-300:] or 'no message'}"
    except subprocess.TimeoutExpired:
        why = f"still running after {PDF_TIMEOUT_S} s, stopped"
    except OSError as e:
        why = str(e)
    if why is None:
        return pdf, None
    pdf.unlink(missing_ok=True)
    return None, f"wkhtmltopdf made no report.pdf ({why})"


def write_summary(out: Path, summary: dict) -> Path:
    p = out / "summary.json"
    # backslashreplace turns a lone surrogate into the same JSON \uXXXX escape the log had
    p.write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8", errors="backslashreplace")
    return p
