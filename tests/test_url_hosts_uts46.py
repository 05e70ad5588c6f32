"""A link's host is read as a browser reads it (UTS #46): compatibility forms of letters (mathematical, circled,
modifier, long s) and variation selectors 17-256 map to the ASCII host. Before, only full-width letters and the
BMP's invisible characters were mapped, so 'https://𝐩𝐡𝐢𝐬𝐡.example/verify' or 'https://phish<U+E0100>.example'
went through a blacklist of phish.example (found by a probe of how message content is judged)."""
import pytest

from engine.textnorm import find_hosts


def _math_bold(s):
    return "".join(chr(0x1D41A + ord(c) - 97) if "a" <= c <= "z" else c for c in s)


def _circled(s):
    return "".join(chr(0x24D0 + ord(c) - 97) if "a" <= c <= "z" else c for c in s)


@pytest.mark.parametrize("host", [_math_bold("phish") + ".example", _circled("phish") + ".example",
                                  "phi\u017fh.example", "phish\U000e0100.example", "ph\U000e01efish.example",
                                  "phish" + _math_bold(".example")])
def test_a_link_in_compatibility_letters_is_the_ascii_host(host):
    assert "phish.example" in find_hosts(f"Verify at https://{host}/login today")


def test_vietnamese_text_and_its_hosts_unchanged():
    assert find_hosts("Chào bạn, xem tại https://điện.vn/khuyến-mãi nhé") == ["điện.vn"]
