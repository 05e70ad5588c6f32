"""`telfilter reports tui`: browse campaigns and label them from a terminal (textual).

Top table: campaigns, largest first. Bottom table: the reports of the highlighted campaign.
Keys: s spam, h ham, c clear — on a campaign row they label every report of the campaign, on
a report row that report only; tab moves between the tables; u shows only campaigns with
unlabelled reports; e writes the labelled set (as `reports export`) to the path given with
--export or DATA_DIR/labelled.tsv; q quits. Every label is written to labels.jsonl at once
(flocked, fsynced), so quitting loses nothing.
"""
from __future__ import annotations

from pathlib import Path

from textual.app import App, ComposeResult
from textual.binding import Binding
from rich.text import Text
from textual.widgets import DataTable, Footer, Header, Static

from .store import StoreError, Workspace, printable

CAMPAIGN_COLUMNS = ("campaign", "reports", "spam", "ham", "new", "reporters", "sample")
REPORT_COLUMNS = ("report", "label", "kind", "time", "reporter", "reported", "content")


def _one_line(s, n: int) -> Text:
    """A subscriber's text as one literal line: control characters (terminal escapes) shown as `?` and the
    result a rich Text, never markup (`[/]` or `[link=...]` in an SMS must not crash or restyle the table)."""
    s = printable(" ".join(str(s).split()))
    return Text(s if len(s) <= n else s[:n - 1] + "…")


