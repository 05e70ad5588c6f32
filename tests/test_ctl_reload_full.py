"""`telfilter ctl reload [PART ...] [--full]`: --full reads every list again (README, ctl)."""
from .conftest import run_cli


def test_full_without_the_lists_part_is_a_usage_error_before_serve_is_asked(tmp_path):
    """Found by a day-one audit: `ctl reload rules --full` reloaded the rules and ignored --full without a word."""
    p = run_cli("ctl", "--socket", tmp_path / "none.sock", "reload", "rules", "model", "--full")
    assert p.returncode == 2, p.stderr
    assert p.stderr.strip() == "telfilter ctl reload: error: --full is for the lists part, not named in rules model"


def test_full_with_the_lists_part_or_every_part_goes_to_serve(tmp_path):
    for parts in (["rules", "lists"], []):
        p = run_cli("ctl", "--socket", tmp_path / "none.sock", "reload", *parts, "--full")
        assert p.returncode == 2 and "no telfilter serve answers" in p.stderr, p.stderr
