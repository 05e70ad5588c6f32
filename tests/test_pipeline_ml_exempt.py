"""A sender number on the mlexempt list: the classifier's drop (or tag) of its SMS becomes an allow that says so
(ML_EXEMPT, score 0, source list:mlexempt: in `check`, the verdict log and `report`), until its valid_to, read
against the message's local day; the lists, the registry and the rule files judge it as ever (a blacklist, DNC or
rule drop still wins, with no ML_EXEMPT: the classifier was never asked). `ctl lists add|remove mlexempt` on a
running serve is in force for the next message."""
import io
import json
from datetime import date, datetime, timedelta, timezone

import pytest

from engine import verdictlog
from engine.app import build
from engine.lists.mlexempt import MlExemption
from engine.verdict import Action, Message

from .conftest import run_cli

T = datetime(2026, 11, 28, 4, 0, tzinfo=timezone.utc)          # 11:00 in Hanoi
PRIZE = "Chuc mung ban trung thuong iPhone 15, soan NHAN gui 8x77 de nhan qua ngay hom nay"
AD = "[QC] Giam gia 50% cuoi tuan. TC gui 5656"
SENDER, N = "0987654321", 84987654321


@pytest.fixture(scope="module")
def pipe(tmp_path_factory):
    d = tmp_path_factory.mktemp("data")
    run_cli("--data-dir", d, "lists", "add", "blacklist", "vnbank-xacminh.example", check=True)
    run_cli("--data-dir", d, "lists", "add", "dnc", "0912000777", check=True)
    return build(data_dir=d, persist=False, with_model=True)


@pytest.fixture
def exempt(pipe):
    pipe.lists.add_ml_exemption(MlExemption(N, date(2026, 11, 28), "CSKH-48213 wedding"))
    yield pipe
    pipe.lists.ml_exempt.clear()
    pipe.settings.ml_drop_threshold = None


def _judge(pipe, text=PRIZE, sender=SENDER, recipient="0912345678", t=T):
    return pipe.judge(Message(sender, recipient, text, t), commit=False)


def test_an_exempt_senders_ml_drop_is_an_allow_that_says_so(exempt):
    v = _judge(exempt)
    assert v.action is Action.ALLOW and v.symbols == ["ML_EXEMPT"]
    h = v.hits[0]
    assert h.score == 0.0 and h.action is None and h.source == "list:mlexempt"
    assert h.detail.startswith("would drop: spam probability ") and h.detail.endswith(
        "sender exempt until 2026-11-28: CSKH-48213 wedding")
    # another number, the same text: dropped as ever
    assert _judge(exempt, sender="0987654322").symbols == ["ML_SPAM"]


def test_a_tag_is_exempted_too(exempt):
    exempt.settings.ml_drop_threshold = 0.999           # the text now only tags
    v = _judge(exempt)
    assert v.action is Action.ALLOW and v.symbols == ["ML_EXEMPT"] and v.hits[0].detail.startswith("would tag:")


def test_a_text_the_classifier_passes_carries_no_exempt_hit(exempt):
    v = _judge(exempt, text="Chieu nay 5h anh qua don em o cong truong nhe, nho mang ao mua")
    assert "ML_EXEMPT" not in v.symbols and "ML_SPAM" not in v.symbols


def test_the_lists_and_rules_still_drop_it(exempt):
    # a blacklisted link (a list drop), an ad from a number to a DNC number (rule drops): no ML_EXEMPT
    v = _judge(exempt, text="Tai khoan cua ban bi khoa, xac minh ngay tai vnbank-xacminh.example de tranh bi dong bang")
    assert v.action is Action.DROP and v.symbols == ["URL_BLACKLISTED"]
    v = _judge(exempt, text=AD, recipient="0912000777")
    assert v.action is Action.DROP and "AD_TO_DNC" in v.symbols and "ML_EXEMPT" not in v.symbols
    # the sender itself blacklisted
    exempt.lists.bl_numbers.add(N)
    try:
        v = _judge(exempt)
        assert v.action is Action.DROP and "SENDER_BLACKLISTED" in v.symbols and "ML_EXEMPT" not in v.symbols
    finally:
        exempt.lists.bl_numbers.discard(N)


