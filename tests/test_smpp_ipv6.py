"""The SMPP proxy over IPv6, on [::1] (nothing leaves the machine): ESMEs bind and submit over IPv6, the SMSC link
goes to [::1], an account's allowed_networks are IPv6 networks, and the per-source connection cap counts the
/64 (engine/sourcekey.py; the unit tests with many addresses of a /64 are in test_ipv6_source_limits.py)."""
import dataclasses
import socket

import smpplib.client
import smpplib.consts
import smpplib.gsm

from engine.app import build
from engine.loopthread import LoopThread
from engine.smpp_proxy.accounts import SmppSettings, account_from_arg
from engine.smpp_proxy.server import SmppProxy
from engine.verdictlog import VerdictLog
from engine.smpp_proxy.simulator import SmscSimulator

from .test_smpp_proxy import wait


class V6(LoopThread):
    """The simulator on ::1 and the proxy on [::1]:0 linked to it."""

    def __init__(self, settings):
        super().__init__("smpp-v6")
        self.settings = settings

    def start(self):
        self.start_loop()
        self.sim = SmscSimulator(receipt_delay=None)
        self.call(self.sim.start("::1", 0))
        self.settings.smsc = [f"[::1]:{self.sim.port}"]
        self.proxy = SmppProxy(build(with_model=False, persist=False), self.settings, VerdictLog(open("/dev/null", "w")))
        self.call(self.proxy.start("[::1]:0"))
        assert self.call(self.proxy.wait_upstream(10)), "the proxy did not bind to the simulator on [::1]"
        return self

    def stop(self):
        try:
            self.call(self.proxy.stop())
            self.call(self.sim.stop())
        finally:
            self.stop_loop()


def esme6(port) -> smpplib.client.Client:
    """An smpplib client on an IPv6 connection (its connect() makes an AF_INET socket only)."""
    c = smpplib.client.Client("::1", port, timeout=5)
    c._socket = socket.create_connection(("::1", port), 5)
    c.state = smpplib.consts.SMPP_CLIENT_STATE_OPEN
    return c


def test_esme_binds_and_submits_over_ipv6_allowed_networks_v6_and_the_cap_counts_the_64():
    s = SmppSettings(max_connections_per_source=3)
    here = dataclasses.replace(account_from_arg("here:pw"), allowed_networks=("::1/128",))
    there = dataclasses.replace(account_from_arg("there:pw"), allowed_networks=("2001:db8::/32", "127.0.0.0/8"))
    s.accounts.update({"here": here, "there": there})
    h = V6(s).start()
    clients, raws = [], []
    try:
        c = esme6(h.proxy.port)
        clients.append(c)
        assert c.bind_transceiver(system_id="here", password="pw").status == 0
        parts, enc, esm = smpplib.gsm.make_parts("hello over IPv6")
        c.send_message(source_addr_ton=1, source_addr="84901234567", dest_addr_ton=1, destination_addr="84912345678",
                       short_message=parts[0], data_coding=enc, esm_class=esm)
        resp = c.read_pdu()
        assert resp.command == "submit_sm_resp" and resp.status == 0
        assert wait(lambda: h.sim.submits())                             # it went on to the SMSC over [::1]
        d = esme6(h.proxy.port)
        clients.append(d)
        try:
            d.bind_transceiver(system_id="there", password="pw")
            status = 0
        except smpplib.exceptions.PDUError as e:
            status = e.args[1]
        assert status == 0x0E                                              # ESME_RINVPASWD: ::1 is not its network
        assert h.proxy.caps.by_source == {"::/64": 2}                     # one bound, one connection not bound
        for _ in range(3):                                                 # the cap (3): unbound ones make room
            raws.append(socket.create_connection(("::1", h.proxy.port), 5))
        assert wait(lambda: h.proxy.caps.stats["evicted"] == 2)
        assert h.proxy.caps.by_source == {"::/64": 3}
    finally:
        for c in clients:
            try:
                c._socket.close()
            except OSError:
                pass
        for r in raws:
            r.close()
        h.stop()


def test_log_lines_name_an_ipv6_smsc_and_esme_in_brackets(caplog):
    """`SMSC ::1:2775` (the host and port run together: no way to tell where the address ends) used to be how
    every SMSC line named an IPv6 link, and an ESME's malformed PDU was logged with its peer as a Python tuple;
    both now read [::1]:PORT (RFC 3986 §3.2.2), as the SIP screen's lines and its Via headers do."""
    import logging
    import struct
    caplog.set_level(logging.INFO, logger="telfilter")
    h = V6(SmppSettings()).start()
    raw = None
    try:
        assert any(f"bound to SMSC [::1]:{h.sim.port} as transceiver" in r.getMessage() for r in caplog.records)
        raw = socket.create_connection(("::1", h.proxy.port), 5)
        raw.sendall(struct.pack(">IIII", 16, 0x0000_0099, 0, 1))        # an unknown command id
        assert wait(lambda: any(r.getMessage().startswith("malformed PDU from [::1]:") for r in caplog.records)), \
            [r.getMessage() for r in caplog.records]
    finally:
        if raw is not None:
            raw.close()
        h.stop()
    assert not [r.getMessage() for r in caplog.records if "::1:" in r.getMessage() and "[::1]:" not in r.getMessage()]
