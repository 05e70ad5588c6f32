"""`serve --sip-listen off` (or ''): the SIP-only flags (--sip-next-hop, --sip-allow-networks) are checked as with
SIP on, a bad value refused before anything listens (exit 2 naming the flag), a good one accepted with a warning
that it does nothing. SMPP cannot be turned off: its flags are always checked (tests/test_config_check.py)."""
import pytest

from .conftest import run_cli
from .test_config_check import SERVE_FLAG_REFUSALS


@pytest.mark.parametrize("off", ["off", ""])
@pytest.mark.parametrize("flags,says", [f for f in SERVE_FLAG_REFUSALS if f[0][0].startswith("--sip-")])
def test_sip_flags_are_checked_with_sip_off_too(off, flags, says, tmp_path):
    """A bad value is a bad value: with --sip-listen off (or '') the SIP flags were not looked at, so a unit file with
    a typo started, and failed the day SIP was turned on (or ran with a next hop nobody had checked)."""
    from engine.cli import parser
    from engine.config import ConfigError
    from engine.serve import load_serve_config
    args = parser().parse_args(["serve", "--smpp-listen", "127.0.0.1:0", "--sip-listen", off,
                                "--data-dir", str(tmp_path), *flags])
    with pytest.raises(ConfigError) as e:
        load_serve_config(args)
    assert says in str(e.value)


def test_good_sip_flags_with_sip_off_start_and_are_said_to_do_nothing(tmp_path, caplog):
    from engine.cli import parser
    from engine.serve import load_serve_config
    for off in ("off", ""):
        caplog.clear()
        args = parser().parse_args(["serve", "--smpp-listen", "127.0.0.1:0", "--sip-listen", off, "--sip-next-hop",
                                    "10.0.0.1:5060", "--sip-allow-networks", "10.0.0.0/8", "--data-dir", str(tmp_path)])
        load_serve_config(args)
        assert "--sip-next-hop, --sip-allow-networks: no effect with --sip-listen off" in caplog.text


def test_a_bad_sip_next_hop_with_sip_off_exits_2_naming_the_flag(tmp_path):
    r = run_cli("serve", "--smpp-listen", "127.0.0.1:0", "--sip-listen", "off", "--sip-next-hop", "bad hop",
                "--control-socket", "off", "--data-dir", tmp_path)
    assert r.returncode == 2 and "--sip-next-hop: next hop 'bad hop'" in r.stderr, r.stderr


def test_a_pool_worker_given_sip_off_by_the_supervisor_does_not_say_the_sip_flags_do_nothing(tmp_path, caplog,
                                                                                              monkeypatch):
    """`serve --workers 2 --sip-next-hop …`: worker 1 is started with `--sip-listen off` (SIP is worker 0's) and
    said `--sip-next-hop, --sip-allow-networks: no effect with --sip-listen off`, a flag the operator never gave,
    as if the pool's SIP screen ignored them (found by the ops walkthrough). Worker 0, or a single serve, says it."""
    from engine.supervisor import _child_argv
    from engine.cli import parser
    from engine.serve import load_serve_config
    monkeypatch.setattr("sys.argv", ["telfilter", "serve", "--smpp-listen", "127.0.0.1:0", "--sip-next-hop",
                                     "10.0.0.1:5060", "--sip-allow-networks", "10.0.0.0/8", "--data-dir",
                                     str(tmp_path), "--workers", "2"])
    argv = _child_argv(1)
    monkeypatch.setenv("TELFILTER_WORKER", "1")
    load_serve_config(parser().parse_args(argv[argv.index("serve"):]))
    assert "no effect" not in caplog.text
