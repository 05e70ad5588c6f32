"""AD_CALL_TO_UNREADABLE_CALLEE (Decree 91 pack): an advertising call to a callee no number can be read from
(+0912…, 0912…#) is dropped, as AD_TO_UNREADABLE_RECIPIENT drops such an SMS. Found by the Decree 91 audit: the
DNC V check, consent and the 1-a-day cap cannot see such a callee (the cap keyed it by its raw string, each
spelling a fresh count), so a DNC V subscriber so written was rung by an advertiser wherever a switch cleans
the address up."""
from datetime import datetime, timedelta, timezone

import pytest

from engine.app import build
from engine.lists import ListStore
from engine.verdict import Call

T = datetime(2026, 3, 2, 10, 0, tzinfo=timezone(timedelta(hours=7)))


@pytest.fixture
def pipe(tmp_path):
    st = ListStore(tmp_path)
    st.import_csv("senders", b"sender,owner,category,valid_from,valid_to,accounts\n02439998888,Shop ABC,QC,,,\n")
    st.import_csv("dnc", b"number,channel\n0912000002,V\n")
    return build(data_dir=tmp_path, with_model=False, persist=False)


@pytest.mark.parametrize("callee", ["+0912000002", "0912000002#"])
def test_an_advertising_call_to_an_unreadable_callee_is_dropped(pipe, callee):
    v = pipe.judge(Call("02439998888", callee, T))
    assert v.action.name == "DROP" and v.symbols == ["AD_CALL_TO_UNREADABLE_CALLEE"], v


def test_other_calls_to_such_a_callee_and_advertising_calls_to_numbers_are_not(pipe):
    assert pipe.judge(Call("0901234567", "+0912000002", T)).action.name == "ALLOW"      # a plain caller's
    assert pipe.judge(Call("02439998888", "0912999999", T)).action.name == "ALLOW"
    assert pipe.judge(Call("02439998888", "", T)).action.name == "ALLOW"                # no callee read at all
    assert "AD_CALL_TO_UNREADABLE_CALLEE" not in pipe.judge(Call("02439998888", "0912000002", T)).symbols
