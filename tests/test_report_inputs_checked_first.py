"""A --reports store or a log that cannot be read is said before any log is read and before --out is made: a
missing `--reports DATA/reports.jsonl` (a wrong data dir) was said only after every verdict log had been read, a
year of them taking minutes, and left an empty --out behind."""
import pytest

import engine.report as report
from engine.report import make_report
from tests.conftest import run_cli
from tests.test_report import HANOI, rec


def _no_log_read(*a, **k):
    raise AssertionError("a log was read before the inputs were checked")


@pytest.mark.parametrize("bad", ["reports", "log"])
def test_an_input_that_cannot_be_read_stops_the_report_before_any_log_is_read(tmp_path, monkeypatch, bad):
    (tmp_path / "v.log").write_text(rec("2026-12-01T10:00:00+07:00"))
    logs = [tmp_path / "v.log"] + ([tmp_path / "v.log.1"] if bad == "log" else [])
    monkeypatch.setattr(report, "read_verdicts", _no_log_read)
    with pytest.raises(FileNotFoundError) as e:
        make_report(logs, tmp_path / "out", HANOI, progress=False, with_plots=False,
                    reports=str(tmp_path / "reports.jsonl") if bad == "reports" else None)
    assert e.value.filename == str(tmp_path / ("reports.jsonl" if bad == "reports" else "v.log.1"))
    assert not (tmp_path / "out").exists()


def test_the_cli_names_the_missing_store_exit_2(tmp_path):
    (tmp_path / "v.log").write_text(rec("2026-12-01T10:00:00+07:00"))
    p = run_cli("report", "--log", tmp_path / "v.log", "--reports", tmp_path / "nope.jsonl", "--out", tmp_path / "out",
                "--no-progress", "--data-dir", tmp_path / "d")
    assert p.returncode == 2
    assert p.stderr == f"telfilter report: error: {tmp_path / 'nope.jsonl'}: No such file or directory\n"
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", ["summary.json", "totals.csv", "report.html"])
def test_a_log_that_is_a_file_the_report_writes_is_refused_and_kept(tmp_path, name):
    # `--log report/summary.json --out report` read the log, then wrote the report over it: the verdict log, the
    # only record, gone without a word (check, reports export and ml compare refuse an output that is their input)
    out = tmp_path / "report"
    out.mkdir()
    log = out / name
    log.write_text(rec("2026-12-01T10:00:00+07:00"))
    before = log.read_bytes()
    p = run_cli("report", "--log", log, "--out", out, "--no-progress", "--data-dir", tmp_path / "d")
    assert p.returncode == 2, p.stderr
    assert p.stderr.startswith(f"telfilter report: error: --out {out}: "), p.stderr
    assert log.read_bytes() == before
    assert sorted(x.name for x in out.iterdir()) == [name]


def test_every_file_a_report_writes_is_one_the_input_check_knows(tmp_path):
    (tmp_path / "v.log").write_text(rec("2026-12-01T10:00:00+07:00"))
    s = make_report([tmp_path / "v.log"], tmp_path / "out", HANOI, progress=False, with_plots=True)
    assert set(s["inputs"]["files"]) <= set(report.OUTPUTS)
