"""Interop with Kannel (bearerbox + smsbox, Debian package `kannel`), the SMS gateway many carriers' ESMEs run,
as the ESME in front of the proxy; our SMSC simulator behind it, with delivery receipts. Kannel binds with
system_type KANNEL and interface_version 0x34 to an account of the proxy; MTs go in through smsbox's sendsms
over HTTP, Kannel's DLR and MO callbacks come back to a catcher in the test. Configs: tests/interop/kannel/.

Transceiver: an allowed MT is forwarded and its receipt matched by Kannel to its message (DLR type 1, the id of
the SMSC's submit_sm_resp); an ad with a QC label from a plain number gets ESME_RSUBMITFAIL, which Kannel reads
as a permanent failure (DLR 16 "NACK/0x00000045", not retried); UCS-2 Vietnamese and a long text Kannel splits
(UDH concatenation) are judged whole and forwarded part for part; an MO reaches Kannel. Transmitter + receiver
binds: a silent drop's REJECTD receipt reaches Kannel on its receiver after the resp on its transmitter (DLR 2).

Skipped when `bearerbox` is not installed (apt-get install -y kannel; its system service is not needed)."""
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from engine.app import build
from engine.lists import ListStore
from engine.smpp_proxy.accounts import SmppSettings
from engine.smpp_proxy.codec import constants as C
from engine.smpp_proxy.harness import ProxyHarness
from engine.verdictlog import VerdictLog

from .conftest import ROOT

BEARERBOX, SMSBOX = shutil.which("bearerbox") or "/usr/sbin/bearerbox", shutil.which("smsbox") or "/usr/sbin/smsbox"
CONF = ROOT / "tests" / "interop" / "kannel"
pytestmark = pytest.mark.skipif(not (Path(BEARERBOX).exists() and Path(SMSBOX).exists()),
                                reason="Kannel not installed (apt-get install -y kannel)")

VI = "Xin chào, cuộc họp lúc 15 giờ tại phòng số 2. Đừng quên mang tài liệu nhé!"
LONG = "Thong bao lich hop phong ban: " + " ".join(f"muc {i} can trao doi ve ke hoach quy mot;" for i in range(8))


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


class Catcher:
    """Kannel's DLR and MO callbacks (HTTP GET), one dict per request."""

    def __init__(self):
        self.got, got = [], []
        self.got = got

        class H(BaseHTTPRequestHandler):
            def do_GET(self):
                u = urllib.parse.urlsplit(self.path)
                got.append({"path": u.path, **dict(urllib.parse.parse_qsl(u.query, keep_blank_values=True))})
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait(self, pred, timeout=10):
        end = time.time() + timeout
        while time.time() < end:
            hits = [g for g in list(self.got) if pred(g)]
            if hits:
                return hits
            time.sleep(0.05)
        return []

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class Kannel:
    def __init__(self, d: Path, proxy_port: int, callback_port: int, smsc="transceiver", extra=""):
        self.dir = d
        d.mkdir(parents=True, exist_ok=True)
        self.admin_port, smsbox_port, self.sendsms_port = _free_ports(3)
        groups = (CONF / f"smsc-{smsc}.conf.in").read_text().format(proxy_port=proxy_port, extra=extra)
        conf = (CONF / "kannel.conf.in").read_text().format(
            admin_port=self.admin_port, smsbox_port=smsbox_port, sendsms_port=self.sendsms_port,
            callback_port=callback_port, dir=d, smsc_groups=groups)
        (d / "kannel.conf").write_text(conf)
        self.procs = []

    def start(self, binds=1, timeout=15):
        for exe in (BEARERBOX, SMSBOX):
            self.procs.append(subprocess.Popen([exe, str(self.dir / "kannel.conf")], stdout=subprocess.DEVNULL,
                                               stderr=subprocess.DEVNULL, start_new_session=True))
            time.sleep(0.3 if exe == BEARERBOX else 0)
        end = time.time() + timeout
        while time.time() < end:
            st = self.status()
            if st.count("(online") >= binds and "smsbox:" in st and self._sendsms_up():
                return self
            if self.procs[0].poll() is not None:
                break
            time.sleep(0.1)
        log = (self.dir / "bearerbox.log").read_text(errors="replace")[-2000:] if (self.dir / "bearerbox.log").exists() else ""
        raise AssertionError(f"Kannel did not bind to the proxy: {self.status()}\n{log}")

    def _sendsms_up(self):
        try:
            socket.create_connection(("127.0.0.1", self.sendsms_port), timeout=0.2).close()
            return True
        except OSError:
            return False

    def status(self) -> str:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}/status.txt?password=adminpw", timeout=2) as r:
                return r.read().decode(errors="replace")
        except OSError:
            return ""

    def send(self, ref, text, frm="84987654321", to="84912345678", callback_port=None, **extra) -> str:
        q = {"username": "tester", "password": "testpw", "from": frm, "to": to, "text": text, "dlr-mask": "31",
             "dlr-url": f"http://127.0.0.1:{callback_port}/dlr?ref={ref}&type=%d&reply=%A&msgid=%F", **extra}
        url = f"http://127.0.0.1:{self.sendsms_port}/cgi-bin/sendsms?" + urllib.parse.urlencode(q)
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.read().decode()

    def stop(self):
        for p in reversed(self.procs):           # smsbox first, then bearerbox (it unbinds from the proxy)
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()


@pytest.fixture
def setup(tmp_path):
    d = tmp_path / "data"
    ListStore(d).import_csv("blacklist", b"kind,value\ndomain,phish.example\n")
    log = open(tmp_path / "verdicts.jsonl", "w")
    h = ProxyHarness(build(data_dir=d), accounts=("kannel:secret",), verdict_log=VerdictLog(log),
                     settings=SmppSettings(silent_symbols=("URL_BLACKLISTED",)), receipt_delay=0.3).start()
    cb = Catcher()
    yield h, cb, tmp_path
    cb.close()
    h.stop()
    log.close()


