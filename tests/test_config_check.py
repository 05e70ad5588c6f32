"""`telfilter config check`, serve's start-up check, --version and help on every flag."""
import argparse
import shutil
import subprocess
import sys

import pytest

from benchmarks import ports
from engine.cli import parser
from engine.config import ConfigError, load_settings

from .conftest import CONFIG, ROOT, run_cli


@pytest.fixture
def cfg(tmp_path):
    d = tmp_path / "config"
    shutil.copytree(CONFIG, d)
    return d


def test_shipped_config_checks_clean():
    r = run_cli("config", "check")
    assert r.returncode == 0, r.stderr
    for name in ("telfilter.toml: OK", "smpp.toml: OK", "sip.toml: OK", "rules: OK"):
        assert name in r.stdout


def test_unknown_key_and_type_errors_name_file_and_line(cfg):
    (cfg / "telfilter.toml").write_text('# comment\n[engine]\ntimezon = "UTC"\n\n[ml]\nenabled = "yes"\nmin_words = 4\n'
                                        '[smpp]\nlisten = "x"\n')
    with pytest.raises(ConfigError) as ei:
        load_settings(cfg)
    errs = ei.value.errors
    assert any(e.endswith("telfilter.toml:3:1: unknown key 'timezon' in [engine] (did you mean 'timezone'?)") for e in errs), errs
    assert any("telfilter.toml:6:1: [ml] enabled must be true or false" in e for e in errs), errs
    assert any("telfilter.toml:8:1: unknown table [smpp]" in e for e in errs), errs
    r = run_cli("config", "check", cfg)
    assert r.returncode == 2 and "telfilter.toml:3:1: unknown key 'timezon'" in r.stderr
    # a key above every table (pasted at the top of the file) is named with its own line
    (cfg / "telfilter.toml").write_text('# settings\n\ntimezon = "UTC"\nshortcode = "5656"\n[engine]\n')
    r = run_cli("config", "check", cfg)
    assert r.returncode == 2 and "telfilter.toml:3:1: key 'timezon' outside any table (did you mean 'timezone'?)" in r.stderr
    assert "telfilter.toml:4:1: key 'shortcode' outside any table (it belongs in [engine])" in r.stderr
    assert "Traceback" not in r.stderr
    # every other command refuses the same file the same way
    r = run_cli("lists", "stats", "--config", cfg, "--data-dir", cfg.parent / "data")
    assert r.returncode == 2 and "telfilter.toml:3:1" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("name,body,where", [
    ("smpp.toml", "[server]\nmax_pdu = 10\nlisten = \n", "smpp.toml:3:"),
    ("smpp.toml", "[[account]]\nsystem_id = 'x'\n", "smpp.toml:1:1: account #1 'x': password_hash is required"),
    ("smpp.toml", "[[account]]\nsystem_id = 'x'\npassword_hash = 'pbkdf2_sha256$1$00$00'\n\n[[account]]\n"
                  "system_id = 'y'\npassword_hash = 'pbkdf2_sha256$1$00$00'\nallowed_networks = ['10.0.0.0/40']\n",
     "smpp.toml:8:1: account #2 'y': "),
    ("smpp.toml", "[[account]]\nsystem_id = 'x'\npassword_hash = 'pbkdf2_sha256$1$00$00'\nmax_bind = 2\n",
     "smpp.toml:4:1: account #1 'x': unknown key 'max_bind' (did you mean 'max_binds'?)"),
    ("sip.toml", "[sip]\nallow_networks = ['10.0.0.0/8', 'nope']\n", "sip.toml:2:1: [sip] allow_networks 'nope'"),
    ("sip.toml", "[sip]\n\nnext_hop = '10.0.0.1:x'\n", "sip.toml:3:1: [sip] next_hop"),
    ("sip.toml", "[sips]\nnext_hop = '10.0.0.1'\n", "sip.toml:1:1: unknown table [sips]"),
    ("sip.toml", "[sip]\nnext_hopp = '1.2.3.4'\n", "sip.toml:2:1: unknown key [sip] next_hopp"),
    ("sip.toml", "\x00\xff", "sip.toml:1:1: not UTF-8"),
    ("telfilter.toml", "[engine]\ntimezone = 'Mars/Olympus'\n", "telfilter.toml:2:1: unknown time zone"),
    ("rules/99-bad.toml", "[[rule]]\nsymbol = 'X'\n[rule.when]\nnope = 1\n", "99-bad.toml:4"),
])
def test_each_file_is_checked(cfg, name, body, where):
    (cfg / name).write_bytes(body.encode("latin-1"))
    r = run_cli("config", "check", cfg)
    assert r.returncode == 2 and where in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


