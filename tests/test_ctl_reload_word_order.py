"""`telfilter ctl reload` takes its PARTs before, after and around its options, as its usage and --help say
([--full] ... [PART ...]): `ctl reload lists --full rules` was refused with "unrecognized arguments: rules"
(argparse's nargs="*" takes the PARTs before the first option only) while `ctl reload --full lists rules` was taken."""
import pytest

from engine.cli_checks import parse_command_line
from engine.cli_parser import parser


@pytest.mark.parametrize("words", [
    ["ctl", "reload", "lists", "--full", "rules"],
    ["ctl", "reload", "--full", "lists", "rules"],
    ["ctl", "reload", "lists", "rules", "--full"],
    ["ctl", "reload", "lists", "--timeout", "5", "rules", "--full"],
    ["ctl", "--timeout", "5", "reload", "lists", "--socket", "/x.sock", "--full", "rules"],
])
def test_reload_parts_in_any_order_with_options(words):
    args = parse_command_line(parser(), words)
    assert args.parts == ["lists", "rules"] and args.full is True


def test_reload_without_parts_is_every_part():
    args = parse_command_line(parser(), ["ctl", "reload", "--full"])
    assert not args.parts and args.full is True


def test_reload_unknown_part_after_an_option_is_refused_by_name(capsys):
    with pytest.raises(SystemExit) as e:
        parse_command_line(parser(), ["ctl", "reload", "lists", "--full", "rulez"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "telfilter ctl reload: error:" in err and "'rulez' is not one of" in err


def test_other_ctl_actions_still_parse():
    assert parse_command_line(parser(), ["ctl", "stats", "--pool"]).pool is True
    a = parse_command_line(parser(), ["ctl", "lists", "add", "dnc", "84912000777", "--channel", "S"])
    assert (a.lop, a.kind, a.value, a.channel) == ("add", "dnc", "84912000777", "S")