class ReportsApp(App):
    TITLE = "telfilter reports"
    CSS = "#campaigns { height: 55%; } #reports { height: 1fr; } #status { height: 1; }"
    BINDINGS = [
        Binding("s", "label('spam')", "spam"),
        Binding("h", "label('ham')", "ham"),
        Binding("c", "label(None)", "clear"),
        Binding("u", "toggle_unlabelled", "only unlabelled"),
        Binding("e", "export", "export"),
        Binding("q", "quit", "quit"),
    ]

    def __init__(self, ws: Workspace, export_path: Path | None = None):
        super().__init__()
        self.ws = ws
        self.export_path = Path(export_path) if export_path else ws.reports_path.parent / "labelled.tsv"
        self.only_unlabelled = False
        self.shown: str | None = None          # campaign whose reports the lower table shows

    def compose(self) -> ComposeResult:
        yield Header()
        yield DataTable(id="campaigns", cursor_type="row", zebra_stripes=True)
        yield DataTable(id="reports", cursor_type="row", zebra_stripes=True)
        yield Static("", id="status")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#campaigns", DataTable).add_columns(*CAMPAIGN_COLUMNS)
        self.query_one("#reports", DataTable).add_columns(*REPORT_COLUMNS)
        self._fill_campaigns()
        self.query_one("#campaigns", DataTable).focus()
        self._status(f"{len(self.ws.reports)} reports in {len(self.ws.campaigns)} campaigns; labels go to "
                     f"{self.ws.labels.path}")

    # ---------------------------------------------------------------- tables
    def _campaign_row(self, c):
        k = c.counts()
        return (c.id, c.size, k["spam"], k["ham"], k["unlabelled"], len({r.reporter for r in c.reports}),
                _one_line(c.reports[0].content, 80))

    def _fill_campaigns(self) -> None:
        t = self.query_one("#campaigns", DataTable)
        keep, at = self._campaign_at_cursor(), t.cursor_row
        t.clear()
        for c in self.ws.ordered_campaigns():
            if not self.only_unlabelled or c.counts()["unlabelled"]:
                t.add_row(*self._campaign_row(c), key=c.id)
        if keep is not None and keep in self.ws.campaigns:
            try:
                t.move_cursor(row=t.get_row_index(keep))
            except Exception:
                # the campaign is filtered out now (just labelled, with `u` on): the row that took its place, the
                # next one, as without the filter; the cursor went to the top, and the next key meant for the
                # campaign after it labelled the first one in the list
                if t.row_count:
                    t.move_cursor(row=min(at, t.row_count - 1))
        self._fill_reports(self._campaign_at_cursor())

    def _fill_reports(self, cid: str | None) -> None:
        t = self.query_one("#reports", DataTable)
        t.clear()
        self.shown = cid
        if cid is None:
            return
        for r in self.ws.campaigns[cid].reports:
            t.add_row(r.id, r.label or "-", _one_line(r.kind, 8), r.time[:19], _one_line(r.reporter, 20),
                      _one_line(r.reported, 20), _one_line(r.content, 100), key=r.id)

    def _campaign_at_cursor(self) -> str | None:
        t = self.query_one("#campaigns", DataTable)
        if not t.row_count:
            return None
        return t.coordinate_to_cell_key(t.cursor_coordinate).row_key.value

    def _report_at_cursor(self) -> str | None:
        t = self.query_one("#reports", DataTable)
        if not t.row_count:
            return None
        return t.coordinate_to_cell_key(t.cursor_coordinate).row_key.value

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id == "campaigns" and event.row_key is not None and event.row_key.value != self.shown:
            self._fill_reports(event.row_key.value)

    def _status(self, text: str) -> None:
        self.query_one("#status", Static).update(Text(text))        # literal, never markup

    # ---------------------------------------------------------------- actions
    def action_label(self, label: str | None) -> None:
        on_reports = self.focused is self.query_one("#reports", DataTable)
        ident = self._report_at_cursor() if on_reports else self._campaign_at_cursor()
        if ident is None:
            return
        # labels another analyst wrote since this UI read them: a report shown as spam here but relabelled ham
        # there was skipped as "already spam" by a campaign's `s`, and the other label kept
        try:
            stale = self.ws.reload_labels()
            n = self.ws.label([ident], label)
        except (OSError, StoreError) as e:
            # the label log not writable (another analyst's file, a full disk): said, the UI stays (it closed on a
            # traceback, the analyst's place and filter lost)
            self._status(f"{ident}: not labelled: {getattr(e, 'filename', None) or self.ws.labels.path}: "
                         f"{getattr(e, 'strerror', None) or e}")
            return
        self._status(f"{ident}: {n} report(s) labelled {label or 'clear'}"
                     + ("; labels written meanwhile by others are shown too" if stale else ""))
        cid = self.ws.by_id[ident].campaign if on_reports else ident
        row = self._campaign_row(self.ws.campaigns[cid])
        ct = self.query_one("#campaigns", DataTable)
        if self.only_unlabelled and (stale or not row[4]):
            self._fill_campaigns()
            return
        for c in (self.ws.campaigns.values() if stale else [self.ws.campaigns[cid]]):
            for col, v in zip(CAMPAIGN_COLUMNS, self._campaign_row(c)):
                ct.update_cell(c.id, ct.ordered_columns[CAMPAIGN_COLUMNS.index(col)].key, v)
        rt = self.query_one("#reports", DataTable)
        if self.shown is not None and (stale or self.shown == cid):
            for r in self.ws.campaigns[self.shown].reports:
                rt.update_cell(r.id, rt.ordered_columns[1].key, r.label or "-")
        if on_reports and rt.cursor_row + 1 < rt.row_count:
            rt.move_cursor(row=rt.cursor_row + 1)
        elif not on_reports and ct.cursor_row + 1 < ct.row_count:
            ct.move_cursor(row=ct.cursor_row + 1)

    def action_toggle_unlabelled(self) -> None:
        self.only_unlabelled = not self.only_unlabelled
        self._fill_campaigns()
        self._status("only campaigns with unlabelled reports" if self.only_unlabelled else "all campaigns")

    def action_export(self) -> None:
        from .export import DEFAULT_KINDS, format_for, labelled_rows, render, without_text, write_atomic
        # what `reports export` writes: the store and labels.jsonl as they are now (reports that arrived and
        # labels other analysts wrote since this UI opened included), S and FW reports only
        try:
            ws = Workspace(self.ws.data_dir, self.ws.reports_path, self.ws.similarity)
        except StoreError as e:
            self._status(f"not exported: {e}")
            return
        rows, conflicts = labelled_rows(ws.reports, kinds=DEFAULT_KINDS)
        try:
            write_atomic(self.export_path, render(rows, format_for(str(self.export_path), None)),
                         keep=(ws.reports_path, ws.labels.path))
        except StoreError as e:
            self._status(f"not exported: {e}")
            return
        except OSError as e:            # --export names a directory, or a place not writable: said, the UI stays
            where = e.filename or self.export_path
            self._status(f"not exported to {self.export_path}: {where}: {e.strerror or e}")
            return
        spam = sum(r["label"] == "spam" for r in rows)
        # as `reports export` says them: a labelled `S 0912345678` (no content), left out unsaid, looked trained on
        empty = without_text(ws.reports, DEFAULT_KINDS)
        self._status(f"wrote {len(rows)} rows ({spam} spam, {len(rows) - spam} ham) to {self.export_path}"
                     + (f"; {len(conflicts)} text(s) labelled both ways left out" if conflicts else "")
                     + (f"; {len(empty)} labelled report(s) with no text left out" if empty else ""))


def run(ws: Workspace, export_path=None) -> int:
    ReportsApp(ws, export_path).run()
    return 0
