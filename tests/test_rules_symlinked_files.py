"""A rule file that is a symbolic link nothing can be read through is an error naming the link, in the rules
directory: a link that loops (`20-ads.toml -> 20-ads.toml`) stopped `rules check`, `serve` and a reload with a
RuntimeError traceback, and a dangling one (a shared file moved away) was named by its missing target
(`/nonexistent:1:1: cannot read`), not by the file the engineer has to fix."""
import shutil

import pytest

from engine.rules.loader import RuleSetError, load_rules

from .conftest import CONFIG, run_cli


@pytest.mark.parametrize("target", ["self", "missing"])
def test_an_unreadable_link_is_an_error_naming_the_link(tmp_path, target):
    d = tmp_path / "rules"
    shutil.copytree(CONFIG / "rules", d)
    link = d / "50-shared.toml"
    link.symlink_to(link if target == "self" else tmp_path / "moved-away.toml")
    with pytest.raises(RuleSetError) as e:
        load_rules(d)
    errs = [str(x) for x in e.value.errors]
    assert len(errs) == 1 and errs[0].startswith(f"{link}:1:1: cannot read: "), errs
    p = run_cli("rules", "check", d)
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    assert p.stderr.splitlines()[0].startswith(f"{link}:1:1: cannot read: "), p.stderr