def _final(cb, ref, types=("1", "2", "16"), timeout=10):
    return cb.wait(lambda g: g["path"] == "/dlr" and g["ref"] == ref and g["type"] in types, timeout)


def test_kannel_transceiver_mt_receipt_drop_ucs2_long_mo(setup):
    h, cb, tmp = setup
    k = Kannel(tmp / "kannel", h.port, cb.port).start()
    try:
        bind = [p for _, p in h.sim.received if p.command_id == C.BIND_TRANSCEIVER]
        assert bind                                           # the proxy bound upstream; Kannel bound to it
        assert k.send("ham", "Hen gap ban luc 3 gio chieu mai o quan cafe", callback_port=cb.port).startswith("0:")
        fin = _final(cb, "ham")
        assert fin and fin[0]["type"] == "1" and "stat:DELIVRD" in fin[0]["reply"], cb.got
        sub = h.sim.submits()[0]
        assert sub.registered_delivery & 0x01
        issued = fin[0]["msgid"]                              # Kannel matched the receipt to the SMSC's id
        assert f"id:{issued} " in fin[0]["reply"]

        assert k.send("qc", "[QC] Khuyen mai 50% tai SHOPABC. Tu choi: soan TC gui 5656",
                      callback_port=cb.port).startswith("0:")
        fin = _final(cb, "qc")
        assert fin and fin[0]["type"] == "16" and fin[0]["reply"].startswith("NACK/0x00000045"), cb.got

        assert k.send("vi", VI, callback_port=cb.port, coding="2", charset="UTF-8").startswith("0:")
        assert k.send("long", LONG, callback_port=cb.port).startswith("0:")
        assert _final(cb, "vi") and _final(cb, "long")
        ucs2 = [s for s in h.sim.submits() if s.data_coding == 8]
        text = b"".join(s.short_message[s.short_message[0] + 1:] if s.esm_class & 0x40 else s.short_message
                        for s in ucs2).decode("utf-16-be")
        assert text == VI
        parts = [s for s in h.sim.submits() if s.data_coding == 0 and s.esm_class & 0x40]
        assert len(parts) == -(-len(LONG) // 153) and b"".join(s.short_message[6:] for s in parts).decode() == LONG
        assert len(h.sim.submits()) == 1 + len(ucs2) + len(parts)      # the [QC] ad never reached the SMSC

        assert h.run(h.sim.send_mo, "84912000111", "8088", "Chào bạn, tôi muốn đăng ký")
        mo = cb.wait(lambda g: g["path"] == "/mo")
        assert mo and mo[0]["text"] == "Chào bạn, tôi muốn đăng ký" and mo[0]["to"] == "8088", cb.got
    finally:
        k.stop()
    unbinds = [p for _, p in h.sim.received if p.command_id == C.UNBIND]
    assert unbinds == []                                      # Kannel's unbind ends at the proxy, not upstream


def test_kannel_transmitter_receiver_silent_drop_receipt_matched(setup):
    h, cb, tmp = setup
    k = Kannel(tmp / "kannel", h.port, cb.port, smsc="txrx").start(binds=2)
    try:
        n = 20                 # sent at once, as the probe did (with the receipt sent with the resp: 11 of 20 lost)
        with ThreadPoolExecutor(n) as ex:
            answers = list(ex.map(lambda i: k.send(f"phish{i}", f"Tai khoan {i} bi khoa, xac minh tai http://phish.example/{i}",
                                                   to=f"849123450{i:02d}", callback_port=cb.port), range(n)))
        assert all(a.startswith("0:") for a in answers), answers
        for i in range(n):
            fin = _final(cb, f"phish{i}")
            assert fin and fin[0]["type"] == "2" and "stat:REJECTD" in fin[0]["reply"], (i, cb.got)
        assert h.sim.submits() == []
        assert k.send("ham", "Don hang cua ban da duoc giao", callback_port=cb.port).startswith("0:")
        fin = _final(cb, "ham")
        assert fin and fin[0]["type"] == "1", cb.got
    finally:
        k.stop()


def test_kannel_binds_over_tls(tmp_path):
    """Kannel's `use-ssl = true` (its SMPP client over TLS) against the proxy's TLS listener: an MT and its receipt."""
    d = tmp_path / "data"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-subj", "/CN=localhost", "-days", "1", "-keyout", tmp_path / "key.pem", "-out", tmp_path / "cert.pem"],
                   check=True, capture_output=True)
    s = SmppSettings(tls_listen="127.0.0.1:0", tls_cert=str(tmp_path / "cert.pem"), tls_key=str(tmp_path / "key.pem"))
    h = ProxyHarness(build(data_dir=d), accounts=("kannel:secret",), settings=s, receipt_delay=0.3).start()
    cb = Catcher()
    k = Kannel(tmp_path / "kannel", h.proxy.tls_port, cb.port, extra="use-ssl = true")
    try:
        k.start()
        tls = [x.transport.get_extra_info("ssl_object") for x in list(h.proxy.sessions)]
        assert tls and all(t is not None for t in tls)               # Kannel's bind came over the TLS listener
        assert k.send("ham", "Hen gap ban luc 3 gio chieu mai o quan cafe", callback_port=cb.port).startswith("0:")
        fin = _final(cb, "ham")
        assert fin and fin[0]["type"] == "1" and "stat:DELIVRD" in fin[0]["reply"], cb.got
        assert h.proxy.stats["tls_handshake_failures"] == 0
    finally:
        k.stop()
        cb.close()
        h.stop()
