"""Lists: CSV contract and every error path, snapshots (atomic, verified), CLI."""
import json

import pytest

from engine.lists import ListStore, SnapshotError
from engine.lists.csvio import CsvError, read_csv
from engine.textnorm import find_hosts

from .conftest import run_cli


def test_dnc_csv_channels_and_export_roundtrip(data_dir, tmp_path):
    f = tmp_path / "dnc.csv"
    f.write_text("number,channel\n0912345678,S\n+84912345679,V\n912345670,SV\n0912345671,\n", encoding="utf-8")
    p = run_cli("lists", "import", "dnc", f, "--data-dir", data_dir, check=True)
    assert json.loads(p.stdout)["imported"] == 4
    f.write_text("number,channel\n0912345678,S\n0912345678,S\n", encoding="utf-8")     # repeats: nothing added
    again = json.loads(run_cli("lists", "import", "dnc", f, "--data-dir", data_dir, check=True).stdout)
    assert again["imported"] == 2 and again["list"] == {"S_only": 1, "V_only": 1, "SV": 2, "total": 4}
    out = run_cli("--data-dir", data_dir, "lists", "export", "dnc", check=True).stdout
    assert out.splitlines() == ["number,channel", "+84912345670,SV", "+84912345671,SV", "+84912345678,S", "+84912345679,V"]
    # the export re-imports to the same set
    g = tmp_path / "again.csv"
    g.write_text(out)
    d2 = tmp_path / "d2"
    run_cli("lists", "import", "dnc", g, "--data-dir", d2, check=True)
    assert run_cli("lists", "export", "dnc", "--data-dir", d2, check=True).stdout == out


@pytest.mark.parametrize("kind,body,bad_lines", [
    ("dnc", "number,channel\n0912345678,S\nnotanumber,S\n0912345679,X\n0912345670\n0912345671,V\n", {3, 4, 5}),
    ("senders", "sender,owner,category,valid_from,valid_to,accounts\nSHOP,Shop,QC,2024-01-01,,\n"
                "BAD,Owner,ADS,,,\nX,Owner,QC,2024-13-01,,\nY,Owner,QC,2025-01-01,2024-01-01,\n,Owner,QC,,,\nZ,,CSKH,,,\n"
                "OK2,Owner,cskh,,,a b\n", {3, 4, 5, 6, 7}),
    ("blacklist", "kind,value\nnumber,0987000666\ndomain,bad.example\nemail,x@y\ndomain,not a domain\nnumber,abc\n", {4, 5, 6}),
    ("consent", "owner,number\nShop,0912345678\n,0912345678\nShop,xyz\n", {3, 4}),
])
def test_bad_rows_reported_with_physical_line_good_rows_imported(data_dir, tmp_path, kind, body, bad_lines):
    f = tmp_path / f"{kind}.csv"
    f.write_text(body, encoding="utf-8")
    p = run_cli("lists", "import", kind, f, "--data-dir", data_dir)
    assert p.returncode != 0
    reported = {int(line.split(":")[1]) for line in p.stderr.splitlines() if line.startswith(str(f))}
    assert reported == bad_lines, p.stderr
    good = len([l for l in body.splitlines()[1:] if l]) - len(bad_lines)
    assert json.loads(p.stdout)["imported"] == good


def test_line_numbers_count_physical_lines_with_quoted_newlines(tmp_path):
    data = b'sender,owner,category,valid_from,valid_to,accounts\n"A",Own,QC,,,\n"B","multi\nline owner",QC,,,\nC,Own,XX,,,\n'
    recs, errs = read_csv("senders", data)
    assert len(recs) == 2 and [e.line for e in errs] == [5]


def test_bad_header_and_invalid_utf8(data_dir, tmp_path):
    f = tmp_path / "x.csv"
    f.write_text("num,chan\n0912345678,S\n")
    p = run_cli("lists", "import", "dnc", f, "--data-dir", data_dir)
    assert p.returncode == 2 and ":1: header must be number,channel" in p.stderr
    f.write_bytes(b"number,channel\n0912345678,S\n09123\xff5679,S\n")
    p = run_cli("lists", "import", "dnc", f, "--data-dir", data_dir)
    # which byte of which field, as ml train and check --jsonl say it (it was "not valid UTF-8" alone: CLI audit)
    assert p.returncode == 1 and ":3: not valid UTF-8: byte 0xff in number, character 6 (save the file as UTF-8)" \
        in p.stderr
    with pytest.raises(CsvError):
        read_csv("dnc", b"")


