"""The rbldnsd export's `load with:` header gives the command the README gives."""
import io
import re

from engine.lists import ListStore
from engine.lists.publish import write_blacklist

from .conftest import ROOT


def test_the_header_says_what_the_readme_says(tmp_path):
    st = ListStore(tmp_path)
    st.import_csv("blacklist", b"kind,value\ndomain,phish.example\n")
    out = io.StringIO()
    write_blacklist(st.load(), "rbldnsd", out)
    header = next(ln for ln in out.getvalue().splitlines() if ln.startswith("# load with: "))
    command = header[len("# load with: "):]
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    documented = re.findall(r"`(rbldnsd -r DIR [^`]*)`", readme)
    assert documented and all(d == command for d in documented), (command, documented)
