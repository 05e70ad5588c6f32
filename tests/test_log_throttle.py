"""servicelog.LogThrottle: a line said at once, then at most once every `every` s, with how many times it happened
since the last line; and the lines said through it (tls_rate.Refusals, tls_crl.CertRefusals, forwarding._warn), word
for word as before it. The clock is injected: no sleeps."""
import logging
import socket
import types

from engine.servicelog import LogThrottle
from engine.sip_screen import forwarding
from engine.smpp_proxy.tls_crl import CERT_REVOKED, CRL_HAS_EXPIRED, CertRefusals
from engine.smpp_proxy.tls_rate import Refusals


def test_said_at_once_then_at_most_every_interval_with_the_count_since():
    t = LogThrottle(10.0)
    said = [(now, t.due(now)) for now in (100.0, 100.5, 109.99, 110.0, 110.1, 125.0, 126.0, 136.0)]
    # 110.0: exactly 10 s after the last line, which said one; the three since (100.5, 109.99, 110.0)
    assert said == [(100.0, 1), (100.5, 0), (109.99, 0), (110.0, 3), (110.1, 0), (125.0, 2), (126.0, 0), (136.0, 2)]


def test_the_interval_runs_from_the_last_line_not_the_last_occurrence():
    t = LogThrottle(10.0)
    assert [t.due(now) for now in (0.0, 6.0, 12.0, 18.0, 24.0, 30.0)] == [1, 0, 2, 0, 2, 0]


def test_many_at_once_are_counted_as_many():
    t = LogThrottle(1.0)
    assert [t.due(5.0, 1200), t.due(5.5, 100), t.due(6.5, 200), t.due(6.6, 1)] == [1200, 0, 300, 0]


def _lines(caplog):
    return [r.getMessage() for r in caplog.records]


def test_refusals_line(caplog):
    stats = {"tls_handshakes_refused": 0}
    r = Refusals(stats)
    caplog.set_level(logging.WARNING, "telfilter.smpp")
    for host, now in (("192.0.2.1", 50.0), ("192.0.2.2", 55.0), ("192.0.2.3", 59.9), ("192.0.2.4", 60.0)):
        r.refuse(socket.socket(), host, now)
    assert stats["tls_handshakes_refused"] == 4
    line = ("TLS listener: %d connection(s) refused before their handshake since the last such line: over "
            "tls_handshakes_per_source or tls_handshakes_per_second (the last from %s)")
    assert _lines(caplog) == [line % (1, "192.0.2.1"), line % (3, "192.0.2.4")]


def test_cert_refusals_lines_per_source_and_for_an_expired_crl(caplog):
    stats = {"tls_client_revoked": 0, "tls_client_crl_expired": 0}
    c = CertRefusals(stats, max_sources=2)
    revoked = types.SimpleNamespace(verify_code=CERT_REVOKED)
    expired = types.SimpleNamespace(verify_code=CRL_HAS_EXPIRED)
    caplog.set_level(logging.WARNING, "telfilter.smpp")
    for host, e, now in (("192.0.2.1", revoked, 0.0), ("192.0.2.1", revoked, 1.0), ("192.0.2.2", revoked, 2.0),
                         ("192.0.2.1", revoked, 10.0), ("192.0.2.3", expired, 11.0), ("192.0.2.4", expired, 12.0),
                         ("192.0.2.3", expired, 21.0), ("192.0.2.5", revoked, 25.0)):
        assert c.refused(host, e, now)
    assert not c.refused("192.0.2.1", types.SimpleNamespace(verify_code=CERT_REVOKED + 1), 30.0)
    rev = ("TLS client certificate of %s refused: revoked (tls_client_crl); %d refusal(s) from it since the last "
           "such line")
    exp = ("TLS handshake refused: tls_client_crl has expired (its nextUpdate passed): every client certificate is "
           "refused until a current CRL is loaded (telfilter ctl reload accounts); %d refusal(s) since the last such "
           "line (the last from %s)")
    assert _lines(caplog) == [rev % ("192.0.2.1", 1), rev % ("192.0.2.2", 1), rev % ("192.0.2.1", 2),
                              exp % (1, "192.0.2.3"), exp % (2, "192.0.2.3"), rev % ("192.0.2.5", 1)]
    assert stats == {"tls_client_revoked": 5, "tls_client_crl_expired": 3}
    assert list(c.sources) == ["192.0.2.1", "192.0.2.5"]         # the bound: 2 sources, the least recently seen gone


def test_sip_warnings_once_a_second_per_kind_with_how_many_more(caplog, monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(forwarding, "time", types.SimpleNamespace(monotonic=lambda: clock[0]))
    w = types.SimpleNamespace(warned={})
    caplog.set_level(logging.WARNING, "telfilter.sip")
    for now, kind, what in ((1000.0, "permit", "a"), (1000.2, "permit", "b"), (1000.3, "tcp", "c"),
                            (1000.9, "permit", "d"), (1001.0, "permit", "e"), (1001.5, "permit", "f"),
                            (1003.0, "permit", "g")):
        clock[0] = now
        forwarding.Forwarding._warn(w, kind, "%s: %s", kind, what)
    assert _lines(caplog) == ["permit: a", "tcp: c", "permit: e (and 2 more like it in the last second)",
                              "permit: g (and 1 more like it in the last second)"]
