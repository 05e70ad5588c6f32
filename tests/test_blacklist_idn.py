"""A blacklisted domain written in Unicode (an internationalised name, "ví-dụ.vn") is stored in its IDNA form
(`xn--v-d-rma6749a.vn`), as the DNS holds it; a message linking to it as people write it, "https://ví-dụ.vn/…",
was looked up as written and never found: the link passed URL_BLACKLISTED (only the punycode form was dropped)."""
import json

import pytest

from engine.lists import Lists
from engine.textnorm import idna_host

from .conftest import run_cli

T = "2026-11-28T11:00:00+07:00"


@pytest.mark.parametrize("host, ascii_form", [
    ("ví-dụ.vn", "xn--v-d-rma6749a.vn"),
    ("a.ví-dụ.vn", "a.xn--v-d-rma6749a.vn"),
    ("VÍ-DỤ.VN", "xn--v-d-rma6749a.vn"),                      # nameprep folds case, as `lists import` does
    ("xn--v-d-rma6749a.vn", "xn--v-d-rma6749a.vn"),
    ("example.com", "example.com"),
    ("a" * 70 + "ụ.vn", "a" * 70 + "ụ.vn"),                   # a label IDNA refuses stays as written
])
def test_idna_host(host, ascii_form):
    assert idna_host(host) == ascii_form


def test_a_homograph_of_a_listed_ascii_domain_is_that_domain(data_dir, tmp_path):
    """A phishing link drawn with look-alike letters of a listed name ("vсb-vn.com", a Cyrillic с) reads as that
    name to the subscriber: it is looked up as it too (its IDNA form, xn--vb-vn-1ye.com, is another domain)."""
    L = Lists()
    L.bl_domains.add("vcb-vn.com")
    assert L.domain_blacklisted(["v\u0441b-vn.com"]) == "vcb-vn.com"
    assert L.domain_blacklisted(["login.v\u0441b-vn.com"]) == "vcb-vn.com"
    assert L.domain_blacklisted(["v\u0441b-vn.net"]) is None
    (tmp_path / "bl.csv").write_text("kind,value\ndomain,vcb-vn.com\n", encoding="utf-8")
    run_cli("lists", "import", "blacklist", tmp_path / "bl.csv", "--data-dir", data_dir, check=True)
    v = json.loads(run_cli("check", "--sender", "0901234567", "--recipient", "0912345678", "--text",
                           "TK cua QK bi khoa. Mo khoa: https://v\u0441b-vn.com/login", "--time", T,
                           "--data-dir", data_dir, check=True).stdout)
    hit = [h for h in v["hits"] if h["symbol"] == "URL_BLACKLISTED"]
    assert v["action"] == "drop" and hit[0]["detail"] == "v\u0441b-vn.com (vcb-vn.com) under listed domain vcb-vn.com"


def test_lists_find_a_unicode_host_under_its_listed_idna_form():
    L = Lists()
    L.bl_domains.add("xn--v-d-rma6749a.vn")
    assert L.domain_blacklisted(["ví-dụ.vn"]) == "xn--v-d-rma6749a.vn"
    assert L.domain_blacklisted(["x.ví-dụ.vn"]) == "xn--v-d-rma6749a.vn"
    assert L.domain_blacklisted(["vidu.vn", "ví-dụ.com"]) is None


