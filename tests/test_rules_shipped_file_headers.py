"""The shipped rule files are what engineers copy and edit: each starts with its syntax and an example (README "Rule
files"), and a README section a config file sends the reader to exists. 40-spam-senders.toml had no syntax line and
sent its reader to a "Tuning" section the README does not have."""
import re

from .conftest import CONFIG, ROOT

README = (ROOT / "README.md").read_text()
# a section heading, or the lead of a bullet or bold paragraph the README itself names as a section ("SMPP over TLS")
SECTIONS = {m.group(1).strip() for m in re.finditer(r"^#{2,4} (.+)$", README, re.M)} | \
    {m.group(1).strip() for m in re.finditer(r"^(?:- |\*\*)([^(:*\n]+?)\s*(?:\(|:|\*\*)", README, re.M)}


def _header(f):
    lines = []
    for line in f.read_text().splitlines():
        if not line.startswith("#"):
            break
        lines.append(line)
    return "\n".join(lines)


def test_each_rule_file_starts_with_its_syntax_and_an_example():
    for f in sorted((CONFIG / "rules").glob("*.toml")):
        head = _header(f)
        assert re.search(r"^# Syntax:", head, re.M) and re.search(r"^# Example:", head, re.M), f.name


def test_every_readme_section_a_config_file_names_exists():
    named = []
    for f in sorted(CONFIG.rglob("*.toml")):
        named += [(f.name, m.group(1)) for m in re.finditer(r'README "([^"]+)"', f.read_text())]
    assert named, "no README reference found: the pattern is stale"
    assert [n for n in named if n[1] not in SECTIONS] == []
