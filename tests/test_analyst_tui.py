"""engine/analyst's terminal UI (`telfilter reports tui`, driven by textual's Pilot): labelling campaigns and reports,
exports, labels another analyst wrote meanwhile, campaigns merged or colliding, and subscriber text that must never
drive the terminal. Grouping, the label log, export and compare: test_analyst.py."""
import asyncio
import json

import pytest

from engine.analyst.store import LabelLog, Workspace
from engine.ml.data import read_dataset

from .test_analyst import BUNDLED, HOME, LOAN, PRIZE, PRIZE_MORE, PRIZE_VI, _cli, _store


def test_tui_labels_campaigns_and_reports_and_exports(tmp_path):
    pytest.importorskip("textual")
    from engine.analyst.tui import ReportsApp
    store = _store(tmp_path, [PRIZE, PRIZE_VI, PRIZE_MORE, HOME, LOAN])
    before = store.read_bytes()
    app = ReportsApp(Workspace(tmp_path), tmp_path / "out.tsv")

    async def drive():
        async with app.run_test() as pilot:
            await pilot.press("s")              # the largest campaign (the three prize texts): spam
            await pilot.press("h")              # the cursor moved on: the next campaign, ham
            await pilot.press("up", "tab", "c")  # back to it, on its reports: clear that one report
            await pilot.press("e")
            await pilot.pause()
            return str(app.query_one("#status").render())
    status = asyncio.run(drive())
    ws = Workspace(tmp_path)
    assert [r.label for r in ws.reports[:3]] == ["spam"] * 3
    assert sorted(str(r.label) for r in ws.reports[3:]) == ["None", "None"]
    home = next(r.id for r in ws.reports if r.content == HOME)
    log = [json.loads(x) for x in (tmp_path / "labels.jsonl").read_text().splitlines()]
    assert [o["label"] for o in log if o["id"] == home] == ["ham", None]      # labelled, then cleared
    assert "wrote 3 rows (3 spam, 0 ham)" in status
    assert read_dataset(tmp_path / "out.tsv").labels == [1, 1, 1]
    assert store.read_bytes() == before


def test_tui_labels_over_what_another_analyst_wrote_meanwhile_and_exports_as_reports_export(tmp_path):
    """Found by analyst2 driving the TUI beside `reports label`: with the UI open, another analyst relabelled a
    prize report ham; `s` on its campaign skipped that report as "already spam" (the UI's stale view), so the
    campaign stayed mixed on disk, and `e` wrote it as spam (the UI's stale label) and the call reports' texts
    as spam too, which `reports export` leaves out (a V report's content describes a call)."""
    pytest.importorskip("textual")
    from engine.analyst.tui import ReportsApp
    _store(tmp_path, [PRIZE, PRIZE_VI, PRIZE_MORE, HOME])
    _store(tmp_path, ["goi dien mao danh cong an doi chuyen tien ngay"], kind="V")
    ws = Workspace(tmp_path)
    prize = ws.reports[0].campaign
    call = ws.reports[4].campaign
    assert _cli("reports", "label", "spam", prize, call, "--data-dir", tmp_path).returncode == 0
    app = ReportsApp(Workspace(tmp_path), tmp_path / "out.tsv")
    first = ws.reports[0].id

    async def drive():
        async with app.run_test() as pilot:
            await pilot.pause()
            r = _cli("reports", "label", "ham", first, "--data-dir", tmp_path)    # another analyst, meanwhile
            assert r.returncode == 0, r.stderr
            await pilot.press("s")              # the prize campaign, whole: spam
            await pilot.pause()
            await pilot.press("e")
            await pilot.pause()
            return str(app.query_one("#status").render())
    status = asyncio.run(drive())
    assert [r.label for r in Workspace(tmp_path).reports[:3]] == ["spam"] * 3
    cli = tmp_path / "cli.tsv"
    assert _cli("reports", "export", "--out", cli, "--data-dir", tmp_path).returncode == 0
    assert (tmp_path / "out.tsv").read_text() == cli.read_text()
    assert "wrote 3 rows (3 spam, 0 ham)" in status, status


def test_a_campaign_name_gone_in_a_merge_names_the_campaign_its_reports_joined(tmp_path):
    """Found by analyst2: two campaigns listed apart, then a report close to both joined them under the older
    name; `reports label spam <the younger name>` (as listed a minute before) said only "no campaign with this
    id"."""
    w = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa".split()
    _store(tmp_path, [" ".join(w[0:10]), " ".join(w[6:16])])
    ws = Workspace(tmp_path)
    older, younger = ws.reports[0].campaign, ws.reports[1].campaign
    assert older != younger
    _store(tmp_path, [" ".join(w[3:13])])
    r = _cli("reports", "label", "spam", younger, "--data-dir", tmp_path)
    assert r.returncode == 2 and f"its reports joined campaign {older}" in r.stderr, r.stderr
    assert not (tmp_path / "labels.jsonl").exists()


def test_two_reports_whose_short_ids_collide_are_both_kept_and_labelled_apart(tmp_path):
    """Found by analyst2: a report id is 40 bits of the line's BLAKE2b, and a report whose id an earlier, different
    report had was skipped as "the same line stored twice": gone from list, label, export and ml train (a pair
    like that is more likely than not in a store of ~1.2M reports). These two lines (found by a birthday search)
    share the id r2c8b76efb4."""
    base = ('{"reporter": "+84910000001", "reported": "+84987654320", "content": "Vay tien nhanh %d", '
            '"time": "2026-12-03T08:40:45+00:00", "kind": "S", "label": null}\n')
    (tmp_path / "reports.jsonl").write_text(base % 328537 + base % 1549406 + base % 1549406)
    ws = Workspace(tmp_path)
    assert [r.content for r in ws.reports] == ["Vay tien nhanh 328537", "Vay tien nhanh 1549406"]
    first, second = (r.id for r in ws.reports)
    assert first == "r2c8b76efb4" and second != first and second.startswith("r")
    assert _cli("reports", "label", "spam", first, "--data-dir", tmp_path).returncode == 0
    assert _cli("reports", "label", "ham", second, "--data-dir", tmp_path).returncode == 0
    again = Workspace(tmp_path)
    assert [(r.id, r.label) for r in again.reports] == [(first, "spam"), (second, "ham")]