def test_it_expires_after_its_local_day(exempt):
    # valid_to 2026-11-28 in Hanoi (UTC+7): 23:30 that day exempt, 00:30 the next (still the 28th in UTC) not
    assert _judge(exempt, t=datetime(2026, 11, 28, 16, 30, tzinfo=timezone.utc)).symbols == ["ML_EXEMPT"]
    v = _judge(exempt, t=datetime(2026, 11, 28, 17, 30, tzinfo=timezone.utc))
    assert v.action is Action.DROP and v.symbols == ["ML_SPAM"]


def test_the_verdict_log_line_names_it_either_way(exempt, monkeypatch, tmp_path):
    """engine/_smsline.h writes the line when built: the same line as the Python form, the hit in it."""
    msg = Message(SENDER, "0912345678", PRIZE, T, "acct", "mt", 1, 1)
    v = exempt.judge(msg, commit=False)
    lines = []
    for fast in (verdictlog._c_sms_line, None):
        monkeypatch.setattr(verdictlog, "_c_sms_line", fast)
        out = io.StringIO()
        log = verdictlog.VerdictLog(out)
        log._flush_pending = True           # (no event loop: no flush scheduled)
        log.write_sms(msg, "submit_sm", v, 12.5)
        lines.append(out.getvalue())
    assert lines[0] == lines[1]
    line = json.loads(lines[0])
    assert line["action"] == "allow" and [h["symbol"] for h in line["hits"]] == ["ML_EXEMPT"]
    # the regulator's report counts the exemptions used, as any symbol
    (tmp_path / "v.jsonl").write_text(lines[0])
    run_cli("--data-dir", tmp_path / "data", "report", "--log", tmp_path / "v.jsonl", "--out", tmp_path / "rep",
            "--no-progress", check=True)
    assert json.loads((tmp_path / "rep" / "summary.json").read_text())["symbols"] == {"ML_EXEMPT": 1}


def test_check_and_report_show_it(tmp_path):
    d = tmp_path / "data"
    soon = (date.today() + timedelta(days=10)).isoformat()
    run_cli("--data-dir", d, "lists", "add", "mlexempt", SENDER, "--valid-to", soon, "--note", "CSKH-9", check=True)
    now = datetime.now(timezone.utc).isoformat()
    r = run_cli("--data-dir", d, "check", "--sender", SENDER, "--recipient", "0912345678", "--text", PRIZE,
                "--time", now, check=True)
    v = json.loads(r.stdout)
    assert v["action"] == "allow" and [h["symbol"] for h in v["hits"]] == ["ML_EXEMPT"], v
    assert v["hits"][0]["detail"].endswith(f"sender exempt until {soon}: CSKH-9")


def test_ml_predict_names_the_senders_exemption(tmp_path):
    d = tmp_path / "data"
    soon = (date.today() + timedelta(days=10)).isoformat()
    run_cli("--data-dir", d, "lists", "add", "mlexempt", SENDER, "--valid-to", soon, "--note", "CSKH-9", check=True)
    r = run_cli("--data-dir", d, "ml", "predict", "--text", PRIZE, "--sender", SENDER, "--explain", "2", check=True)
    out = json.loads(r.stdout)
    assert out["action"] == "drop" and len(out["explain"]) == 2     # the classifier's reading, as ever
    assert out["ml_exempt"] == {"number": "+84987654321", "valid_to": soon, "note": "CSKH-9", "in_force": True}
    r = run_cli("--data-dir", d, "ml", "predict", "--text", PRIZE, "--sender", "0987654322", check=True)
    assert json.loads(r.stdout)["ml_exempt"] is None
    assert "ml_exempt" not in json.loads(run_cli("--data-dir", d, "ml", "predict", "--text", PRIZE,
                                                 check=True).stdout)
    lines = json.dumps({"id": 1, "text": PRIZE, "sender": "+84987654321"}) + "\n" + json.dumps({"id": 2, "text": PRIZE})
    r = run_cli("--data-dir", d, "ml", "predict", "--jsonl", "-", input=lines + "\n", check=True)
    got = [json.loads(x) for x in r.stdout.splitlines()]
    assert got[0]["ml_exempt"]["in_force"] is True and "ml_exempt" not in got[1]
    r = run_cli("--data-dir", d, "ml", "predict", "--jsonl", "-", "--sender", SENDER, input="")
    assert r.returncode == 2 and "--sender is for --text" in r.stderr
