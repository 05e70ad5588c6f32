"""Vietnam's 1800/1900 service numbers were read as +1… before this version (a blacklisted 1900123456 was kept
as the int 1900123456, and `lists export` wrote +1900123456). Stored entries are moved to the key they have now
(+841900123456) when the lists load, and an old export imports to the new key."""
from pyroaring import BitMap64

from engine.lists import ListStore
from engine.lists.sets import Lists
from engine.numbers import normalise_number


def test_stored_service_numbers_match_after_the_upgrade(tmp_path):
    st = ListStore(tmp_path)
    old = Lists()
    old.bl_numbers = BitMap64([1900123456, 84912345678])
    old.dnc_s = BitMap64([18001234])
    st.save(old)
    L = st.load()
    assert normalise_number("1900123456") in L.bl_numbers and 84912345678 in L.bl_numbers
    assert 1900123456 not in L.bl_numbers
    assert L.in_dnc(normalise_number("1800 1234"), "S")
    assert any("1800/1900" in w for w in st.warnings)
    st.add("blacklist", "0912000999")          # any change of the list saves it with the new keys
    st2 = ListStore(tmp_path)
    L2 = st2.load()
    assert 841900123456 in L2.bl_numbers and 1900123456 not in L2.bl_numbers


def test_an_old_export_imports_to_the_new_key(tmp_path):
    st = ListStore(tmp_path)
    st.import_csv("blacklist", b"kind,value\nnumber,+1900123456\nnumber,001800123456\n", "old-export.csv")
    L = st.load()
    assert set(L.bl_numbers) == {841900123456, 841800123456}
