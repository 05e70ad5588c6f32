"""A TOML file that ends too soon (an unclosed `[`, a string never closed, a key with no value) is an error tomllib
places `(at end of document)`, not `(at line L, column C)`: the rules loader reported it at 1:1 and the config
reader with no position at all (`smpp.toml: Invalid value (at end of document)`). Both give the end of the last
line that is not blank now, where an editor shows the problem."""
import shutil

import pytest

from engine.config import ConfigError, read_toml
from engine.rules.loader import RuleSetError, load_rules

from .conftest import CONFIG


def test_a_rule_file_that_ends_too_soon_is_placed_at_its_end(tmp_path):
    d = tmp_path / "rules"
    shutil.copytree(CONFIG / "rules", d)
    f = d / "40-spam-senders.toml"
    n = f.read_text().count("\n")
    with open(f, "a") as fh:
        fh.write("oops = [\n\n")
    with pytest.raises(RuleSetError) as e:
        load_rules(d)
    assert [str(x).rsplit("/", 1)[-1] for x in e.value.errors] == [f"40-spam-senders.toml:{n + 1}:9: TOML syntax: Invalid value"
                                                 " (at end of document)"]


@pytest.mark.parametrize("tail, col", [("listen = [\n", 11), ('motd = """never closed\n  \n', 23)])
def test_a_config_file_that_ends_too_soon_is_placed_at_its_end(tmp_path, tail, col):
    p = tmp_path / "smpp.toml"
    p.write_text("[server]\n" + tail)
    with pytest.raises(ConfigError) as e:
        read_toml(p)
    assert str(e.value).startswith(f"{p}:2:{col}: ") and "(at end of document)" in str(e.value), str(e.value)
