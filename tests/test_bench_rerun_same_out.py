"""A benchmark run written into a directory an earlier run used (`--out DIR` again) leaves none of the earlier
run's files beside its own: a plot of a step this run skipped or failed is removed, so report.md, summary.json and
the PNGs all come from one run. Before, `python -m benchmarks --quick --out D` then the same with `--skip pipeline`
left the first run's pipeline_stages.png in D next to the second run's summary. Files the suite never writes are
left alone. Nothing is measured here."""
from benchmarks.__main__ import summarise
from benchmarks.capacity import capacity
from benchmarks.report import PLOTS, write_report


def test_a_plot_of_an_earlier_run_is_removed(tmp_path, monkeypatch):
    for name in PLOTS:                                   # the earlier run's plots, every step's
        (tmp_path / name).write_bytes(b"\x89PNG earlier run")
    (tmp_path / "my_notes.txt").write_text("the planner's own file")
    monkeypatch.setattr("benchmarks.report._plots", lambda out, res: ["smpp_latency.png"])
    res = {"mode": "quick", "started": "20261201T000000Z", "duration_s": 1.0, "step_seconds": {},
           "machine": {"cores": 2, "cpu_model": "x", "python": "3.11", "platform": "linux"}}
    res["summary"], res["capacity"] = summarise(res), capacity(res)
    write_report(tmp_path, res)
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == ["my_notes.txt", "report.md", "smpp_latency.png"], left
