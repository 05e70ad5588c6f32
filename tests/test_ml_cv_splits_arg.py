"""`ml cv --splits 0` is refused as argparse refuses its other arguments (usage, the argument named, exit 2): it
said "--splits must be >= 1 and --test-size between 0 and 1", naming a --test-size that was never wrong."""
from .conftest import run_cli


def test_splits_below_one_is_refused_by_name(tmp_path):
    for v in ("0", "-3"):
        r = run_cli("ml", "cv", "--data", tmp_path / "x.tsv", "--splits", v, "--data-dir", tmp_path / "d")
        assert r.returncode == 2 and "argument --splits: must be 1 or more" in r.stderr, r.stderr
        assert "--test-size" not in r.stderr.splitlines()[-1]
