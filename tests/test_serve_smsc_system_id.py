"""--smsc-system-id over SMPP 3.4's 15 octets (or outside Latin-1): serve started, its SMSC link task died on
encoding the bind (LocalProtocolError, not an OSError: no retry, nothing logged), no SMSC was ever bound and every
submit_sm was answered ESME_RTHROTTLED. smpp.toml's [upstream] system_id was checked already; the flag now is too,
at start."""
import pytest

from engine.cli import parser
from engine.config import ConfigError

from .conftest import CONFIG


def _args(tmp_path, *flags):
    return parser().parse_args(["serve", "--config", str(CONFIG), "--data-dir", str(tmp_path / "d"), "--smpp-listen",
                                "127.0.0.1:0", "--sip-listen", "off", "--esme-account", "e1:pw",
                                "--smsc", "127.0.0.1:9", *flags])


@pytest.mark.parametrize("sid", ["1234567890123456", "telfilterđ"])
def test_an_smsc_system_id_no_bind_can_carry_is_refused_at_start(tmp_path, sid):
    from engine.serve import load_serve_config
    with pytest.raises(ConfigError) as e:
        load_serve_config(_args(tmp_path, "--smsc-system-id", sid))
    assert "--smsc-system-id" in str(e.value)


def test_a_15_octet_smsc_system_id_is_taken(tmp_path):
    from engine.serve import load_serve_config
    _, settings = load_serve_config(_args(tmp_path, "--smsc-system-id", "123456789012345"))
    assert settings.smsc_system_id == "123456789012345"


def test_an_internal_error_on_an_smsc_link_is_said_and_the_link_tried_again(caplog):
    """Whatever stops a link's bind other than the network (here a system_id no bind can carry, set past the start's
    check) ended its task in silence: no SMSC bound for good, nothing in the log. Now said with its traceback,
    counted, and tried again with the back-off."""
    import logging
    import time

    from engine.app import build
    from engine.smpp_proxy.accounts import SmppSettings
    from engine.smpp_proxy.harness import ProxyHarness
    settings = SmppSettings(smsc_system_id="1234567890123456", reconnect_min=0.05, reconnect_max=0.1)
    with caplog.at_level(logging.ERROR, logger="telfilter.smpp"):
        with ProxyHarness(build(with_model=False, persist=False), settings=settings, wait_bound=False) as h:
            end = time.monotonic() + 5
            while h.proxy.stats["smsc_link_errors"] < 2 and time.monotonic() < end:
                time.sleep(0.05)
            assert h.proxy.stats["smsc_link_errors"] >= 2          # tried again, not ended
    assert any("internal error on its link" in r.getMessage() and r.exc_info for r in caplog.records)


@pytest.mark.parametrize("smsc", ["[::1", "::1:2775", "[zz]:2775"])
def test_an_smsc_address_with_an_ipv6_host_not_in_brackets_is_refused_at_start(tmp_path, smsc):
    """`--smsc [::1` (a bracket missing) was taken as host "[:" port 1: every bind failed on a name nobody has,
    said at each retry, and no SMSC was ever bound (found by the SMPP probe). smpp.toml's [upstream] smsc alike."""
    from engine.serve import load_serve_config
    from engine.smpp_proxy.config_checks import host_port_error
    args = _args(tmp_path)
    args.smsc = smsc
    with pytest.raises(ConfigError) as e:
        load_serve_config(args)
    assert f"--smsc {smsc!r}" in str(e.value) and "brackets" in str(e.value)
    assert host_port_error("[::1]:2775") is None and host_port_error(smsc)
