"""The smaller benchmark tools the README names answer --help and refuse bad arguments with a clear error (exit 2, no
traceback). Before (found by the bench probe): `benchmarks.traffic --help` stopped on int('--help');
`smpp_cpu --n 0` printed 0.0 µs per submit_sm from no message, `--modes bogus` ran as the trivial mode; `smpp_p99
--code /nonexistent` and `rules_scale --sizes abc` ended in a traceback; `smpp_p99 --rate 0` and `smpp_check
--seconds 0` ran and printed figures from one message; `engine.ml.bench --n 0` divided by zero and `--model` a
missing directory gave a traceback; `engine.sip_screen.cpubench --rate 0` waited 30 s and printed 140,000 µs per call
from no call. And cpubench left out the Kamailio baseline without a word when Kamailio is missing. Nothing is
measured here: every refused run stops before it starts a server."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

BAD = [
    ("benchmarks.smpp_cpu", "--n", "0"), ("benchmarks.smpp_cpu", "--binds", "x"),
    ("benchmarks.smpp_cpu", "--modes", "bogus"), ("benchmarks.smpp_cpu", "--modes", "real@/nonexistent"),
    ("benchmarks.smpp_p99", "--rate", "0"), ("benchmarks.smpp_p99", "--seconds", "-1"),
    ("benchmarks.smpp_p99", "--code", "/nonexistent"), ("benchmarks.smpp_p99", "--pacing", "fast"),
    ("benchmarks.smpp_check", "--seconds", "0"), ("benchmarks.smpp_check", "--campaign-share", "2"),
    ("benchmarks.smpp_check", "--code", "/nonexistent"),
    # --config DIR (the proxy's config, e.g. another timezone for the day or the night policy): a directory without
    # telfilter.toml is refused before anything starts
    ("benchmarks.smpp_check", "--config", "/nonexistent"), ("benchmarks.smpp_check", "--config", "benchmarks"),
    ("benchmarks.smpp_instr", "--config", "/nonexistent"),
    ("benchmarks.rules_scale", "--sizes", "abc"), ("benchmarks.rules_scale", "--n", "-1"),
    ("benchmarks.traffic", "x"), ("benchmarks.traffic", "0"),
    ("engine.ml.bench", "--n", "0"), ("engine.ml.bench", "--model", "/nonexistent"),
    ("engine.sip_screen.cpubench", "--rate", "0"), ("engine.sip_screen.cpubench", "--seconds", "0"),
    ("benchmarks", "--quick", "--out", "/proc/no/such/dir"),        # a traceback from mkdir before
    ("benchmarks.lists_reload_bench", "run", "/nonexistent"), ("benchmarks.lists_reload_bench", "run", "x", "--rounds", "0"),
    ("benchmarks.sip_flood", "--seconds", "0"), ("benchmarks.sip_flood", "--rounds", "0"),
    ("benchmarks.sip_flood", "--port", "80"),
    ("benchmarks.smpp_flood", "--seconds", "0"), ("benchmarks.smpp_flood", "--kind", "bind"),
    ("benchmarks.smpp_flood", "--code", "/nonexistent"),
    # the soak ran for --minutes 0 and -1 (a 30-s soak and figures), --sample 0 spun; a --port-base past 65535 or an
    # --out it cannot make ended in a traceback (a port past 65535 after starting the SMSC child)
    ("benchmarks.soak", "--minutes", "0"), ("benchmarks.soak", "--minutes", "-1"), ("benchmarks.soak", "--sample", "0"),
    ("benchmarks.soak", "--port-base", "70000"), ("benchmarks.soak", "--out", "/proc/no/such/dir"),
    # state_bench measured --n 0 messages (figures from none); an --out it cannot write was a traceback after the run
    ("benchmarks.state_bench", "--n", "0"), ("benchmarks.state_bench", "--out", "/proc/no/such/dir/state.json"),
    # smpp_instr: --n 0 printed a row from no message; --tree and --diff naming nothing were tracebacks
    ("benchmarks.smpp_instr", "--n", "0"), ("benchmarks.smpp_instr", "--tree", "/nonexistent"),
    ("benchmarks.smpp_instr", "--diff", "/nonexistent"), ("benchmarks.smpp_instr", "--diff", "README.md"),
    ("benchmarks.smpp_instr", "--json", "/proc/no/such/dir/rows.json"),
    # instrbench: --calls 0 divided by zero after a sipp capture; --messages missing or not JSON were tracebacks
    ("engine.sip_screen.instrbench", "--calls", "0", "--cprofile"),
    ("engine.sip_screen.instrbench", "--messages", "/nonexistent", "--cprofile"),
    ("engine.sip_screen.instrbench", "--messages", "README.md", "--cprofile"),
    ("engine.sip_screen.cpubench", "--per-type", "--interleave", "-1"),     # ValueError: negative count
    # smpp_check: a first and a last --edge seconds that overlap gave a growth of the same seconds (1.0 at --seconds 3)
    ("benchmarks.smpp_check", "--seconds", "10", "--edge", "6"),
    # lists_bench (the suite's lists step, one measurement a process): a mode it does not know printed nothing and
    # exited 0; no mode, a missing count or a count that is no number ended in a traceback
    ("benchmarks.lists_bench",), ("benchmarks.lists_bench", "bogus"), ("benchmarks.lists_bench", "build"),
    ("benchmarks.lists_bench", "pyset", "abc"), ("benchmarks.lists_bench", "counters", "0"),
    ("benchmarks.lists_bench", "load", "/nonexistent"),
    # scheduled_dnc_tick: a size past the scheduled ads' index bound (200,000) ended in a traceback once the index
    # refused an ad (its stand-in proxy has no stats), after minutes of set-up at larger sizes
    ("benchmarks.scheduled_dnc_tick", "--sizes", "1000,200001"),
    ("benchmarks.scheduled_expire_tick", "--sizes", "1000,200001"), ("benchmarks.scheduled_expire_tick", "--sizes", "x"),
    ("benchmarks.sip_message_cost", "--n", "0"), ("benchmarks.sip_message_cost", "--rounds", "0"),
]


def _run(*args):
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, cwd=ROOT, timeout=60)


@pytest.mark.parametrize("args", BAD, ids=lambda a: " ".join(a))
def test_a_bad_argument_is_refused_with_a_clear_error(args):
    p = _run(*args)
    assert p.returncode == 2 and "Traceback" not in p.stderr and "error:" in p.stderr, (p.returncode, p.stderr)


@pytest.mark.parametrize("mod", ["benchmarks.smpp_cpu", "benchmarks.smpp_p99", "benchmarks.smpp_check",
                                 "benchmarks.rules_scale", "benchmarks.traffic", "benchmarks.capacity", "benchmarks.lists_reload_bench",
                                 "benchmarks.sip_flood", "benchmarks.smpp_flood", "engine.ml.bench", "engine.sip_screen.cpubench",
                                 "benchmarks.soak", "benchmarks.state_bench", "benchmarks.smpp_instr",
                                 "engine.sip_screen.instrbench", "benchmarks.lists_bench", "benchmarks.sip_message_cost"])
def test_help_answers(mod):
    p = _run(mod, "--help")
    assert p.returncode == 0 and "usage:" in p.stdout and "Traceback" not in p.stderr, p.stderr


def test_cpubench_says_when_kamailio_is_missing_and_removes_its_files(monkeypatch, tmp_path):
    # (each run also left /tmp/tf-sipcpu-*: serve's data directory, verdicts, sipp's statistics)
    import engine.sip_screen.cpubench as cb
    made = []
    monkeypatch.setattr(cb, "_one", lambda target, rate, seconds, tmp, *a: made.append(tmp) or {"target": target})
    monkeypatch.setattr(cb.shutil, "which", lambda name: None)
    monkeypatch.setattr(cb.tempfile, "tempdir", str(tmp_path))
    out = cb.measure(10, 1, relay=False, kamailio=True)
    assert "not installed" in out["kamailio"]["error"]
    assert "kamailio" not in cb.measure(10, 1, relay=False, kamailio=False)
    assert made and not any(d.exists() for d in made)


@pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp (Debian sip-tester) makes --per-type's call")
def test_cpubench_via_flood_and_per_type_remove_their_files(own_tempdir):
    # each run left /tmp/tf-viaflood-* (serve's data dir) or /tmp/tf-siptype-* (the lists, the state store, the
    # verdict log, sipp's files): made with mkdtemp and never removed
    import engine.sip_screen.cpubench as cb
    assert set(cb.via_flood(n=1, vias=5)) == {"one_header", "header_lines"}        # (its figures are not checked)
    out = cb.per_type(calls=3)
    assert out["sent"] == out["expected"] == 18, out
    assert sorted(x.name for x in own_tempdir.iterdir()) == []


@pytest.mark.parametrize("mod", ["benchmarks.sip_flood", "engine.sip_screen.cpubench", "engine.sip_screen.instrbench",
                                 "engine.ml.bench", "benchmarks.smpp_codec_bench", "benchmarks.sip_message_cost"])
def test_help_names_the_command_to_run_and_ends_its_sentence(mod):
    # sip_flood's description stopped mid-sentence ("... through a flood from another address, with the"), and the
    # engine's benchmarks named themselves `cpubench.py`, `instrbench.py`, `bench.py`: run so, they fail to import;
    # smpp_codec_bench did both ("smpp_codec_bench.py", "... what the pipeline reads (addresses, text,")
    p = _run(mod, "--help")
    assert p.stdout.startswith(f"usage: python -m {mod} "), p.stdout.splitlines()[0]
    description = p.stdout.split("\n\n")[1]
    assert description.rstrip().endswith((".", ")", ":")), description


def test_smpp_check_growth_edges_never_overlap():
    # --seconds 3 with the default --edge 10 printed growth 1.0: first and last "10 s" were the same 3 s
    from benchmarks.smpp_check import growth_edge
    assert growth_edge(40, None) == 10 and growth_edge(3, None) == 1 and growth_edge(40, 5) == 5
    assert growth_edge(10, 6) is None


@pytest.mark.parametrize("opt", ["--config", "--data-dir"])
def test_telfilter_bench_refuses_a_config_or_data_dir_it_would_not_use(opt, tmp_path):
    # `telfilter bench --config /etc/telfilter` took the option and measured the shipped config without a word
    p = _run("engine.cli", "bench", "--quick", opt, str(tmp_path), "--out", "/proc/no/such/dir")
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    assert f"{opt} is not used" in p.stderr, p.stderr


def test_telfilter_bench_help_says_config_and_data_dir_are_refused():
    # `telfilter bench --help` offered "--config DIR  config directory (default: the shipped config/)" and the
    # data-dir's seeding, options bench then refuses
    p = _run("engine.cli", "bench", "--help")
    assert p.returncode == 0, p.stderr
    text = " ".join(p.stdout.split("options:", 1)[1].split())
    for opt in ("--config DIR", "--data-dir DIR"):
        said = text.split(opt, 1)[1].split(" --", 1)[0]
        assert "refused" in said and "shipped config/" in said, (opt, said)


def test_smpp_check_and_instr_take_a_config_dir(tmp_path):
    # the timezone smpp_check prints its local time in is --config's (it judged by Vietnamese time whatever the
    # config); smpp_instr's child builds its pipeline from the --config it is handed
    from benchmarks import smpp_check, smpp_instr
    (tmp_path / "telfilter.toml").write_text('[engine]\ntimezone = "America/New_York"\n')
    assert smpp_check._timezone(str(tmp_path)) == "America/New_York"
    assert smpp_check._timezone(None) == "Asia/Ho_Chi_Minh"
    assert "build(config_dir, data_dir)" in smpp_instr._CHILD
