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


def test_the_two_bytes_per_key_figures_say_what_each_counts(tmp_path, monkeypatch):
    # one report gave "counter bytes per advertiser-recipient key" 37.4 B in its summary and "Memory per
    # advertiser–recipient key" 25.4 B embedded in its shared-state section, with nothing to tell why: the first is
    # the pack's count at delivery (rows with room for 2 x limit stamps), the second a plain count of 3
    monkeypatch.setattr("benchmarks.report._plots", lambda out, res: [])
    res = {"mode": "quick", "started": "20261201T000000Z", "duration_s": 1.0, "step_seconds": {},
           "machine": {"cores": 2, "cpu_model": "x", "python": "3.11", "platform": "linux"},
           "state": {"binds": 4, "window": 10, "n": 6000, "memory_per_key_bytes": {"keys": 50000, "redis": 162.4,
                                                                                  "embedded": 25.4}}}
    res["summary"], res["capacity"] = summarise(res), capacity(res)
    res["summary"].update(counter_bytes_per_key=37.4, counter_bytes_per_key_source="memory_bytes()")
    write_report(tmp_path, res)
    text = (tmp_path / "report.md").read_text()
    summary_row = next(ln for ln in text.splitlines() if ln.startswith("| counter bytes per"))
    assert "37.4 B" in summary_row and "at delivery" in summary_row and "6 stamps" in summary_row, summary_row
    state_line = next(ln for ln in text.splitlines() if ln.startswith("Memory per advertiser"))
    assert "25.4 B in the embedded" in state_line and "3 stamps" in state_line, state_line
