"""`python -m benchmarks`: a step that fails (sipp or Kamailio missing, serve not starting, a port taken) is said
in summary.json and report.md with its reason, the other steps still run and their results are written, and the
exit status is not 0. Before, the step's exception ended the whole suite after the steps before it had run, and
nothing was written. Nothing is measured here: the steps are stand-ins."""
import json

import benchmarks.__main__ as suite
import benchmarks.sip_bench
import benchmarks.state_bench

ALL = ["pipeline", "lists", "longrun", "smpp", "sip", "sip_flood", "state"]


def _skip_but(*keep):
    return [x for s in ALL if s not in keep for x in ("--skip", s)]


def test_a_failing_step_is_reported_and_the_next_one_still_runs(tmp_path, monkeypatch, capsys):
    def sip_fails(*a, **k):
        raise RuntimeError("screen exited at start (status 2); see /tmp/x")
    ran = []
    monkeypatch.setattr(benchmarks.sip_bench, "run", sip_fails)
    monkeypatch.setattr(benchmarks.state_bench, "run", lambda **k: ran.append(k) or {"n": 1})
    rc = suite.main(["--quick", "--out", str(tmp_path)] + _skip_but("sip", "state"))
    assert rc != 0
    assert ran, "the state step after the failed one did not run"
    s = json.loads((tmp_path / "summary.json").read_text())
    assert "screen exited at start" in s["failed_steps"]["sip"]
    assert s["state"] == {"n": 1} and "state" not in s["failed_steps"]
    assert sorted(s["skipped_steps"]) == ["lists", "longrun", "pipeline", "sip_flood", "smpp"]
    report = (tmp_path / "report.md").read_text()
    assert "sip" in report and "screen exited at start" in report
    assert "failed" in capsys.readouterr().err


def test_a_step_that_could_not_run_is_marked_not_left_as_nulls(tmp_path, monkeypatch):
    # sipp missing: sip_bench returns {"error": ...}; redis-server missing: state_bench returns {"skipped": ...}
    monkeypatch.setattr(benchmarks.sip_bench, "run", lambda *a, **k: {"error": "sipp not installed"})
    monkeypatch.setattr(benchmarks.state_bench, "run",
                        lambda **k: {"skipped": "redis-server not installed and apt-get install -y redis-server "
                                                "failed"})
    rc = suite.main(["--quick", "--out", str(tmp_path)] + _skip_but("sip", "state"))
    assert rc != 0
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["failed_steps"]["sip"] == "sipp not installed"
    assert "redis-server not installed" in s["failed_steps"]["state"]
    assert "sipp not installed" in (tmp_path / "report.md").read_text()


def test_a_run_with_every_step_done_has_no_failed_steps(tmp_path, monkeypatch):
    monkeypatch.setattr(benchmarks.state_bench, "run", lambda **k: {"n": 1})
    assert suite.main(["--quick", "--out", str(tmp_path)] + _skip_but("state")) == 0
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["failed_steps"] == {}


def test_the_progress_total_counts_only_the_steps_that_run(tmp_path, monkeypatch):
    # --skip lists still counted the DNC and Python-set sizes: the bar ended at 0/5 on a run with nothing to do
    bars = []

    class Bar:
        def __init__(self, total):
            self.total, self.n = total, 0
            bars.append(self)

        def update(self, k=1):
            self.n += k

        def set_description(self, _d):
            pass

        def close(self):
            pass
    monkeypatch.setattr(suite, "_progress", Bar)
    monkeypatch.setattr(benchmarks.state_bench, "run", lambda **k: {"n": 1})
    suite.main(["--quick", "--out", str(tmp_path)] + _skip_but("state"))
    assert bars[0].total == bars[0].n == 1


def test_capacity_assumptions_use_this_runs_dnc_memory_and_help_says_the_full_run_installs_packages():
    # the report's capacity model said "30 MB per 10M DNC numbers" whatever the run measured (or did not), and
    # "until a shared counter store replaces the in-process one" after --state redis:// had landed; --help did not
    # say that a run without --quick installs Kamailio (and state_bench redis-server) with apt-get
    res = {"lists": {"roaring": [{"n": 10_000_000, "rss_mb": 41.7}]}}
    text = " ".join(suite.capacity(res)["assumptions"])
    assert "42 MB per 10M DNC numbers in this run" in text and "30 MB" not in text
    assert "--state redis://" in text
    assert "not run here" in " ".join(suite.capacity({})["assumptions"])
    import io
    from contextlib import redirect_stdout
    buf = io.StringIO()
    with redirect_stdout(buf):
        try:
            suite.main(["--help"])
        except SystemExit:
            pass
    assert "installs Kamailio with apt-get" in " ".join(buf.getvalue().split())
    from engine.cli import parser
    sub = parser()._subparsers._group_actions[0].choices["bench"]
    assert "installs Kamailio with apt-get" in " ".join(sub.format_help().split())
