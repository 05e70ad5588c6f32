"""A stop says what the SMPP drain did in serve's default service log (no -v), as it says the SIP screen's: an
operator checking a SIGTERM saw `SIP drained: …` and nothing of the submits in flight or the unbinds."""
import logging
import socket

from engine.app import build
from engine.smpp_proxy.codec import encode
from engine.smpp_proxy.codec import pdu as P
from engine.smpp_proxy.harness import ProxyHarness

from .test_smpp_proxy import read_raw


def test_the_smpp_drain_is_said_at_the_levels_serve_logs_without_verbose(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="telfilter")           # as servicelog.setup_service_logging(False)
    caplog.set_level(logging.INFO, logger="telfilter.service")
    h = ProxyHarness(build(data_dir=tmp_path / "data"), accounts=("esme1:secret",)).start()
    try:
        esme = socket.create_connection(("127.0.0.1", h.port), timeout=5)
        esme.sendall(encode(P.BindTransceiver(sequence_number=1, system_id="esme1", password="secret")))
        assert read_raw(esme).command_status == 0
        h.call(h.proxy.drain(1.0, unbind_wait=0.3))
        esme.close()
        h.call(h.proxy.stop())
    finally:
        h.proxy = None
        h.stop()
    said = [r.getMessage() for r in caplog.records if r.name == "telfilter.service" and "drained" in r.getMessage()]
    assert len(said) == 1 and said[0].startswith("SMPP drained: 0 requests in flight at the stop, 0 unanswered at the "
                                                 "deadline; "), said
