"""`telfilter demo` end to end (engine/demo.py): a subprocess, as a new user runs it; what its table says."""


def test_demo_runs_end_to_end():
    from .conftest import run_cli
    p = run_cli("demo")
    assert p.returncode == 0, p.stderr
    out = p.stdout
    for needle in ("AD_OUTSIDE_HOURS", "AD_TO_DNC", "DNC_REGISTERED", "URL_BLACKLISTED", "added by telfilter"):
        assert needle in out
    # the ad scheduled for tomorrow, then its recipient's DK DNC: cancelled at the SMSC (dnc_cancel.py)
    row = next(line for line in out.splitlines() if line.startswith("... that ad, scheduled"))
    assert "cancelled at the SMSC" in row and "AD_TO_DNC" in row, row
    # the verdict log is shown by one whole line, not named only; a confirmation is cut at a word (first-use review)
    import json
    last = json.loads(out.splitlines()[-1])
    assert last["action"] == "drop" and [h["symbol"] for h in last["hits"]] == ["AD_TO_DNC"], last
    conf = next(line for line in out.splitlines() if "confirmation: " in line).split("confirmation: ")[1]
    assert conf.endswith(" …") and len(conf) <= 62, conf      # (the reply is longer: cut)
    # a refusal by its SMPP name, as smpp_status and the logs name it, not "rejected 0x45"; no trailing blanks
    # (day-one audit)
    row = next(line for line in out.splitlines() if line.startswith("ad at 23:00"))
    assert "rejected ESME_RSUBMITFAIL" in row, row
    assert [line for line in out.splitlines() if line != line.rstrip()] == []
    # one vocabulary in the outcome column, what happened on the wire: an MO row said "allow" (a verdict's action)
    # beside the MT rows' forwarded / rejected (operator audit)
    head = out.splitlines()[1]
    col = slice(head.index("outcome"), head.index("symbols"))
    rows = out.splitlines()[3:3 + 13]
    outcomes = {line.split("  ")[0]: line[col].strip() for line in rows}
    assert outcomes["MO 'DK DNC' to 5656"] == "applied (5656 command)", outcomes
    words = ("forwarded", "rejected ESME_", "applied (5656 command)", "cancelled at the SMSC")
    assert [o for o in outcomes.values() if not o.startswith(words)] == [], outcomes