def test_an_export_never_replaces_the_report_store_the_label_log_or_an_input(tmp_path):
    """Found by analyst2: `reports export --out DATA_DIR/reports.jsonl` replaced serve's report store with the
    export (35 reports -> 23 rows in the export format; serve then appends to the unlinked file, so the reports
    after it are lost too), `--out labels.jsonl` the label log, and `ml compare --changes` its own --data file."""
    pytest.importorskip("textual")
    from engine.analyst.tui import ReportsApp
    store = _store(tmp_path, [PRIZE, PRIZE_VI, HOME])
    assert _cli("reports", "label", "spam", Workspace(tmp_path).reports[0].campaign, "--data-dir", tmp_path).returncode == 0
    labels = tmp_path / "labels.jsonl"
    before = store.read_bytes(), labels.read_bytes()
    for out in (store, labels, tmp_path / "." / "reports.jsonl"):
        r = _cli("reports", "export", "--out", out, "--data-dir", tmp_path)
        assert r.returncode == 2 and "nothing written" in r.stderr, r.stderr
    app = ReportsApp(Workspace(tmp_path), store)

    async def drive():
        async with app.run_test() as pilot:
            await pilot.press("e")
            await pilot.pause()
            return str(app.query_one("#status").render())
    assert "not exported" in asyncio.run(drive())
    assert (store.read_bytes(), labels.read_bytes()) == before
    held = tmp_path / "held.tsv"
    held.write_text(f"label\ttext\nspam\t{PRIZE}\nham\t{HOME}\n")
    for out in (held, store):
        r = _cli("ml", "compare", "--model", BUNDLED, "--model", BUNDLED, "--data", held, "--changes", out,
                 "--data-dir", tmp_path)
        assert r.returncode == 2 and "nothing written" in r.stderr, r.stderr
    assert held.read_text().startswith("label\ttext\nspam") and (store.read_bytes(), labels.read_bytes()) == before


def test_the_tui_reads_only_the_labels_appended_since_its_last_look(tmp_path):
    """The TUI takes the label log as it is on disk at each key press (another analyst's labels): a long log is read
    whole once, at start, then only from where it ended (200,000 lines took 0.63 s a key press read whole)."""
    _store(tmp_path, [PRIZE, HOME])
    ws = Workspace(tmp_path)
    LabelLog(tmp_path).append([ws.reports[0].id], "spam")
    assert ws.reload_labels() and ws.reports[0].label == "spam"
    end = ws._labels_end
    assert end == (tmp_path / "labels.jsonl").stat().st_size
    LabelLog(tmp_path).append([ws.reports[1].id], "ham")
    labels, errors, new_end = LabelLog(tmp_path).load_from(end)
    assert labels == {ws.reports[1].id: "ham"} and not errors and new_end > end
    assert ws.reload_labels() and [r.label for r in ws.reports] == ["spam", "ham"]
    assert not ws.reload_labels()


def test_subscriber_text_never_drives_the_terminal_or_the_table(tmp_path):
    pytest.importorskip("textual")
    from engine.analyst.tui import ReportsApp
    nasty = ["Khuyen mai [/] lon nhat nam", "Nhan qua tai [link=https://evil.example]vietcombank.com.vn[/link] ngay",
             "hello \x1b]0;pwned\x07\x1b[2J\x1b[31mRED text"]
    _store(tmp_path, nasty)
    r = _cli("reports", "list", "--data-dir", tmp_path)
    assert r.returncode == 0 and "\x1b" not in r.stdout and "\x07" not in r.stdout, r.stdout
    app = ReportsApp(Workspace(tmp_path), tmp_path / "out.tsv")

    async def drive():
        async with app.run_test() as pilot:
            await pilot.pause()
            t = app.query_one("#reports")
            return [str(t.get_row_at(i)[-1]) for i in range(t.row_count)]
    shown = asyncio.run(drive())                 # no MarkupError; the text is shown as written
    assert any("[link=https://evil.example]" in s for s in shown) or any("[/]" in s for s in shown)


def test_with_only_unlabelled_shown_a_label_moves_on_to_the_next_campaign_not_the_first(tmp_path):
    """`u` then `s` on the second campaign: the labelled campaign leaves the filtered list and the cursor went to the
    top, so the next key, meant for the campaign after it, labelled the first one (a scam campaign the analyst had
    skipped labelled ham)."""
    pytest.importorskip("textual")
    from engine.analyst.tui import ReportsApp
    _store(tmp_path, [PRIZE, PRIZE_VI, PRIZE_MORE, HOME, LOAN])
    app = ReportsApp(Workspace(tmp_path), tmp_path / "out.tsv")

    async def drive():
        async with app.run_test() as pilot:
            await pilot.press("u", "down", "h")     # the prize campaign skipped; HOME ham
            await pilot.press("s")                  # the cursor on the next one: LOAN spam
            await pilot.pause()
    asyncio.run(drive())
    labels = {r.content: r.label for r in Workspace(tmp_path).reports}
    assert (labels[HOME], labels[LOAN]) == ("ham", "spam")
    assert [labels[t] for t in (PRIZE, PRIZE_VI, PRIZE_MORE)] == [None] * 3
