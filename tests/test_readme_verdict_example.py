"""The README's "What a verdict looks like" example: the command it shows gives the verdict it shows.

It named `20-advertising-sms.toml:187` for AD_TO_DNC after the rule had moved to line 193 (found by the README
audit); the action, score, symbol, the evidence around its elided part and the source line are compared here."""
import json
import re
import shlex

from .conftest import ROOT, run_cli


def test_the_readme_check_example_gives_the_verdict_it_shows(tmp_path):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split("## What a verdict looks like", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    command, shown = block.split("\n", 1)
    assert command.startswith("$ telfilter check ")
    shown = json.loads(shown.replace("\n", " "))
    # the implicit data dir (seeded with the sample lists), as on a fresh machine
    env = {"XDG_DATA_HOME": str(tmp_path), "TELFILTER_DATA_DIR": ""}
    p = run_cli(*shlex.split(command)[2:], env=env)
    assert p.returncode == 0, p.stderr
    got = json.loads(p.stdout)
    assert (got["action"], got["score"]) == (shown["action"], shown["score"])
    assert [(h["symbol"], h["score"], h["source"]) for h in got["hits"]] == \
        [(h["symbol"], h["score"], h["source"]) for h in shown["hits"]]
    for g, s in zip(got["hits"], shown["hits"]):
        head, _, tail = s["detail"].partition("…")
        assert re.fullmatch(re.escape(head) + ".*" + re.escape(tail), g["detail"]), (g["detail"], s["detail"])
