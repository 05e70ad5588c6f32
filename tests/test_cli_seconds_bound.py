"""A number of seconds on the command line (`ctl --timeout`, `serve --drain-timeout`, `--start-timeout`) is
bounded: `ctl --timeout 1e10` was taken and then crashed in socket.settimeout with a traceback
(OverflowError: timestamp out of range for platform time_t) instead of a usage error."""
import pytest

from engine.cli import main
from engine.cli_parser import parser


@pytest.mark.parametrize("value", ["1e10", "1e300"])
def test_ctl_timeout_too_large_is_a_usage_error_not_a_traceback(tmp_path, capsys, value):
    with pytest.raises(SystemExit) as e:      # argparse's usage error (before: OverflowError from settimeout)
        main(["ctl", "--socket", str(tmp_path / "none.sock"), "--timeout", value, "stats"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "--timeout" in err and "at most" in err and "Traceback" not in err


@pytest.mark.parametrize("option", [["serve", "--drain-timeout"], ["serve", "--start-timeout"]])
def test_serve_timeouts_are_bounded_too(option, capsys):
    with pytest.raises(SystemExit):
        parser().parse_args([*option, "1e300"])
    assert "at most" in capsys.readouterr().err


def test_a_day_is_still_taken():
    assert parser().parse_args(["ctl", "--timeout", "86400", "stats"]).timeout == 86400.0
