"""Blacklist kinds ip/cidr and the published formats (`lists export blacklist --format ...`),
including a real rbldnsd loading the zone on 127.0.0.1 and answering dig when both are installed."""
import io
import json
import shutil
import socket
import subprocess
import time

import pytest

from benchmarks import ports
from engine.lists import ListStore
from engine.lists.ipranges import IpRanges, parse_cidr, parse_ip
from engine.lists.publish import verify_zone, write_blacklist
from tests.conftest import run_cli

BL = (b"kind,value\nnumber,84987000666\ndomain,phish.example\nip,192.0.2.7\ncidr,198.51.100.0/25\n"
      b"cidr,198.51.100.128/25\ncidr,2001:db8:1::/48\nip,2001:db8::5\n")


def test_ip_ranges_merge_split_and_round_trip():
    r = IpRanges()
    for v in ("10.0.0.0/25", "10.0.0.128/25", "10.0.0.64/26"):
        r.add(*parse_cidr(v))
    r.add(*parse_ip("10.0.1.0"))                        # adjacent: merged into one range
    assert list(r.ranges(4)) == [(int(parse_ip("10.0.0.0")[1]), int(parse_ip("10.0.1.0")[1]))]
    assert "10.0.0.200" in r and "10.0.1.1" not in r and "::1" not in r
    assert r.remove(*parse_ip("10.0.0.5")) and "10.0.0.5" not in r and "10.0.0.6" in r
    assert not r.remove(*parse_cidr("172.16.0.0/12"))
    r.add(*parse_cidr("2001:db8::/32"))
    assert "2001:db8:ffff::1" in r
    assert IpRanges.from_bytes(*r.to_bytes()) == r
    with pytest.raises(ValueError):
        IpRanges.from_bytes(b"\x00" * 7, b"")


def test_import_export_ip_and_cidr_with_line_numbered_errors(tmp_path):
    st = ListStore(tmp_path)
    n, errors = st.import_csv("blacklist", BL + b"ip,300.1.1.1\ncidr,10.0.0.1/8\nasn,64500\n", "bl.csv")
    assert n == 7
    assert [(e.line, e.message.split(":")[0]) for e in errors] == [
        (9, "not an IP address"), (10, "not a CIDR network"), (11, "kind must be number, domain, ip or cidr, got 'asn'")]
    out = io.StringIO()
    st.export("blacklist", out)
    rows = out.getvalue().splitlines()
    assert "ip,192.0.2.7" in rows and "cidr,198.51.100.0/24" in rows       # the two /25s come back as one /24
    assert "cidr,2001:db8:1::/48" in rows and "ip,2001:db8::5" in rows
    L = ListStore(tmp_path).load()                                           # through the snapshot file
    assert "198.51.100.77" in L.bl_ips and L.stats()["blacklist"]["ip_ranges"] == 4
    p = run_cli("lists", "remove", "blacklist", "2001:db8::5", "--data-dir", tmp_path)
    assert p.returncode == 0 and json.loads(p.stdout)["found"] is True
    p = run_cli("lists", "add", "blacklist", "203.0.113.0/24", "--data-dir", tmp_path)
    assert p.returncode == 0
    assert "203.0.113.9" in ListStore(tmp_path).load().bl_ips


def test_formats_carry_time_and_a_checksum_that_detects_changes(tmp_path):
    st = ListStore(tmp_path)
    st.import_csv("blacklist", BL)
    L = st.load()
    for fmt in ("rbldnsd", "hosts"):
        out = io.StringIO()
        write_blacklist(L, fmt, out)
        text = out.getvalue()
        assert "generated 20" in text.splitlines()[0]
        assert verify_zone(text)
        assert not verify_zone(text.replace("phish.example", "phish.exampl3"))
        assert not verify_zone("\n".join(text.splitlines()[:-1]) + "\n")        # a lost last line
    out = io.StringIO()
    write_blacklist(L, "rbldnsd", out)
    z = out.getvalue()
    assert "$DATASET dnset:domains domain\n" in z and "\n.phish.example\n" in z
    assert "$DATASET dnset:numbers number\n" in z and "\n84987000666\n" in z
    assert "\n192.0.2.7/32\n" in z and "\n198.51.100.0/24\n" in z and "\n2001:db8:1::/48\n" in z
    p = run_cli("lists", "export", "blacklist", "--format", "json", "--data-dir", tmp_path)
    doc = json.loads(p.stdout)
    body = json.dumps({"numbers": doc["numbers"], "domains": doc["domains"], "ips": doc["ips"]}, sort_keys=True,
                      ensure_ascii=False)
    import hashlib
    assert hashlib.sha256(body.encode()).hexdigest() == doc["sha256"]
    assert doc["domains"] == ["phish.example"] and doc["numbers"] == ["+84987000666"]
    p = run_cli("lists", "export", "blacklist", "--format", "hosts", "--data-dir", tmp_path)
    assert "0.0.0.0 phish.example" in p.stdout.splitlines()
    p = run_cli("lists", "export", "dnc", "--format", "rbldnsd", "--data-dir", tmp_path)
    assert p.returncode == 2 and "blacklist only" in p.stderr


