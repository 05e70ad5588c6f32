"""`lists add` says what it stored, as `lists export` writes it: the value is read in any form (a number with
spaces, a link to an address, a Unicode domain) and the kind of a blacklist entry is guessed from its form (a
bare 3221225991 is a number, +32…, where `http://3221225991/` is the address 192.0.2.7). It echoed the value as
typed, and the engineer had to export the whole list to see what went in."""
import json

import pytest

from .conftest import run_cli


@pytest.mark.parametrize("argv, stored", [
    (("dnc", "091 234 5690", "--channel", "s"), "+84912345690,S"),
    (("blacklist", "3221225991"), "number,+3221225991"),
    (("blacklist", "http://0xC0000207/"), "ip,192.0.2.7"),
    (("blacklist", "Ví-Dụ.VN."), "domain,xn--v-d-rma6749a.vn"),
    (("senders", "shopz", "--owner", "Shop, Z", "--category", "qc", "--accounts", "b a"), 'shopz,"Shop, Z",QC,,,a b'),
    (("consent", "84912345678", "--owner", "Cty A"), "Cty A,+84912345678"),
])
def test_add_says_the_row_it_stored_as_export_writes_it(tmp_path, argv, stored):
    d = str(tmp_path)
    r = run_cli("lists", "add", *argv, "--data-dir", d)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["stored"] == stored
    assert stored in run_cli("lists", "export", argv[0], "--data-dir", d).stdout.splitlines()