def test_import_all_bad_writes_nothing(data_dir, tmp_path):
    f = tmp_path / "dnc.csv"
    f.write_text("number,channel\nxx,S\n")
    run_cli("lists", "import", "dnc", f, "--data-dir", data_dir)
    assert not (data_dir / "lists" / "dnc.snap").exists()


def test_add_remove_channel_semantics(data_dir):
    run_cli("lists", "add", "dnc", "0912345678", "--data-dir", data_dir, check=True)
    run_cli("lists", "remove", "dnc", "0912345678", "--channel", "S", "--data-dir", data_dir, check=True)
    assert "+84912345678,V" in run_cli("lists", "export", "dnc", "--data-dir", data_dir).stdout
    p = run_cli("lists", "remove", "dnc", "0912345678", "--channel", "S", "--data-dir", data_dir)
    assert p.returncode == 1 and json.loads(p.stdout)["found"] is False
    run_cli("lists", "add", "senders", "ShopX", "--owner", "Shop X", "--category", "QC", "--data-dir", data_dir, check=True)
    run_cli("lists", "add", "consent", "0912345678", "--owner", "Shop X", "--data-dir", data_dir, check=True)
    run_cli("lists", "add", "blacklist", "evil.example", "--data-dir", data_dir, check=True)
    st = json.loads(run_cli("lists", "stats", "--data-dir", data_dir, check=True).stdout)
    assert st["dnc"]["V_only"] == 1 and st["senders"]["QC"] == 1 and st["consent"]["pairs"] == 1
    assert st["blacklist"]["domains"] == 1
    p = run_cli("lists", "add", "senders", "NoOwner", "--data-dir", data_dir)
    assert p.returncode == 2 and "owner" in p.stderr


def _seed(store):
    store.import_csv("dnc", b"number,channel\n0912345678,S\n")
    store.import_csv("dnc", b"number,channel\n0912345679,V\n")


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage", "empty"])
def test_corrupt_snapshot_refused_previous_good_used(data_dir, damage):
    store = ListStore(data_dir)
    _seed(store)
    p = data_dir / "lists" / "dnc.snap"
    raw = p.read_bytes()
    p.write_bytes({"truncate": raw[:-7], "flip": raw[:-3] + bytes([raw[-3] ^ 0xFF]) + raw[-2:],
                   "garbage": b"hello world", "empty": b""}[damage])
    with pytest.raises(SnapshotError) as ei:
        store.load(strict=True)
    assert "dnc.snap" in str(ei.value)
    L = store.load()                       # falls back to the previous good generation
    assert store.warnings and "previous good snapshot" in store.warnings[0]
    assert 84912345678 in L.dnc_s and 84912345679 not in L.dnc_v
    # the CLI says so on stderr and keeps working
    r = run_cli("lists", "stats", "--data-dir", data_dir)
    assert r.returncode == 0 and "refusing snapshot" in r.stderr
    # ... and an export, which writes what is in force (the previous generation), says so too
    r = run_cli("lists", "export", "dnc", "--data-dir", data_dir)
    assert r.returncode == 0 and "+84912345678" in r.stdout and "refusing snapshot" in r.stderr
    # an import over a corrupt snapshot is refused rather than overwriting data
    r = run_cli("lists", "import", "dnc", "/dev/stdin", "--data-dir", data_dir, input="number,channel\n0912000000,S\n")
    assert r.returncode == 2 and "refusing snapshot" in r.stderr


