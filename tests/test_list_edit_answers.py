"""What an edit changed, said in its answer: `lists add mlexempt` of a number already there replaces its row (a
renewal) and says the row it replaced; `lists remove senders X` without a field removes every registration of X and
says which (it answered only `"found": true`: an operator taking out a brand's expired QC period learnt only later
that its CSKH registration, the bank's OTP sender, went with it)."""
import json
from datetime import date, timedelta

from .conftest import run_cli


def _cli(tmp_path, *args):
    r = run_cli("--data-dir", tmp_path, "lists", *args)
    return r.returncode, json.loads(r.stdout) if r.stdout.strip() else None


def test_a_renewal_says_the_row_it_replaced(tmp_path):
    soon, later = ((date.today() + timedelta(days=d)).isoformat() for d in (10, 40))
    rc, ans = _cli(tmp_path, "add", "mlexempt", "0912345678", "--valid-to", soon, "--note", "T-1")
    assert rc == 0 and "replaced" not in ans, ans
    rc, ans = _cli(tmp_path, "add", "mlexempt", "+84912345678", "--valid-to", later, "--note", "T-2")
    assert rc == 0 and ans["stored"] == f"+84912345678,{later},T-2" and ans["replaced"] == [f"+84912345678,{soon},T-1"]
    rc, ans = _cli(tmp_path, "add", "mlexempt", "+84912345678", "--valid-to", later, "--note", "T-2")
    assert rc == 0 and "replaced" not in ans, ans              # the same row again replaced nothing
    rc, ans = _cli(tmp_path, "add", "blacklist", "spam.example")
    assert rc == 0 and "replaced" not in ans


def test_a_registration_that_takes_another_owners_dates_says_so(tmp_path):
    """Another owner's registration for the very same dates replaces the one there (who holds the brand then): the
    answer says the row it took out, which the operator may not have meant."""
    dates = ("--valid-from", "2026-01-01", "--valid-to", "2026-06-30")
    rc, ans = _cli(tmp_path, "add", "senders", "BANKX", "--owner", "Bank X", "--category", "QC", *dates)
    assert rc == 0 and "replaced" not in ans
    rc, ans = _cli(tmp_path, "add", "senders", "BANKX", "--owner", "Bank X", "--category", "CSKH", *dates)
    assert rc == 0 and "replaced" not in ans, ans               # the other category, same owner: beside it
    rc, ans = _cli(tmp_path, "add", "senders", "BANKX", "--owner", "Other Co", "--category", "QC", *dates)
    assert rc == 0 and ans["replaced"] == ["BANKX,Bank X,QC,2026-01-01,2026-06-30,",
                                           "BANKX,Bank X,CSKH,2026-01-01,2026-06-30,"], ans


def test_a_senders_remove_says_the_registrations_it_took(tmp_path):
    _cli(tmp_path, "add", "senders", "BANKX", "--owner", "Bank X", "--category", "CSKH")
    _cli(tmp_path, "add", "senders", "BANKX", "--owner", "Bank X", "--category", "QC",
         "--valid-from", "2026-01-01", "--valid-to", "2026-06-30")
    _cli(tmp_path, "add", "senders", "SHOPABC", "--owner", "Shop", "--category", "QC")
    rc, ans = _cli(tmp_path, "remove", "senders", "BANKX", "--category", "QC")
    assert rc == 0 and ans["found"] is True and ans["rows"] == ["BANKX,Bank X,QC,2026-01-01,2026-06-30,"], ans
    rc, ans = _cli(tmp_path, "remove", "senders", "bankx")
    assert rc == 0 and ans["rows"] == ["BANKX,Bank X,CSKH,,,"], ans
    rc, ans = _cli(tmp_path, "remove", "senders", "BANKX")
    assert rc == 1 and ans["found"] is False and "rows" not in ans
    assert run_cli("--data-dir", tmp_path, "lists", "export", "senders").stdout.splitlines()[1:] == ["SHOPABC,Shop,QC,,,"]
