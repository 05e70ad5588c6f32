"""A rule's score is bounded (|score| <= 1,000,000), not only finite: two rules of score 1e308 that both held
made a total of Infinity (and 1e308 with -1e308 on top of it, NaN), written as `"score": Infinity` in the
verdict and the verdict log, the very thing the loader's refusal of `score = inf` was there to prevent."""
import json

import pytest

from engine.rules.loader import RuleSetError, load_rules

from .conftest import CONFIG, run_cli


def _rules(d, score):
    d.mkdir()
    d.joinpath("a.toml").write_text("".join(f'[[rule]]\nsymbol = "X{i}"\nscore = {score}\n[rule.when]\nhas_url = true\n'
                                            for i in range(2)))
    return d


@pytest.mark.parametrize("score", ["1e308", "-1e308", "1_000_001.0"])
def test_a_score_beyond_the_bound_is_refused_where_it_is(tmp_path, score):
    with pytest.raises(RuleSetError) as e:
        load_rules(_rules(tmp_path / "r", score))
    assert str(e.value.errors[0]) == (f"{tmp_path / 'r' / 'a.toml'}:3:9: score {float(score.replace('_', '')):g} "
                                      "is beyond 1000000 either way: the hits' scores add up (two of 1e308 made "
                                      "Infinity)")


def test_scores_within_the_bound_add_up_to_json(tmp_path, data_dir):
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    for f in ("telfilter.toml", "smpp.toml", "sip.toml"):
        if (CONFIG / f).exists():
            (cfg / f).write_text((CONFIG / f).read_text())
    _rules(cfg / "rules", "1000000")
    line = json.dumps({"kind": "sms", "sender": "0901234567", "recipient": "0912345678", "text": "http://a.vn",
                       "time": "2026-03-02T10:00:00Z"})
    p = run_cli("--config", cfg, "check", "--jsonl", "-", "--data-dir", data_dir, input=line + "\n")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["score"] == 2_000_000