@pytest.mark.parametrize("folds", [1, 2])
def test_confirmed_5656_changes_survive_a_damaged_newest_dnc_snapshot(data_dir, folds):
    """DNC changes journalled as 5656 commands are (every line confirmed to the subscriber), folded into a
    new dnc snapshot by a writer (a CLI `lists add`, serve's compaction), whose file is then damaged. The
    load fell back to dnc.snap.prev, which never had them, and the journal no longer had them either: 100
    confirmed DK DNC registrations were gone, the warning saying to re-import a DNC file they were never
    in (found by a black-box durability probe of serve). The folded lines are kept in dnc.delta.prev."""
    store = ListStore(data_dir)
    _seed(store)                                         # 84912345678 S, then 84912345679 V
    store.append_delta("add", 84900000001, "SV")         # DK DNC
    store.append_delta("remove", 84912345678, "S")       # HUY DNC S
    store.save(store.load())                             # folded: dnc.snap holds them, the journal not
    if folds == 2:
        store.append_delta("add", 84900000002, "S")
        store.save(store.load())
    store.append_delta("add", 84900000003, "V")          # still in the journal
    assert b"84900000001" not in store.delta_path.read_bytes()
    p = data_dir / "lists" / "dnc.snap"
    raw = p.read_bytes()
    p.write_bytes(raw[:len(raw) // 2])
    L = store.load()
    assert any("previous good snapshot" in w and "applied again" in w for w in store.warnings), store.warnings
    assert 84900000001 in L.dnc_s and 84900000001 in L.dnc_v and 84912345678 not in L.dnc_s
    assert 84900000003 in L.dnc_v and 84912345679 in L.dnc_v
    assert (folds == 2) == (84900000002 in L.dnc_s)
    store.save(L)                                        # a writer after the fall-back keeps them
    L2 = store.load()
    assert 84900000001 in L2.dnc_s and 84900000003 in L2.dnc_v and 84912345678 not in L2.dnc_s


def test_corrupt_without_previous_is_an_error(data_dir):
    store = ListStore(data_dir)
    store.import_csv("blacklist", b"kind,value\ndomain,x.example\n")
    (data_dir / "lists" / "blacklist.snap").write_bytes(b"TFSNAP1\n\x00\x00\x00\x05abc")
    with pytest.raises(SnapshotError):
        store.load()
    r = run_cli("check", "--data-dir", data_dir, "--sender", "A", "--recipient", "0912345678", "--text", "x")
    assert r.returncode == 2 and "refusing snapshot" in r.stderr


def test_delta_journal_survives_and_compacts(data_dir):
    store = ListStore(data_dir)
    _seed(store)
    store.append_delta("add", 84900000001, "SV")
    store.append_delta("remove", 84912345678, "S")
    with open(store.delta_path, "ab") as f:
        f.write(b'{"op": "add", "numb')          # a write cut short by a crash
    L = store.load()
    assert 84900000001 in L.dnc_s and 84912345678 not in L.dnc_s
    store.save(L)
    assert store.load().dnc_v == L.dnc_v and store.load().dnc_s == L.dnc_s
    assert b"84900000001" not in store.delta_path.read_bytes()       # folded into the snapshot
    store.append_delta("add", 84900000002, "S")   # ends the cut-short line first: this one is not lost
    L2 = store.load()
    assert 84900000002 in L2.dnc_s and 84900000001 in L2.dnc_v
    assert any("dnc.delta:2: unreadable" in w for w in store.warnings)


@pytest.mark.parametrize("text,hosts", [
    ("go to phish.example/login now", ["phish.example"]),
    ("HTTPS://WWW.Bad.Example:8080/x?y", ["www.bad.example"]),
    ("mail me at user@mail.example", []),
    ("see notbad.example.", ["notbad.example"]),
    ("xem https://good.example/phish.example", ["good.example"]),
])
def test_find_hosts(text, hosts):
    assert find_hosts(text) == hosts


def test_domain_matches_itself_and_subdomains_only():
    from engine.lists import Lists
    L = Lists(bl_domains={"bad.example"})
    assert L.domain_blacklisted(["www.bad.example"]) == "bad.example"
    assert L.domain_blacklisted(["bad.example"]) == "bad.example"
    assert L.domain_blacklisted(["notbad.example"]) is None
    assert L.domain_blacklisted(["bad.example.org"]) is None


def test_a_host_of_thousands_of_labels_costs_its_last_253_characters():
    """Found by a probe: every suffix of a 65,000-character link ("http://ab.ab.ab…") was built, quadratic in
    the host, holding the event loop 3.3 s. A listed domain has at most 253 characters (DNS; csvio refuses
    longer), so only suffixes that long are tried, and one at the end of such a host is still found."""
    from engine.lists import Lists
    from engine.textnorm import DOMAIN_MAX, domain_suffixes
    host = "ab." * 22_000 + "www.bad.example"
    sufs = list(domain_suffixes(host))
    assert len(sufs) <= DOMAIN_MAX // 2 + 1 and all(len(x) <= DOMAIN_MAX for x in sufs)
    assert sufs[-3:] == ["www.bad.example", "bad.example", "example"]
    assert Lists(bl_domains={"bad.example"}).domain_blacklisted(["ok.example", host]) == "bad.example"
    assert list(domain_suffixes("x" * 300)) == []             # one label longer than any domain
    assert list(domain_suffixes("a.b.example")) == ["a.b.example", "b.example", "example"]


def test_dnc_and_consent_rows_must_be_subscriber_numbers():
    from engine.lists.csvio import read_csv
    recs, errs = read_csv("dnc", b"number,channel\n0912345678,SV\n0912,S\n5656,V\n", "dnc.csv")
    assert [r[0] for r in recs] == [84912345678]
    assert [(e.line, "not a subscriber number" in e.message) for e in errs] == [(3, True), (4, True)]
    recs, errs = read_csv("consent", b"owner,number\nShop ABC,0912345678\nShop ABC,912\n", "consent.csv")
    assert len(recs) == 1 and [e.line for e in errs] == [3]


def test_a_sender_registered_twice_for_the_same_dates_with_another_owner_is_an_error():
    from engine.lists.csvio import read_csv
    data = (b"sender,owner,category,valid_from,valid_to,accounts\n"
            b"SHOPABC,Shop ABC,QC,2026-01-01,2026-12-31,\n"
            b"shopabc,Shop ABC,QC,2026-01-01,2026-12-31,\n"          # the same registration again: nothing new
            b"SHOPABC,Other Co,CSKH,2026-01-01,2026-12-31,\n"        # would replace the first one silently
            b"SHOPABC,Other Co,CSKH,2027-01-01,,\n")                 # another period: fine
    recs, errs = read_csv("senders", data, "senders.csv")
    assert [(r.owner, str(r.valid_from)) for r in recs] == [("Shop ABC", "2026-01-01"), ("Other Co", "2027-01-01")]
    assert [e.line for e in errs] == [4] and "senders.csv:2" in errs[0].message


def test_blacklist_values_as_people_write_them(tmp_path):
    from engine.lists.csvio import parse_domain
    from engine.lists.ipranges import parse_cidr, parse_ip
    r = run_cli("lists", "add", "blacklist", "https://spam.example/x", "--data-dir", tmp_path)
    assert r.returncode == 0, r.stderr
    assert ListStore(tmp_path).load().bl_domains and run_cli(
        "lists", "remove", "blacklist", "http://spam.example/", "--data-dir", tmp_path).returncode == 0
    assert parse_ip("::ffff:192.0.2.9") == parse_ip("192.0.2.9")                 # the IPv4 host, listed as such
    assert parse_cidr("::ffff:192.0.2.0/120") == parse_cidr("192.0.2.0/24")
    with pytest.raises(ValueError, match="253"):
        parse_domain(".".join(["a" * 63] * 5) + ".example")
    for typo in ("10.0.0.1/24", "192.168.1.0/33"):          # a mistyped network is an error, never a number
        r = run_cli("lists", "add", "blacklist", typo, "--data-dir", tmp_path)
        assert r.returncode != 0 and "CIDR" in r.stderr, (typo, r.stderr)
    assert not ListStore(tmp_path).load().bl_numbers
    assert run_cli("lists", "add", "blacklist", "http://203.0.113.7:8080/login", "--data-dir", tmp_path).returncode == 0
    L = ListStore(tmp_path).load()
    assert "203.0.113.7" in L.bl_ips
    assert "203.0.113.7" not in L.bl_domains


def test_a_mistyped_ip_address_is_an_error_never_a_blacklisted_number(tmp_path):
    """`lists add blacklist 300.1.1.1` (or `ctl lists add`) read a dotted quad that is no IPv4 address as a phone
    number with dots: +? 300111 was blacklisted, answered "added", and the address meant was not (found by an
    operations probe; 1.2.3.4.5 became the number 12345). A mistyped address is an error, as a mistyped network is."""
    from engine.lists.edits import record
    for typo in ("300.1.1.1", "10.0.0.256", "1.2.3.4.5"):
        r = run_cli("lists", "add", "blacklist", typo, "--data-dir", tmp_path)
        assert r.returncode != 0, (typo, r.stdout)
        with pytest.raises((ValueError, CsvError), match="IP"):
            record("blacklist", typo, "SV", None)
    assert not ListStore(tmp_path).load().bl_numbers
    assert record("blacklist", "0912.345.678", "SV", None)[0] == "number"     # a number written with dots still is one
    assert record("blacklist", "192.0.2.7", "SV", None)[0] == "ip"


def test_a_vietnamese_number_written_in_dotted_pairs_is_still_a_number():
    """091.234.56.78 (a mobile written 3-3-2-2, four groups of 1-3 digits) has the shape of a dotted quad but begins
    with the trunk 0 no IPv4 address is written with: blacklisted as +84912345678, as it was before 7d10db3 (which
    refused it as "not an IP address"; found by review36)."""
    from engine.lists.edits import record
    assert record("blacklist", "091.234.56.78", "SV", None) == record("blacklist", "0912345678", "SV", None)
    assert record("blacklist", "028.38.123.456", "SV", None)[0] == "number"       # a landline so written
    for typo in ("0.1.2.300", "01.2.3.4"):              # no whole number: a mistyped address still
        with pytest.raises((ValueError, CsvError), match="IP"):
            record("blacklist", typo, "SV", None)


def test_a_big_dnc_import_is_compact_and_bad_rows_are_capped(tmp_path):
    from engine.lists.csvio import MAX_ROW_ERRORS
    rows = b"number,channel\n" + b"".join(b"09%08d,SV\n" % i for i in range(50_000)) \
        + b"".join(b"bad%d,SV\n" % i for i in range(MAX_ROW_ERRORS + 500))
    n, errors = ListStore(tmp_path).import_csv("dnc", rows, "dnc.csv")
    assert n == 50_000 and len(errors) == MAX_ROW_ERRORS + 1
    assert "500 more bad rows" in errors[-1].message
    from engine.lists.csvio import bad_rows
    assert bad_rows(errors) == MAX_ROW_ERRORS + 500
    L = ListStore(tmp_path).load()
    assert L.in_dnc(84900049999, "V") and len(L.dnc_s) == 50_000


def test_sender_rows_a_handset_or_an_smsc_could_never_match_are_bad_rows():
    """Found by a first trial: accounts "acc1,acc2" were one account named with a comma (acc1 was then refused
    SENDER_ID_UNREGISTERED), and a 22-character brandname no handset can show was taken."""
    body = ("sender,owner,category,valid_from,valid_to,accounts\n"
            "BRANDX,Brand X,QC,,,\"acc1,acc2\"\n"
            "WAYTOOLONGBRANDNAME123,Brand Y,QC,,,\n"
            "BRANDZ,Brand Z,CSKH,,,acc1 acc2\n"
            "BRANDW,Brand W,CSKH,,,anaccountnamethatistoolong\n"
            "0912345678901234,Numeric,CSKH,,,\n")
    recs, errs = read_csv("senders", body.encode(), "senders.csv")
    assert [r.sender for r in recs] == ["BRANDZ", "0912345678901234"] and recs[0].accounts == {"acc1", "acc2"}
    assert [e.line for e in errs] == [2, 3, 5]
    assert "space-separated" in errs[0].message and "at most 11" in errs[1].message and "system_id" in errs[2].message


def test_a_sender_or_account_outside_latin1_is_a_bad_row():
    """Found by a CLI probe at stop 35: SHOPĐẸP and an account Đại were imported; `check --sender SHOPĐẸP` matched,
    but an SMPP source_addr or system_id (octets, read as Latin-1) never can."""
    body = ("sender,owner,category,valid_from,valid_to,accounts\n"
            "SHOPĐẸP,Shop,QC,,,\n"
            "SHOPDEP,Shop,QC,,,Đại\n"
            "CAFÉ,Café,CSKH,,,esme1\n")
    recs, errs = read_csv("senders", body.encode(), "senders.csv")
    assert [r.sender for r in recs] == ["CAFÉ"] and [e.line for e in errs] == [2, 3]
    assert "outside Latin-1" in errs[0].message and "no SMPP bind" in errs[1].message


@pytest.mark.parametrize("text", ["xem http://phish.ex\u00adample/login", "vao phish.exam\u200bple ngay",
                                  "http://phi\u2060sh.example/x", "phish\ufeff.example"])
def test_a_host_hiding_an_invisible_character_is_read_as_a_browser_reads_it(text):
    """Found by a probe: a soft hyphen or zero-width space inside a blacklisted host (IDNA maps both to nothing:
    idna.encode(..., uts46=True) gives phish.example) let the link through, in UCS-2 and Latin-1 texts too."""
    from engine.lists import Lists
    hosts = find_hosts(text)
    assert "phish.example" in hosts
    assert Lists(bl_domains={"phish.example"}).domain_blacklisted(hosts) == "phish.example"
    assert find_hosts("see you at 5pm\u200b") == [] and find_hosts("ok good.example") == ["good.example"]


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be"])
def test_a_utf16_file_is_named_as_such(data_dir, tmp_path, encoding):
    """Found by a first trial: a UTF-16 file's error showed a garbled header (\\udcff\\udcfen u m b e r …)."""
    f = tmp_path / "dnc.csv"
    f.write_bytes("number,channel\n0912345678,S\n".encode(encoding))
    p = run_cli("lists", "import", "dnc", f, "--data-dir", data_dir)
    assert p.returncode == 2 and "the file is UTF-16" in p.stderr and "\\udc" not in p.stderr


def test_rows_stored_before_the_stricter_checks_still_load_and_can_be_removed(tmp_path):
    """Found by a review: a snapshot's sender rows went through the import's new checks, so a data dir holding a
    12-character brand or an account "acc1,acc2" (taken by an earlier import) refused to load, and a DNC number
    stored before the whole-number check (+849123456789) could not be removed."""
    from engine.lists import ListStore
    from engine.lists.csvio import SenderEntry
    from engine.lists import edits
    st = ListStore(tmp_path)

    def old_rows(L):
        L.add_sender(SenderEntry("VIETCOMBANK1", "VCB", "CSKH", None, None, frozenset({"acc1,acc2"})))
    st.modify("senders", old_rows)
    st.modify("dnc", lambda L: L.dnc_s.add(849123456789))
    L = st.load()
    assert [e.accounts for v in L.senders.values() for e in v] == [frozenset({"acc1,acc2"})]
    assert st.remove("dnc", "+849123456789", "S") and 849123456789 not in st.load().dnc_s
    with pytest.raises(ValueError, match="not a subscriber number"):
        edits.record("dnc", "+849123456789", "S", None)        # still refused as a new entry


def test_an_edit_option_the_list_does_not_take_is_an_error(data_dir):
    """Found by a first trial: `lists add dnc N --owner X --category QC` ignored the two options in silence."""
    r = run_cli("lists", "add", "dnc", "0912345678", "--owner", "X", "--category", "QC", "--data-dir", data_dir)
    assert r.returncode == 2 and "--owner, --category do not apply to the dnc list" in r.stderr
    r = run_cli("lists", "remove", "blacklist", "bad.example", "--channel", "S", "--data-dir", data_dir)
    assert r.returncode == 2 and "--channel does not apply to the blacklist list" in r.stderr
    r = run_cli("ctl", "lists", "add", "consent", "0912345678", "--owner", "Shop", "--accounts", "a",
                "--socket", str(data_dir) + "/none.sock")
    assert r.returncode == 2 and "--accounts does not apply to the consent list" in r.stderr
    assert run_cli("lists", "add", "dnc", "0912345678", "--channel", "S", "--data-dir", data_dir).returncode == 0


def test_a_network_broader_than_a_slash_8_is_refused(tmp_path):
    """`cidr,0.0.0.0/0` (or ::/0) was imported without a word: every link to an IP address blocked and the whole
    address space published to other networks (found by a probe of the exports). /8 (IPv4) and /16 (IPv6) are the
    broadest accepted; such a row is a bad row, named by its line (import's rule: the good rows are imported)."""
    from engine.lists.ipranges import parse_cidr
    for v in ("0.0.0.0/0", "::/0", "64.0.0.0/2", "2000::/3", "::ffff:0.0.0.0/96"):
        with pytest.raises(ValueError, match="too broad"):
            parse_cidr(v)
    assert parse_cidr("10.0.0.0/8")[0] == 4 and parse_cidr("2001::/16")[0] == 6
    f = tmp_path / "bl.csv"
    f.write_text("kind,value\ndomain,ok.example\ncidr,0.0.0.0/0\n")
    r = run_cli("lists", "import", "blacklist", f, "--data-dir", tmp_path / "d")
    assert r.returncode != 0 and "bl.csv:3" in r.stderr and "too broad" in r.stderr, r.stderr
    L = ListStore(tmp_path / "d").load()
    assert not L.bl_ips and "ok.example" in L.bl_domains        # the bad row reported, the good one imported


def test_a_network_broader_than_a_slash_8_stored_by_an_earlier_version_loads_and_can_be_removed(tmp_path):
    """Found by a review: once parse_cidr refused networks broader than a /8, `lists remove blacklist 0.0.0.0/0`
    went through it too, so the very row the check was made for (stored by an earlier import: every link to an IP
    address blocked) could not be taken out -- the remove failed with "too broad"."""
    from engine.lists import edits
    st = ListStore(tmp_path)
    st.modify("blacklist", lambda L: (L.bl_ips.add(4, 0, 2 ** 32 - 1), L.bl_ips.add(6, 0, 2 ** 128 - 1)))
    assert st.load().bl_ips                                  # the snapshot still loads
    assert st.remove("blacklist", "0.0.0.0/0") and st.remove("blacklist", "::/0")
    assert not st.load().bl_ips
    st.modify("blacklist", lambda L: L.bl_ips.add(4, 0, 2 ** 32 - 1))
    r = run_cli("lists", "remove", "blacklist", "0.0.0.0/0", "--data-dir", tmp_path)
    assert r.returncode == 0 and "too broad" not in r.stderr and not ListStore(tmp_path).load().bl_ips, r.stderr
    with pytest.raises(ValueError, match="too broad"):
        edits.record("blacklist", "0.0.0.0/0", "SV", None)      # still refused as a new entry


def test_a_mistyped_or_wildcard_number_is_said_to_be_no_phone_number_not_no_domain():
    """Care desk filing a caller on the blacklist: `ctl lists add blacklist 090155566` (a digit missing) and
    `0901555*` (the "09xx" a subscriber quoted) were refused as "not a domain: '090155566'", which tells the engineer
    nothing about the number they typed. A value with no letter and no dot is a number or nothing."""
    from engine.lists.edits import record
    with pytest.raises(ValueError, match=r"not a phone number: '090155566'"):
        record("blacklist", "090155566", "SV", None)
    with pytest.raises(ValueError, match=r"not a phone number: '0901555\*'.*no prefixes or wildcards"):
        record("blacklist", "0901555*", "SV", None)
    with pytest.raises(ValueError, match=r"not a phone number: '09xx'.*no prefixes or wildcards"):
        record("blacklist", "09xx", "SV", None)
    with pytest.raises(ValueError, match="not a domain"):
        record("blacklist", "not a domain", "SV", None)
    assert record("blacklist", "0901 555 666", "SV", None) == ("number", 84901555666)
    assert record("blacklist", "2001:db8::1", "SV", None)[0] == "ip"
