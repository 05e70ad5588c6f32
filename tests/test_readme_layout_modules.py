"""Every file the README's "How it is built" layout names exists where it says: an entry's directory (`engine/lists/`)
or, for a file entry (`engine/serve.py`), the directory it is in, holds each `NAME.py`, `NAME.c` and `NAME.h` its
lines name. A module renamed or moved without the layout following fails here (found by the README audit, which
checked them by hand)."""
import re

from .conftest import ROOT


def _layout_names():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split("\n## How it is built\n", 1)[1].split("```\n", 1)[1].split("```", 1)[0]
    base = None
    for line in block.splitlines():
        entry = re.match(r"(\S+)", line)
        if entry:
            path = ROOT / entry.group(1).rstrip("/")
            assert path.exists(), f"layout entry {entry.group(1)} does not exist"
            base = path if path.is_dir() else path.parent
        for name in re.findall(r"\b[A-Za-z_]\w*\.(?:py|c|h)\b", line):
            yield base, name


def test_every_file_the_layout_names_exists_in_its_entry():
    names = list(_layout_names())
    assert len(names) > 100             # the block was found and read
    missing = [f"{base.relative_to(ROOT)}/{name}" for base, name in names if not (base / name).exists()]
    assert missing == []


# made by a run or by an install, not held by the repository
_MADE_LATER = {"benchmarks/results/", "engine/shipped_config", "engine/shipped_config/rules/"}


def test_every_repository_path_the_readme_names_exists():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    named = {p.rstrip(".,:;)") for p in re.findall(r"\b(?:engine|tests|contrib|benchmarks|config)/[\w./*-]+",
                                                     readme)}
    assert len(named) > 50
    missing = sorted(p for p in named - _MADE_LATER
                     if not (list(ROOT.glob(p)) if "*" in p else (ROOT / p).exists()))
    assert missing == []
