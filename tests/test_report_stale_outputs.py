"""A report made again into the same --out leaves nothing of the earlier one that reads as its own: a run without
plots (no matplotlib) kept the earlier run's PNGs, a run without a PDF (no wkhtmltopdf, or one that failed) kept its
report.pdf, another period's figures beside this summary; and a wkhtmltopdf still running after its timeout ended the
report with a traceback before summary.json was written (the earlier summary then stood beside the new CSVs)."""
import json
import shutil
import stat

from engine.report import make_report, render
from tests.conftest import run_cli
from tests.test_report import HANOI, rec


def _logs(tmp_path):
    (tmp_path / "busy.log").write_text(
        rec("2026-11-30T23:59:00+07:00", "drop", hits=[("SENDER_BLACKLISTED", "x", "list:blacklist")])
        + rec("2026-12-01T00:01:00+07:00"))
    (tmp_path / "empty.log").write_text("")
    return tmp_path / "busy.log", tmp_path / "empty.log"


def _wkhtmltopdf(bindir, body):
    bindir.mkdir(exist_ok=True)
    exe = bindir / "wkhtmltopdf"
    exe.write_text("#!/bin/sh\n" + body + "\n")
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    return str(bindir)


_MAKES_PDF = 'for a; do last=$a; done; echo "%PDF-1.4" > "$last"'


def test_a_run_without_plots_leaves_no_earlier_plots(tmp_path, monkeypatch):
    busy, empty = _logs(tmp_path)
    monkeypatch.setenv("PATH", "/nonexistent")         # no wkhtmltopdf either run
    out = tmp_path / "out"
    make_report([busy], out, HANOI, progress=False, with_plots=True)
    assert {p.name for p in out.glob("*.png")} == {"volume_by_action.png", "top_symbols.png", "dnc_by_period.png",
                                                   "reports_by_kind.png"}
    s = make_report([empty], out, HANOI, progress=False, with_plots=False)
    assert not list(out.glob("*.png"))
    assert sorted(p.name for p in out.iterdir()) == sorted(s["inputs"]["files"])


def test_a_run_without_a_pdf_leaves_no_earlier_pdf_and_says_why(tmp_path, monkeypatch):
    busy, empty = _logs(tmp_path)
    out = tmp_path / "out"
    monkeypatch.setenv("PATH", _wkhtmltopdf(tmp_path / "ok", _MAKES_PDF))
    s = make_report([busy], out, HANOI, progress=False, with_plots=False)
    assert "report.pdf" in s["inputs"]["files"] and (out / "report.pdf").exists()

    monkeypatch.setenv("PATH", "/nonexistent")         # not installed where it runs again
    s = make_report([empty], out, HANOI, progress=False, with_plots=False)
    assert not (out / "report.pdf").exists() and "pdf_failed" not in s["inputs"]

    monkeypatch.setenv("PATH", _wkhtmltopdf(tmp_path / "ok", _MAKES_PDF))
    make_report([busy], out, HANOI, progress=False, with_plots=False)
    monkeypatch.setenv("PATH", _wkhtmltopdf(tmp_path / "bad", 'echo "cannot connect to X server" >&2; exit 1'))
    s = make_report([empty], out, HANOI, progress=False, with_plots=False)
    assert not (out / "report.pdf").exists()
    assert s["inputs"]["pdf_failed"] == "wkhtmltopdf made no report.pdf (exit status 1: cannot connect to X server)"
    assert sorted(p.name for p in out.iterdir()) == sorted(s["inputs"]["files"])


def test_a_hung_wkhtmltopdf_is_stopped_and_the_report_is_written(tmp_path, monkeypatch):
    busy, _ = _logs(tmp_path)
    out = tmp_path / "out"
    sleep = shutil.which("sleep")
    monkeypatch.setenv("PATH", _wkhtmltopdf(tmp_path / "hang", f'echo "%PDF-1" > "$3"; exec {sleep} 60'))
    monkeypatch.setattr(render, "PDF_TIMEOUT_S", 0.5)
    s = make_report([busy], out, HANOI, progress=False, with_plots=False)
    assert s["inputs"]["pdf_failed"] == "wkhtmltopdf made no report.pdf (still running after 0.5 s, stopped)"
    assert not (out / "report.pdf").exists()                # its partial output removed
    assert json.loads((out / "summary.json").read_text())["totals"]["sms"]["drop"] == 1


def test_the_cli_warns_when_wkhtmltopdf_made_no_pdf(tmp_path):
    busy, _ = _logs(tmp_path)
    bindir = _wkhtmltopdf(tmp_path / "bad", 'echo "QXcbConnection: Could not connect to display" >&2; exit 1')
    p = run_cli("report", "--log", busy, "--out", tmp_path / "out", "--no-progress", "--data-dir", tmp_path / "d",
                env={"PATH": bindir + ":/usr/bin:/bin"})
    assert p.returncode == 0, p.stderr
    assert ("telfilter report: warning: wkhtmltopdf made no report.pdf (exit status 1: QXcbConnection: Could not "
            "connect to display)") in p.stderr
