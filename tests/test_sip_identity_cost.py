"""What an INVITE's identity headers cost: the caller is read from at most identity.MAX_IDENTITIES identities of each
of P-Asserted-Identity, Remote-Party-ID and P-Preferred-Identity (RFC 3325 §9.1 allows a P-Asserted-Identity one sip
and one tel identity), the rest of the headers not scanned. Before, every identity of every such header was split
and parsed: an INVITE of 55 KB carrying seven P-Asserted-Identity headers of ~560 identities each cost ~10 ms to
judge (~100 times a plain INVITE; 0.4 ms for as many bytes of other headers), from any peer in
trusted_identity_networks (by default every address), under the overload shares' floor of 64 INVITEs a second."""
import pytest

from engine.sip_screen import identity
from engine.sip_screen.codec import parse_datagram
from engine.sip_screen.identity import _caller
from tests.sip_helpers import invite

MANY = ", ".join(f"<sip:u{i}@h>" for i in range(560))         # under the 8,192 bytes of one header


def _judged_as(extra, monkeypatch, caller="anonymous"):
    msg = parse_datagram(invite(caller=caller, extra=extra))
    read = []                                       # each identity parsed: its URI read
    real = identity.parse_uri
    monkeypatch.setattr(identity, "parse_uri", lambda v: read.append(v) or real(v))
    first = {h[2]: h[1] for h in reversed(msg.headers)}
    return _caller(msg, first)[0], read


@pytest.mark.parametrize("header", ["P-Asserted-Identity", "Remote-Party-ID", "P-Preferred-Identity"])
def test_hundreds_of_identities_are_not_all_read(header, monkeypatch):
    who, read = _judged_as([f"{header}: {MANY}"] * 7, monkeypatch)
    assert len(read) <= 20                          # a few identities (and the From user), not 3,920
    assert who in ("anonymous", "u0")


def test_a_number_among_the_first_identities_is_still_the_caller(monkeypatch):
    # a sip identity then the tel one, in two headers (RFC 3325 §9.1), then hundreds more: the tel number is the caller
    who, _ = _judged_as(["P-Asserted-Identity: <sip:shop@h>", "P-Asserted-Identity: <tel:+84987000666>",
                         f"P-Asserted-Identity: {MANY}"], monkeypatch)
    assert who == "+84987000666"
    who, _ = _judged_as([f'Remote-Party-ID: "A, B" <sip:x@h>;party=called, <sip:0987000666@h>;party=calling, {MANY}'],
                        monkeypatch)
    assert who == "0987000666"
