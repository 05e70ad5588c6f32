"""The classifier is asked only when the rules have not dropped the message: a text a rule drops costs no scoring
(its ML_SPAM hit could not change the drop), and a message the rules let through is scored, its hit first."""
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

from engine.app import build
from engine.verdict import Action, Message

ROOT = Path(__file__).resolve().parents[1]
T = datetime(2026, 11, 28, 4, 0, tzinfo=timezone.utc)          # 11:00 in Hanoi
PHISH = "Tai khoan cua ban bi khoa, xac minh ngay tai vnbank-xacminh.example de tranh bi dong bang"
PRIZE = "Chuc mung ban trung thuong iPhone 15, soan NHAN gui 8x77 de nhan qua ngay hom nay"


def _pipeline(tmp_path):
    subprocess.run([sys.executable, "-m", "engine.cli", "lists", "add", "--data-dir", str(tmp_path), "blacklist",
                    "vnbank-xacminh.example"], cwd=ROOT, check=True, capture_output=True)
    pipe = build(data_dir=tmp_path, persist=False, with_model=True)
    scored = []
    score = pipe.model._score
    pipe.model._score = lambda text: (scored.append(text), score(text))[1]
    return pipe, scored


def test_a_text_a_rule_drops_is_not_scored(tmp_path):
    pipe, scored = _pipeline(tmp_path)
    v = pipe.judge(Message("0987654321", "0912345678", PHISH, T))
    assert v.action is Action.DROP
    assert [h.symbol for h in v.hits] == ["URL_BLACKLISTED"]
    assert scored == []


def test_a_text_the_rules_let_through_is_scored_its_hit_first(tmp_path):
    pipe, scored = _pipeline(tmp_path)
    v = pipe.judge(Message("0987654321", "0912345678", PRIZE, T))
    assert scored == [PRIZE]
    assert v.action is Action.DROP and v.hits[0].symbol == "ML_SPAM"
    # the same message the model would let through: rules only, and it was asked
    ham = "Chieu nay 5h anh qua don em o cong truong nhe, nho mang ao mua"
    v = pipe.judge(Message("0987654321", "0912345679", ham, T))
    assert scored[-1] == ham and "ML_SPAM" not in [h.symbol for h in v.hits]