def _free_port():
    return ports.free_port()


@pytest.mark.parametrize("name,body,where", [
    ("sip.toml", "[sip]\nnext_hopp = '1.2.3.4'\n", "sip.toml:2:1"),
    ("smpp.toml", "[server\n", "smpp.toml:1:"),
    ("telfilter.toml", "[engine]\ntimezon = 'UTC'\n", "telfilter.toml:2:1"),
])
def test_serve_refuses_a_bad_config_before_listening(cfg, tmp_path, name, body, where):
    (cfg / name).write_text(body)
    port = _free_port()
    p = subprocess.run([sys.executable, "-m", "engine.cli", "serve", "--config", cfg, "--data-dir", tmp_path / "data",
                        "--smpp-listen", f"127.0.0.1:{port}", "--sip-listen", "127.0.0.1:0"],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert p.returncode == 2, p.stderr
    assert where in p.stderr and "Traceback" not in p.stderr
    assert "listening" not in p.stderr


@pytest.mark.parametrize("flags,says", [
    (["--esme-account", "nopassword"], "--esme-account: expected SYSTEM_ID:PASSWORD"),      # (never echoed)
    (["--smpp-listen", "127.0.0.1:abc"], "--smpp-listen '127.0.0.1:abc': expected HOST:PORT"),
    (["--sip-listen", "no-such-host.invalid:5060"], "--sip-listen 'no-such-host.invalid:5060'"),
    (["--smsc", "127.0.0.1:2776,oops"], "--smsc 'oops': expected HOST:PORT"),
])
def test_serve_refuses_bad_flags_before_listening(tmp_path, flags, says):
    args = ["--smpp-listen", "127.0.0.1:0", "--sip-listen", "off"] + flags
    p = subprocess.run([sys.executable, "-m", "engine.cli", "serve", "--data-dir", tmp_path / "data", *args],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and says in p.stderr and "Traceback" not in p.stderr, p.stderr
    assert "listening" not in p.stderr


def test_version():
    r = run_cli("--version")
    assert r.returncode == 0 and r.stdout.startswith("telfilter 0.")


def test_every_flag_has_help():
    missing = []

    def walk(p, path):
        if not (p.description or "").strip():       # what `telfilter ... --help` says the command does
            missing.append(" ".join(path) + " (no description)")
        for a in p._actions:
            if isinstance(a, argparse._SubParsersAction):
                for name, sp in a.choices.items():
                    walk(sp, path + [name])
            elif not a.help:
                missing.append(" ".join(path + [a.option_strings[0] if a.option_strings else a.dest]))
    walk(parser(), ["telfilter"])
    assert not missing


@pytest.mark.parametrize("name,body,where", [
    ("smpp.toml", "[server]\nmax_pdus = 10\n\n[upstream]\nwindow = 'x'\n",
     ["smpp.toml:2:1: unknown key 'max_pdus' in [server] (did you mean 'max_pdu'?)",
      "smpp.toml:5:1: [upstream] window must be an integer, got 'x'"]),
    ("smpp.toml", "[server]\nlisten = '0.0.0.0'\n", ["smpp.toml:2:1: [server] listen must be HOST:PORT"]),
    ("sip.toml", "[sip]\nlisten = 'off'\n", ["sip.toml:2:1: [sip] listen must be HOST:PORT"]),
    # an ops probe: a list or table key given one value was "smpp.toml: KeyError: <class 'list'>", no line
    ("smpp.toml", "[upstream]\nsmsc = '127.0.0.1:2776'\n",
     ["smpp.toml:2:1: [upstream] smsc must be a list, got '127.0.0.1:2776'"]),
    ("smpp.toml", "[drop]\nsilent_symbols = 'AD_TO_DNC'\n",
     ["smpp.toml:2:1: [drop] silent_symbols must be a list, got 'AD_TO_DNC'"]),
    ("smpp.toml", "[shortcode]\nreplies = 'ok'\n", ["smpp.toml:2:1: [shortcode] replies must be a table, got 'ok'"]),
])
def test_smpp_and_sip_keys_checked_each_error_on_its_line(cfg, name, body, where):
    (cfg / name).write_text(body)
    r = run_cli("config", "check", cfg)
    assert r.returncode == 2 and all(w in r.stderr for w in where), r.stderr
    assert f"{len(where)} error(s)" in r.stderr


def test_serve_listens_where_the_files_say(cfg, tmp_path):
    smpp_port = _free_port()
    (cfg / "smpp.toml").write_text((cfg / "smpp.toml").read_text().replace(
        'listen = "0.0.0.0:2775"', f'listen = "127.0.0.1:{smpp_port}"'))
    (cfg / "sip.toml").write_text((cfg / "sip.toml").read_text().replace(
        'listen = "0.0.0.0:5060"', 'listen = "127.0.0.1:0"'))
    ready = tmp_path / "ready"
    p = subprocess.Popen([sys.executable, "-m", "engine.cli", "serve", "--config", cfg, "--data-dir", tmp_path / "data",
                          "--smsc", "127.0.0.1:9", "--esme-account", "t:pw", "--log", tmp_path / "v.jsonl",
                          "--ready-file", ready], cwd=ROOT, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    try:
        for _ in range(300):
            if ready.exists() or p.poll() is not None:
                break
            import time
            time.sleep(0.1)
        assert ready.exists(), p.stderr.read() if p.poll() is not None else "not ready"
        ports = dict(line.split() for line in ready.read_text().splitlines())
        assert int(ports["smpp"]) == smpp_port and int(ports["sip"]) > 0
    finally:
        p.terminate()
        p.wait(20)
    assert p.returncode == 0


@pytest.mark.parametrize("name,body,where", [
    ("smpp.toml", "[server]\nbind_timeout = -5\nmax_connections = 0\n\n[upstream]\nwindow = -3\n"
                  "smsc = ['127.0.0.1:99999', {address = '10.0.0.1:2775', respone_timeout = 30}, 'nohostport']\n"
                  "password = 'muchtoolong'\n",
     ["smpp.toml:2:1: [server] bind_timeout must be at least 0.1", "smpp.toml:3:1: [server] max_connections must be",
      "smpp.toml:6:1: [upstream] window must be 1 to 65535", "smsc #1 address must be HOST:PORT",
      "smsc #2: unknown key 'respone_timeout'", "smsc #3 address must be HOST:PORT",
      "smpp.toml:8:1: [upstream] password is 11 octets, over SMPP 3.4's 8"]),
    ("smpp.toml", "[shortcode.replies]\nDNC_REGISTERD = 'x'\n", ["[shortcode.replies] unknown key 'DNC_REGISTERD'"]),
    ("smpp.toml", "[shortcode]\nconfirm = true\nlong_replies = 'concat'\n",
     ["smpp.toml:3:1: [shortcode] long_replies must be \"parts\" (concatenated SMS) or \"payload\""]),
    ("smpp.toml", "[shortcode.replies]\nlong_replies = 'payload'\n",
     ["smpp.toml:2:1: [shortcode.replies] unknown key 'long_replies' (it belongs in [shortcode])"]),
    # a confirmation no concatenated message holds (one octet numbers the parts)
    ("smpp.toml", "[shortcode.replies]\nSPAM_REPORTED = '" + "x" * 39016 + "'\n",
     ["smpp.toml:2:1: [shortcode.replies] SPAM_REPORTED is over 255 SMS"]),
    # only a DNC command names a channel: the subscriber would get "{channel}" itself
    ("smpp.toml", "[shortcode.replies]\nSPAM_REPORTED = 'Cam on ({channel})'\n",
     ["smpp.toml:2:1: [shortcode.replies] SPAM_REPORTED: {channel} is replaced in DNC_REGISTERED"]),
    ("telfilter.toml", "[ml]\ntag_threshold = -0.5\ndrop_threshold = 1.5\nmin_words = 0\n",
     ["telfilter.toml:2:1: [ml] tag_threshold is a probability", "telfilter.toml:3:1: [ml] drop_threshold is a "
      "probability", "telfilter.toml:4:1: [ml] min_words must be at least 1"]),
    # a short code no message is addressed to: every DK DNC / HUY DNC / spam report passed as an ordinary SMS
    ("telfilter.toml", "[engine]\nshortcode = 'S656'\n",
     ["telfilter.toml:2:1: [engine] shortcode must be the short code's digits (1 to 6, e.g. \"5656\"), got 'S656'"]),
    ("telfilter.toml", "[engine]\nshortcode = ''\n", ["telfilter.toml:2:1: [engine] shortcode must be"]),
    ("telfilter.toml", "[engine]\nshortcode = -1\n", ["telfilter.toml:2:1: [engine] shortcode must be"]),
    ("telfilter.toml", "[ml]\nmodel = '/nonexistent/model'\n",
     ["telfilter.toml:2:1: [ml] model '/nonexistent/model' is not a model directory"]),
])
def test_values_that_cannot_work_are_errors_at_their_line(cfg, name, body, where):
    (cfg / name).write_text(body)
    r = run_cli("config", "check", cfg)
    assert r.returncode == 2 and all(w in r.stderr for w in where), r.stderr


def test_serve_with_a_missing_model_is_a_start_up_error_not_a_traceback(cfg, tmp_path):
    (cfg / "telfilter.toml").write_text("[ml]\nmodel = '/nonexistent/model'\n")
    r = subprocess.run([sys.executable, "-m", "engine.cli", "serve", "--config", str(cfg), "--data-dir",
                        str(tmp_path / "d"), "--smpp-listen", "127.0.0.1:0", "--sip-listen", "off"],
                       capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert r.returncode == 2 and "not a model directory" in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_config_check_refuses_a_corrupt_model_as_serve_does(cfg, tmp_path):
    """A model directory with its card but damaged weights (a half-copied deploy) passed `config check` (only
    card.json's presence was looked at) while serve refused it at start, exit 2: the systemd unit's check before
    start said OK and the unit then failed (found by an operations probe). Now checked with serve's loader."""
    from engine.ml.model import default_model_dir
    model = tmp_path / "model"
    shutil.copytree(default_model_dir(), model)
    w = model / "weights.npz"
    w.write_bytes(w.read_bytes()[:1000])
    (cfg / "telfilter.toml").write_text(f"[ml]\nmodel = '{model}'\n")
    r = run_cli("config", "check", str(cfg))
    assert r.returncode == 2, r.stdout + r.stderr
    assert f"{cfg / 'telfilter.toml'}:2:1: [ml] model: " in r.stderr and "checksum" in r.stderr, r.stderr
    assert "telfilter.toml: OK" not in r.stdout
    s = subprocess.run([sys.executable, "-m", "engine.cli", "serve", "--config", str(cfg), "--data-dir",
                        str(tmp_path / "d"), "--smpp-listen", "127.0.0.1:0", "--sip-listen", "off"],
                       capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert s.returncode == 2 and "checksum" in s.stderr and "Traceback" not in s.stderr, s.stderr


def test_serve_never_removes_a_file_that_is_not_a_socket(tmp_path):
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me")
    r = subprocess.run([sys.executable, "-m", "engine.cli", "serve", "--data-dir", str(tmp_path / "d"),
                        "--smpp-listen", "127.0.0.1:0", "--sip-listen", "off", "--smsc", "127.0.0.1:1",
                        "--control-socket", str(precious)], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert r.returncode == 2 and "not a socket" in r.stderr, r.stderr
    assert precious.read_text() == "keep me"


def test_reload_and_reopen_signals_during_start_up_do_not_kill_serve(tmp_path):
    import signal

    from engine.smpp_proxy.harness import ProxyHarness

    from .test_serve import free_port, wait_for
    from engine.app import build
    sim = ProxyHarness(build(data_dir=tmp_path / "simdata", with_model=False), with_proxy=False).start()
    ready = tmp_path / "ready"
    p = subprocess.Popen([sys.executable, "-m", "engine.cli", "serve", "--data-dir", str(tmp_path / "d"),
                          "--smpp-listen", f"127.0.0.1:{free_port()}", "--smsc", f"127.0.0.1:{sim.port}",
                          "--sip-listen", "off", "--log", str(tmp_path / "v.jsonl"), "--ready-file", str(ready)],
                         cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def ignoring():                          # serve has started (its first step) and loads the rest
            try:
                with open(f"/proc/{p.pid}/status") as f:
                    mask = int(next(x for x in f if x.startswith("SigIgn:")).split()[1], 16)
            except (OSError, StopIteration):
                return False
            return bool(mask & (1 << (signal.SIGUSR2 - 1)))
        assert wait_for(ignoring, timeout=30)
        for sig in (signal.SIGUSR2, signal.SIGHUP, signal.SIGUSR1):
            p.send_signal(sig)
        assert wait_for(ready.exists, timeout=30) and p.poll() is None, p.returncode
    finally:
        p.terminate()
        p.wait(20)
        sim.stop()


@pytest.mark.parametrize("flags,says", [
    (["ctl", "--timeout", "-1", "stats"], "must be a positive number of seconds"),
    (["serve", "--drain-timeout", "nan"], "must be a positive number of seconds"),
])
def test_timeouts_must_be_positive(flags, says):
    r = run_cli(*flags)
    assert r.returncode == 2 and says in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_sip_advertise_and_next_hop_flag_are_checked(cfg, tmp_path):
    t = (cfg / "sip.toml").read_text()
    (cfg / "sip.toml").write_text(t.replace('advertise = ""', 'advertise = "1.2.3.4:99999"', 1))
    r = run_cli("config", "check", cfg)
    assert r.returncode == 2 and "[sip] advertise must be HOST or HOST:PORT" in r.stderr, r.stderr
    from engine.cli import parser
    from engine.serve import load_serve_config
    args = parser().parse_args(["serve", "--sip-next-hop", "127.0.0.1:5070;transport=tcp", "--smpp-listen",
                                "127.0.0.1:0", "--data-dir", str(tmp_path)])
    load_serve_config(args)                           # accepted: the form sip.toml's next_hop takes


SERVE_FLAG_REFUSALS = [
    (["--sip-allow-networks", "not-a-net"], "--sip-allow-networks: 'not-a-net' is not an IP network"),
    (["--events", "garbage"], "--events 'garbage': expected tcp://HOST:PORT"),
    (["--events", "tcp://127.0.0.1:99999"], "with a port of 1-65535"),
    (["--sip-next-hop", "sbc1.core:5060"], "the host must be an IP address"),
    (["--sip-next-hop", "192.0.2.1:5060"], "is outside allow_networks"),
    (["--sip-next-hop", "10.0.0.1:5060", "--sip-allow-networks", "127.0.0.0/8"], "is outside allow_networks (127.0.0.0/8)"),
    (["--ready-file", "/nonexistent-dir/ready"], "--ready-file /nonexistent-dir/ready: its directory /nonexistent-dir does not exist"),
    (["--sip-next-hop", "[::ffff:127.0.0.1]:5070"], "is an IPv4-mapped address: write the IPv4 address (127.0.0.1)"),
]


@pytest.mark.parametrize("flags,says", SERVE_FLAG_REFUSALS)
def test_serve_flags_that_cannot_work_are_refused_before_anything_listens(flags, says, tmp_path):
    """Found by a first trial: --sip-allow-networks and --events garbage were tracebacks after SMPP was listening,
    a port of 99999 was wrapped to 34463, and a next hop named by a host name (never resolved on the call path)
    or outside allow_networks started cleanly and answered every call 503."""
    from engine.cli import parser
    from engine.config import ConfigError
    from engine.serve import load_serve_config
    args = parser().parse_args(["serve", "--smpp-listen", "127.0.0.1:0", "--sip-listen", "127.0.0.1:0",
                                "--data-dir", str(tmp_path), *flags])
    with pytest.raises(ConfigError) as e:
        load_serve_config(args)
    assert says in str(e.value)


def test_a_sip_toml_next_hop_outside_its_networks_or_named_is_a_config_error(cfg):
    t = (cfg / "sip.toml").read_text()
    for hop, says in (("sbc1.core:5060", "the host must be an IP address"), ("192.0.2.1:5060", "outside allow_networks")):
        (cfg / "sip.toml").write_text(t.replace('next_hop = ""', f'next_hop = "{hop}"', 1))
        r = run_cli("config", "check", cfg)
        assert r.returncode == 2 and "[sip] next_hop" in r.stderr and says in r.stderr, r.stderr


def test_a_relative_model_path_is_relative_to_the_config_dir(tmp_path, monkeypatch):
    """serve (cwd / under systemd) and `ml promote` (an operator's shell) must name the same model."""
    import shutil

    from engine.config import load_settings
    from tests.conftest import CONFIG
    cfg = tmp_path / "cfg"
    shutil.copytree(CONFIG, cfg)
    t = cfg / "telfilter.toml"
    t.write_text(t.read_text().replace('model = ""', 'model = "models/current"', 1))
    for cwd in ("/", str(tmp_path)):
        monkeypatch.chdir(cwd)
        assert load_settings(cfg).ml_model == str(cfg / "models" / "current")


def test_config_check_says_which_files_are_not_there(cfg):
    """Found by a first trial: a removed (or misspelt) sip.toml was listed `sip.toml: OK` while its defaults ran."""
    (cfg / "sip.toml").unlink()
    r = run_cli("config", "check", cfg)
    assert r.returncode == 0, r.stderr
    assert f"{cfg / 'sip.toml'}: not found: the built-in defaults" in r.stdout
    assert f"{cfg / 'smpp.toml'}: OK" in r.stdout


def test_a_config_file_named_for_the_directory_is_said_to_be_a_file():
    # `config check config/telfilter.toml` said "config directory does not exist" of a file that exists
    for args in (("config", "check", CONFIG / "telfilter.toml"),
                 ("lists", "stats", "--config", CONFIG / "smpp.toml", "--data-dir", "/tmp/x-tf-none")):
        r = run_cli(*args)
        assert r.returncode == 2 and "is a file: name the directory holding telfilter.toml" in r.stderr, r.stderr
        assert "does not exist" not in r.stderr


def test_a_silent_symbol_no_drop_can_carry_is_an_error_at_its_line(cfg):
    """Found by a CLI probe at stop 35: a typo in smpp.toml [drop] silent_symbols (AD_TO_DNCC) passed config check,
    and the drops it meant to answer silently were answered with their error status."""
    p = cfg / "smpp.toml"
    text = p.read_text()
    assert "silent_symbols = []" in text
    p.write_text(text.replace("silent_symbols = []", 'silent_symbols = ["AD_TO_DNCC", "ML_SPAM"]'))
    line = p.read_text().splitlines().index(next(x for x in p.read_text().splitlines() if "silent_symbols" in x)) + 1
    r = run_cli("config", "check", cfg)
    assert r.returncode == 2
    assert f"smpp.toml:{line}:1: [drop] silent_symbols: 'AD_TO_DNCC' is no rule's symbol" in r.stderr, r.stderr
    assert "did you mean 'AD_TO_DNC'?" in r.stderr and "ML_SPAM'" not in r.stderr


def test_two_different_config_directories_are_refused_not_one_silently_checked(tmp_path):
    """Found by the ops probe (stop 47): `config check --config A B` checked B and said OK, though the operator named
    A too (a unit's ExecStartPre passing on another directory than serve's --config)."""
    bad = tmp_path / "bad"
    shutil.copytree(CONFIG, bad)
    (bad / "telfilter.toml").write_text("[engine]\ntimezone = 3\n")
    r = run_cli("config", "check", "--config", bad, CONFIG)
    assert r.returncode == 2 and "two config directories named" in r.stderr, (r.returncode, r.stderr)
    assert run_cli("config", "check", "--config", CONFIG, CONFIG).returncode == 0      # the same one twice: fine


def test_config_check_reads_serves_secrets_files(tmp_path):
    """Found by the ops probe (stop 47): `config check` could not check --esme-accounts-file or --smsc-password-file,
    so the shipped unit's ExecStartPre passed and serve then refused to start on them. They are read as serve reads
    them; an error names the file and line, never a password."""
    acc, pw = tmp_path / "esme.accounts", tmp_path / "smsc.password"
    acc.write_text("esme1:s3cret1\nesme2:pw2\nesme1:s3cret3\n")
    pw.write_bytes(b"\xff\xfe\n")
    for f in (acc, pw):
        f.chmod(0o600)
    r = run_cli("config", "check", "--esme-accounts-file", acc, "--smsc-password-file", pw)
    assert r.returncode == 2, r.stderr
    assert f"{acc}:3: account 'esme1' given twice" in r.stderr and f"{pw}:1: not UTF-8 text" in r.stderr, r.stderr
    assert "s3cret" not in r.stdout + r.stderr
    acc.write_text("esme1:s3cret1\nesme2:pw2\n")
    pw.write_text("upstream\n")
    r = run_cli("config", "check", "--esme-accounts-file", acc, "--smsc-password-file", pw)
    assert r.returncode == 0 and f"{acc}: 2 ESME accounts" in r.stdout, r.stdout + r.stderr
