"""report.md's summary table gives every figure with its unit and enough digits to read it: the pipeline's rate was
a bare number ("39,004.2"), and the DNC load time of 10M numbers (0.058 s) was rounded to "0.1 s", which the README's
0.06 s could not be checked against. Nothing is measured here."""
from benchmarks.__main__ import summarise
from benchmarks.capacity import capacity
from benchmarks.report import write_report


def test_summary_rows_have_units(tmp_path, monkeypatch):
    monkeypatch.setattr("benchmarks.report._plots", lambda out, res: [])
    res = {"mode": "quick", "started": "20261201T000000Z", "duration_s": 1.0, "step_seconds": {},
           "machine": {"cores": 2, "cpu_model": "x", "python": "3.11", "platform": "linux"}}
    res["summary"], res["capacity"] = summarise(res), capacity(res)
    res["summary"].update(pipeline_msgs_per_s=39004.2, dnc_10m_load_s=0.058)
    write_report(tmp_path, res)
    rows = {ln.split("|")[1].strip(): ln.split("|")[2].strip() for ln in (tmp_path / "report.md").read_text().splitlines()
            if ln.startswith("| ") and ln.count("|") == 6}
    assert rows["pipeline verdicts/s, one core"] == "39,004.2 /s", rows["pipeline verdicts/s, one core"]
    assert rows["DNC 10M numbers: load time"] == "0.06 s", rows["DNC 10M numbers: load time"]