def test_a_domain_with_a_line_break_in_its_cell_is_a_bad_row_not_a_blank_line_in_the_zone(tmp_path):
    # found by the report probe: `^…$` let "http://evil.example\n/x" (a quoted CSV cell) through as "evil.example\n":
    # the filter never matched it, and the hosts and rbldnsd exports gained a blank line after it (rbldnsd itself
    # listed it, so the published list and the filter disagreed)
    st = ListStore(tmp_path)
    n, errors = st.import_csv("blacklist", b'kind,value\ndomain,"http://evil.example\n/x"\n'
                                           b'domain,"https://e\xc3\xa9.example\n/"\ndomain,good.example\n', "bl.csv")
    assert n == 1 and [e.line for e in errors] == [2, 4]
    assert all("not a domain" in e.message for e in errors)
    L = st.load()
    assert L.bl_domains == {"good.example"}
    for fmt in ("rbldnsd", "hosts", "json"):
        out = io.StringIO()
        write_blacklist(L, fmt, out)
        assert "\n\n" not in out.getvalue() and "evil" not in out.getvalue()
    p = run_cli("lists", "add", "blacklist", "http://evil.example\n/x", "--data-dir", tmp_path)
    assert p.returncode == 2 and "not a domain" in p.stderr


def test_a_domain_stored_with_a_line_break_by_an_earlier_version_loads_as_the_domain(tmp_path):
    # entries an earlier version stored as "evil.example\n" could not be removed (`lists remove` refuses the value
    # with its line break and does not find it without) and kept a blank line in the exports
    st = ListStore(tmp_path)
    L = st.load()
    L.bl_domains |= {"evil.example\n", "good.example"}
    st.save(L)
    assert ListStore(tmp_path).load().bl_domains == {"evil.example", "good.example"}
    p = run_cli("lists", "remove", "blacklist", "evil.example", "--data-dir", tmp_path)
    assert p.returncode == 0 and json.loads(p.stdout)["found"] is True
    p = run_cli("lists", "export", "blacklist", "--format", "hosts", "--data-dir", tmp_path)
    assert p.stdout.splitlines()[3:] == ["0.0.0.0 good.example"]


def _free_udp_port():
    return ports.free_port(socket.SOCK_DGRAM)


def test_rbldnsd_loads_the_zone_and_answers(tmp_path):
    rbldnsd, dig = shutil.which("rbldnsd") or shutil.which("/usr/sbin/rbldnsd"), shutil.which("dig")
    if not rbldnsd or not dig:
        pytest.skip("rbldnsd and dig not installed (apt-get install rbldnsd bind9-dnsutils): "
                    "zone checked against the documented format only")
    st = ListStore(tmp_path / "data")
    st.import_csv("blacklist", BL)
    zdir = tmp_path / "zone"
    zdir.mkdir()
    p = run_cli("lists", "export", "blacklist", "--format", "rbldnsd", "--data-dir", tmp_path / "data",
                "--out", zdir / "bl.zone")
    assert p.returncode == 0, p.stderr
    port = _free_udp_port()
    proc = subprocess.Popen([rbldnsd, "-n", "-r", str(zdir), "-b", f"127.0.0.1/{port}", "bl.test:combined:bl.zone"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def q(name, rr="A"):
        r = subprocess.run([dig, "+short", "+time=1", "+tries=3", "-p", str(port), "@127.0.0.1", f"{name}.bl.test", rr],
                           capture_output=True, text=True, timeout=15)
        return r.stdout.strip()
    try:
        for _ in range(50):                                   # until it has loaded the zone
            if q("phish.example.domain") or proc.poll() is not None:
                break
            time.sleep(0.1)
        assert proc.poll() is None, proc.stdout.read()
        assert q("phish.example.domain") == "127.0.0.2"
        assert q("login.phish.example.domain") == "127.0.0.2"          # subdomains are listed too
        assert q("example.domain") == ""
        assert q("84987000666.number") == "127.0.0.3"
        assert "84987000666" in q("84987000666.number", "TXT")
        assert q("84987000667.number") == ""
        assert q("7.2.0.192") == "127.0.0.4" and q("7.2.0.192.ip") == "127.0.0.4"
        assert q("200.100.51.198") == "127.0.0.4" and q("8.2.0.192") == ""
        v6 = ".".join(reversed("20010db80001" + "0" * 19 + "1"))            # 2001:db8:1::1, nibbles reversed
        assert q(v6) == "127.0.0.4"
    finally:
        proc.terminate()
        proc.wait(10)
