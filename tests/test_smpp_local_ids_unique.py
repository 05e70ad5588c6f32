"""A silent drop's local message_id is never reused by a later process (L, start time in ms and pid in hex, -, a counter).

Found by the Kannel interop probe: every serve numbered its local ids from L000000001, so after a restart the
REJECTD receipt of a new message carried the id an earlier process had given another message. Kannel, which keeps
a receipt's id until the receipt comes (its DLR store survives the proxy's restart), took 11 receipts of 20 new
silent drops as the final state of 11 messages sent minutes before through the previous process (callbacks at
11:29 for messages of 11:25), and the new messages never got one."""
from engine.app import build
from engine.lists import ListStore
from engine.smpp_proxy.accounts import SmppSettings
from engine.smpp_proxy.codec import encode
from engine.smpp_proxy.codec import pdu as P
from engine.smpp_proxy.harness import ProxyHarness

from .test_smpp_proxy import raw_session, read_raw


def _first_local_id(d) -> str:
    s = SmppSettings(silent_symbols=("URL_BLACKLISTED",))
    with ProxyHarness(build(data_dir=d), accounts=("esme1:secret",), settings=s) as h:
        sock, _ = raw_session(h)
        sock.sendall(encode(P.SubmitSm(sequence_number=2, source_addr="84901234567", destination_addr="84912345678",
                                       short_message=b"Xac minh tai http://phish.example/login ngay")))
        r = read_raw(sock)
        sock.close()
    assert r.command_status == 0 and r.message_id.startswith("L")
    return r.message_id


def test_a_restarted_proxy_does_not_reuse_local_message_ids(tmp_path):
    d = tmp_path / "data"
    ListStore(d).import_csv("blacklist", b"kind,value\ndomain,phish.example\n")
    first, second = _first_local_id(d), _first_local_id(d)
    assert first != second
    assert len(first) <= 64                       # SMPP 3.4 §5.2.23: message_id, C-Octet String of at most 65
