"""Progress of a benchmark run whose stderr is a file or a pipe (nohup, a CI log, `2>&1 | tee`): one plain line as
each step starts, naming it and how many are done. The bar (tqdm) is off there, so a full run (≤ 20 minutes) used
to say nothing until its end. And the soak's line every --sample seconds says its units, rounded (it printed
`p99=6.653870129999839 cpu/msg=None`)."""
import pytest

from benchmarks.soak import progress_line


def test_each_step_is_said_as_it_starts_when_stderr_is_not_a_terminal(tmp_path, monkeypatch):
    import benchmarks.__main__ as bm
    monkeypatch.setattr("benchmarks.pipeline_bench.run", lambda n, dnc: (_ for _ in ()).throw(RuntimeError("x")))
    skip = [x for s in ("lists", "longrun", "smpp", "sip", "sip_flood", "state") for x in ("--skip", s)]
    errs = []
    monkeypatch.setattr(bm.sys, "stderr", type("F", (), {"write": lambda self, s: errs.append(s),
                                                        "flush": lambda self: None, "isatty": lambda self: False})())
    bm.main(["--quick", "--out", str(tmp_path)] + skip)
    said = "".join(errs)
    assert "benchmarks: step 1/1: pipeline" in said, said


def test_soak_progress_line_has_units():
    s = {"t": 20.0, "rss_mb": 134.44, "fds": 32, "threads": 13, "lat_p99_ms": 6.653870129999839,
         "cpu_us_per_msg": 306.7729083665339}
    assert progress_line(s) == "t=20s rss=134.4 MB fds=32 threads=13 p99=6.65 ms cpu=306.8 µs/submit_sm"
    assert progress_line({**s, "lat_p99_ms": None, "cpu_us_per_msg": None}).endswith("p99=– cpu=–")



@pytest.mark.parametrize("kamailio", [True, False])
def test_the_sip_step_moves_the_bar_for_each_run_until_its_last(tmp_path, monkeypatch, kamailio):
    """The SIP step's part of the bar is whole only when its last run (Kamailio's, when it runs) is done: it moved
    for the screen's two runs a rate alone, and stood at 100% for the relay's and Kamailio's ~9 s more."""
    import benchmarks.sip_bench as sb
    runs, moved = [], []
    monkeypatch.setattr(sb.shutil, "which", lambda name: "/usr/sbin/kamailio" if kamailio else None)
    monkeypatch.setattr(sb, "_one", lambda tmp, rate, seconds, mode, server, **kw: runs.append(server) or
                        {"server_cpu_s": 1.0, "ok": 10})
    bar = type("Bar", (), {"update": lambda self, n: moved.append((n, len(runs)))})()
    sb._run(tmp_path, [100, 200], 1.0, bar, kamailio=True)
    assert sum(n for n, _ in moved) == sb.PROGRESS_PER_RATE * 2
    assert moved[-1][1] == len(runs) == (8 if kamailio else 6)       # the bar's last move after the last run