def test_a_link_to_a_blacklisted_idn_domain_is_dropped_however_it_is_written(data_dir, tmp_path):
    (tmp_path / "bl.csv").write_text("kind,value\ndomain,ví-dụ.vn\n", encoding="utf-8")
    run_cli("lists", "import", "blacklist", tmp_path / "bl.csv", "--data-dir", data_dir, check=True)

    def check(text):
        return json.loads(run_cli("check", "--sender", "0901234567", "--recipient", "0912345678", "--text", text,
                                  "--time", T, "--data-dir", data_dir, check=True).stdout)
    for text, host in [("Nhan qua tai https://ví-dụ.vn/qua", "ví-dụ.vn (xn--v-d-rma6749a.vn)"),
                       ("Nhan qua tai https://VÍ-DỤ.VN/qua", "ví-dụ.vn (xn--v-d-rma6749a.vn)"),
                       ("Nhan qua tai https://km.ví-dụ.vn", "km.ví-dụ.vn (km.xn--v-d-rma6749a.vn)"),
                       ("Nhan qua tai https://xn--v-d-rma6749a.vn/qua", "xn--v-d-rma6749a.vn")]:
        v = check(text)
        hit = [h for h in v["hits"] if h["symbol"] == "URL_BLACKLISTED"]
        assert v["action"] == "drop" and hit, (text, v)
        assert hit[0]["detail"] == f"{host} under listed domain xn--v-d-rma6749a.vn", hit
    other = check("Nhan qua tai https://vídụ.vn/qua")                             # another name
    assert "URL_BLACKLISTED" not in [h["symbol"] for h in other["hits"]], other


def test_a_host_of_thousands_of_unicode_labels_costs_what_its_last_253_characters_do(monkeypatch):
    """Only the labels a listed name can reach are converted to IDNA (every one was: 32,000 accented labels took
    0.2 s, twice for the evidence); the listed domain at its end is found all the same."""
    import encodings.idna
    calls = []
    real = encodings.idna.ToASCII
    monkeypatch.setattr(encodings.idna, "ToASCII", lambda label: calls.append(label) or real(label))
    L = Lists()
    L.bl_domains.add("xn--v-d-rma6749a.vn")
    host = "á." * 20000 + "ví-dụ.vn"
    assert L.domain_blacklisted([host]) == "xn--v-d-rma6749a.vn"
    assert len(calls) < 200, len(calls)
    assert idna_host(host).endswith(".xn--1ca.xn--v-d-rma6749a.vn")
    assert idna_host("ví" * 3000 + ".vn") == "ví" * 3000 + ".vn"      # one label longer than any name: as written


def test_capital_look_alikes_whose_small_letters_differ_are_read_as_latin():
    """"https://ВIDV-VN.COM" with a Cyrillic capital В reads BIDV-VN.COM in the message; hosts were lowercased before
    their look-alikes were read, and a small в (drawn as a small capital) is none: the link passed."""
    from engine.textnorm import find_hosts
    L = Lists()
    L.bl_domains.add("bidv-vn.com")
    hosts = find_hosts("Tai khoan bi khoa: https://\u0412IDV-VN.COM/login")
    assert L.domain_blacklisted(hosts) == "bidv-vn.com"
    assert L.domain_blacklisted(find_hosts("https://\u0432idv-vn.com/login")) is None     # small в: not a b
    assert find_hosts("https://VÍ-DỤ.VN/qua") == ["ví-dụ.vn"]                           # no look-alike: one host


def test_a_kilobytes_long_host_is_cut_in_the_evidence_and_still_found(data_dir, tmp_path):
    """A link's host padded to kilobytes (a 64 KB message_payload can carry one) was written whole into the hit's
    evidence, and so into every verdict-log line: the evidence keeps the host's last 64 characters."""
    (tmp_path / "bl.csv").write_text("kind,value\ndomain,example.com\n", encoding="utf-8")
    run_cli("lists", "import", "blacklist", tmp_path / "bl.csv", "--data-dir", data_dir, check=True)
    host = "a" * 3000 + ".example.com"
    v = json.loads(run_cli("check", "--sender", "VCB", "--recipient", "0912345678", "--text",
                           f"Xem tai http://{host}/x", "--time", T, "--data-dir", data_dir, check=True).stdout)
    (hit,) = [h for h in v["hits"] if h["symbol"] == "URL_BLACKLISTED"]
    assert hit["detail"] == "\u2026" + host[-63:] + " under listed domain example.com"
