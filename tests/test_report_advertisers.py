"""`telfilter report`: who counts as an advertiser in "advertising by owner" (the report's definition: a
sender registered as QC, or any AD_* hit; owners from the sender registry as it is when the report is made)."""
from engine.lists import ListStore
from engine.report import make_report
from tests.test_report import HANOI, rec

HEADER = b"sender,owner,category,valid_from,valid_to,accounts\n"


def test_a_brand_registered_qc_and_cskh_is_an_advertiser_whatever_the_order_of_its_rows(tmp_path):
    """Found by the Decree 91 probe: the report read a sender's first registry row only, so a brand registered QC
    and CSKH (one row each) had its labelled ads counted as advertising when its QC row came first in
    senders.csv and not at all when its CSKH row did; the engine reads every row, in any order."""
    log = tmp_path / "v.log"
    log.write_text(rec("2026-05-01T10:00:00+07:00", sender="BOTHX"))
    got = []
    for name, rows in (("qc-first", [b"BOTHX,Both X,QC,,,", b"BOTHX,Both X,CSKH,,,"]),
                       ("cskh-first", [b"BOTHX,Both X,CSKH,,,", b"BOTHX,Both X,QC,,,"])):
        d = tmp_path / name
        ListStore(d).import_csv("senders", HEADER + b"\n".join(rows) + b"\n")
        s = make_report([log], tmp_path / ("o-" + name), HANOI, lists=ListStore(d).load(), progress=False,
                        with_plots=False)
        got.append(s["advertising_by_owner"].get("Both X", {}).get("volume"))
    assert got == [1, 1]
