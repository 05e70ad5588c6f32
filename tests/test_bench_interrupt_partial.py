"""`python -m benchmarks` interrupted (Ctrl-C, SIGTERM) writes what the steps before the interrupted one measured
and says where. Before, the interrupt ended the run with a traceback and an empty results directory: a 20-minute
full run stopped in its last step lost every figure (found by the bench probe). The steps are stand-ins."""
import json

import pytest

import benchmarks.__main__ as suite
import benchmarks.sip_bench
import benchmarks.state_bench

ALL = ["pipeline", "lists", "longrun", "smpp", "sip", "sip_flood", "state"]


def _skip_but(*keep):
    return [x for s in ALL if s not in keep for x in ("--skip", s)]


@pytest.mark.parametrize("exc,rc,name", [(KeyboardInterrupt(), 130, "SIGINT"), (SystemExit(143), 143, "SIGTERM")])
def test_an_interrupted_run_writes_the_steps_before_it_and_says_where(tmp_path, monkeypatch, capsys, exc, rc, name):
    ran = []
    monkeypatch.setattr(benchmarks.sip_bench, "run", lambda *a, **k: {"steps": [], "kamailio": None})

    def state_interrupted(**k):
        ran.append(k)
        raise exc
    monkeypatch.setattr(benchmarks.state_bench, "run", state_interrupted)
    out = tmp_path / "out"
    assert suite.main(["--quick", "--out", str(out)] + _skip_but("sip", "state")) == rc
    assert ran
    s = json.loads((out / "summary.json").read_text())
    assert s["interrupted"]["step"] == "state" and name in s["interrupted"]["signal"]
    assert "interrupted" in s["failed_steps"]["state"] and "sip" not in s["failed_steps"]
    assert "interrupted" in (out / "report.md").read_text()
    err = capsys.readouterr().err
    assert "interrupted" in err and str(out) in err and "Traceback" not in err


@pytest.mark.parametrize("mod,args", [("smpp_bench", ([], 1, 1, 1)), ("sip_bench", ([500], 1))])
def test_an_interrupted_smpp_or_sip_step_removes_its_working_directory(tmp_path, monkeypatch, mod, args):
    # they were kept (as after a failure, whose error names the logs there): ~20 MB of seeded lists per SMPP step
    import importlib
    m = importlib.import_module(f"benchmarks.{mod}")
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    monkeypatch.setattr("shutil.which", lambda name: "/usr/bin/" + name)

    def interrupted(tmp, *a, **k):
        (tmp / "data").mkdir()
        raise KeyboardInterrupt
    monkeypatch.setattr(m, "_run", interrupted)
    with pytest.raises(KeyboardInterrupt):
        m.run(*args)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("mod,args", [("smpp_bench", ([], 1, 1, 1)), ("sip_bench", ([500], 1))])
def test_a_failed_smpp_or_sip_step_keeps_its_working_directory_for_the_logs_its_error_names(tmp_path, monkeypatch,
                                                                                           mod, args):
    import importlib
    m = importlib.import_module(f"benchmarks.{mod}")
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    monkeypatch.setattr("shutil.which", lambda name: "/usr/bin/" + name)

    def failed(tmp, *a, **k):
        (tmp / "serve.log").write_text("bind failed\n")
        raise RuntimeError(f"proxy did not start ({tmp / 'serve.log'})")
    monkeypatch.setattr(m, "_run", failed)
    with pytest.raises(RuntimeError) as e:
        m.run(*args)
    [kept] = list(tmp_path.iterdir())
    assert (kept / "serve.log").read_text() == "bind failed\n" and str(kept) in str(e.value)
