"""SMPP over TLS ("SMPPS"): the ESME side's TLS listener, the SMSC links' TLS, and their config checks.

Theory of operation. SMPP 3.4 says nothing of TLS; carriers run the same PDUs inside a TLS session
(Kannel's `use-ssl`, smpplib's `ssl_context`, often port 3550). Both sides use TLS 1.2 at least
(RFC 8996 retired 1.0 and 1.1).

ESME side: the TLS listener accepts TCP itself and starts TLS on each connection once it is admitted
(`loop.connect_accepted_socket(ssl=...)`), instead of `create_server(ssl=...)`: asyncio then tells the
protocol about a connection only after its handshake, so a peer that opened connections and never
finished a handshake would hold file descriptors outside the connection caps (admission.py). Here
every TCP connection takes its slot at accept, is the oldest *unbound* connection to close at a cap
like any other, and is closed after `tls_handshake_timeout` (or `bind_timeout`, whichever comes first).
(Not `start_tls` from connection_made: uvloop (0.23 here) resumes reading after connection_made, so the
ClientHello could reach the SMPP codec first.) After
the handshake the session is an ordinary `EsmeSession`: accounts, bind back-off, windows, the lot.
With `tls_client_ca` the listener requires a client certificate issued by that CA (mutual TLS); a
peer without one fails its handshake; with `tls_client_crl` too, one that CA revoked does (tls_crl.py). The
rate of handshakes is bounded per source and for the listener, at
accept, before any handshake work (tls_rate.py). Handshakes started, refused by the rate and failed are counted
in `stats` (`tls_handshakes`, `tls_handshakes_refused`, `tls_handshake_failures`, `smsc_tls_handshake_failures`),
which /metrics exports as telfilter_smpp_events{event=...}.

SMSC side: a link with `tls = true` connects, then starts TLS as a client, verifying the SMSC's
certificate against `tls_ca` (default: the system's store) and its name against `tls_server_name`
(default: the address's host), then binds as usual.

Config checks (`check_tls`) load every certificate, key and CA file named, so `config check` and
serve's start-up say at the key's line which file is missing, unreadable, not PEM, or a key that
does not match its certificate (errors); an expired certificate is a warning.
"""
from __future__ import annotations

import asyncio
import logging
import os
import socket
import ssl
import stat
import time
from pathlib import Path

from ..listen import BACKLOG, peer_of
from .esme import EsmeSession
from .tls_crl import CertRefusals, check_crl, earliest_next_update
from .tls_rate import HandshakeRate, Refusals

MIN_VERSION = ssl.TLSVersion.TLSv1_2
HANDSHAKE_TIMEOUT = 10.0        # seconds: the default of [server] tls_handshake_timeout and of an SMSC link's
SERVER_KEYS = {"tls_listen": (str,), "tls_cert": (str,), "tls_key": (str,), "tls_client_ca": (str,),
               "tls_client_crl": (str,)}
_FILES = ("tls_cert", "tls_key", "tls_client_ca", "tls_client_crl")
# (the numbers, tls_handshake_timeout and the handshake rates, are accounts._SERVER_KEYS)
LINK_KEYS = {"tls": (bool,), "tls_ca": (str,), "tls_server_name": (str,)}

log = logging.getLogger("telfilter.smpp")


def _no_password() -> bytes:
    # an encrypted key must fail to load, not make OpenSSL prompt on the terminal of a daemon
    raise ValueError("the key is encrypted (a passphrase is not supported: store it unencrypted, mode 0600)")


def server_context(cert: str, key: str, client_ca: str = "", client_crl: str = "") -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = MIN_VERSION
    ctx.load_cert_chain(cert, key, password=_no_password)
    if client_ca:                               # mutual TLS: a client certificate issued by this CA, or no session
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(cafile=client_ca)
        if client_crl:                          # the leaf's issuer's CRL, not the chain's (tls_crl.py says why)
            ctx.load_verify_locations(cafile=client_crl)
            ctx.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
    return ctx


def client_context(ca: str = "") -> ssl.SSLContext:
    """For an SMSC link: its certificate verified (against `ca`, else the system's store) and its name checked."""
    ctx = ssl.create_default_context(cafile=ca or None)
    ctx.minimum_version = MIN_VERSION
    return ctx


def resolve(cdir: Path, value: str) -> str:
    """A path of smpp.toml: relative to the config directory, as telfilter.toml's are."""
    return str(value if Path(value).is_absolute() else (Path(cdir) / value).absolute())


def server_settings(s, cdir: Path, srv: dict) -> None:
    """[server]'s TLS keys (checked by check_tls) onto SmppSettings `s`."""
    s.tls_listen = srv.get("tls_listen", "")
    for k in _FILES:
        if k in srv:
            setattr(s, k, resolve(cdir, srv[k]))


def link_settings(cdir: Path, table: dict) -> dict:
    """An [upstream] smsc table's TLS keys, for SmppSettings.smsc_links (empty: a plain link)."""
    if not table.get("tls"):
        return {}
    return {"tls": True, "tls_ca": resolve(cdir, table["tls_ca"]) if "tls_ca" in table else "",
            "tls_server_name": table.get("tls_server_name") or table["address"].rpartition(":")[0].strip("[]")}


def _unreadable(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            f.read(1)
    except FileNotFoundError:
        return "no such file"
    except IsADirectoryError:
        return "is a directory"
    except OSError as e:
        return f"cannot be read ({e.strerror})"
    return None


def _certs_problem(path: str) -> str | None:
    """Why `path` holds no PEM certificate, else None."""
    bad = _unreadable(path)
    if bad:
        return bad
    try:
        ssl.create_default_context(cafile=None).load_verify_locations(cafile=path)
    except (ssl.SSLError, ValueError) as e:
        return f"holds no PEM certificate ({e})"
    return None


def _expiry_warning(where: str, what: str, path: str, now: float) -> str | None:
    try:        # CPython's own decoder (the one getpeercert uses); absent elsewhere: no warning then
        not_after = ssl._ssl._test_decode_cert(path)["notAfter"]
    except Exception:
        return None
    if ssl.cert_time_to_seconds(not_after) < now:
        return (f"{where}: {what} {path}: the certificate expired on {not_after}: peers that check it "
                "refuse the handshake")
    return None


def check_tls(p, text: str, cdir: Path, srv: dict, links: dict, now: float | None = None) -> tuple[list, list]:
    """Load every TLS file smpp.toml names. `srv` is [server] (paths as written); `links` maps an SMSC
    address to its table. -> (errors, warnings), each `path:line:1: message`."""
    from ..config import key_line
    now = time.time() if now is None else now
    errors, warnings = [], []

    def at(table, key):
        return f"{p}:{key_line(text, table, key)}:1"

    listen = srv.get("tls_listen")
    files = {k: resolve(cdir, srv[k]) for k in _FILES if isinstance(srv.get(k), str)}
    if listen is not None or files:
        if not listen:
            errors.append(f"{at('server', 'tls_cert' if 'tls_cert' in srv else 'tls_key')}: [server] tls_cert, "
                          "tls_key, tls_client_ca and tls_client_crl need tls_listen = \"HOST:PORT\" (the TLS "
                          "listener they are for)")
        for k in ("tls_cert", "tls_key"):
            if k not in files:
                errors.append(f"{at('server', 'tls_listen')}: [server] tls_listen needs {k} (a PEM file)")
        cert, key = files.get("tls_cert"), files.get("tls_key")
        cert_bad = cert and _certs_problem(cert)
        if cert_bad:
            errors.append(f"{at('server', 'tls_cert')}: [server] tls_cert {cert}: {cert_bad}")
        key_bad = key and _unreadable(key)
        if key_bad:
            errors.append(f"{at('server', 'tls_key')}: [server] tls_key {key}: {key_bad}")
        if cert and key and not cert_bad and not key_bad:
            try:
                server_context(cert, key)
            except ssl.SSLError as e:
                if e.reason == "KEY_VALUES_MISMATCH":
                    errors.append(f"{at('server', 'tls_key')}: [server] tls_key {key} does not match the certificate "
                                  f"{cert}")
                else:
                    errors.append(f"{at('server', 'tls_key')}: [server] tls_key {key}: not a usable PEM private key "
                                  f"({e.reason or e})")
            except ValueError as e:
                errors.append(f"{at('server', 'tls_key')}: [server] tls_key {key}: {e}")
            else:
                w = _expiry_warning(at("server", "tls_cert"), "[server] tls_cert", cert, now)
                if w:
                    warnings.append(w)
                try:
                    mode = os.stat(key).st_mode
                except OSError:             # (gone since it was loaded: a renewal replacing it)
                    mode = 0
                # a secret as the secrets files are, but a group's read is the distributions' layout for keys
                # (Debian's 0640 root:ssl-cert, a serve user in the group): only a key every user can read is said
                if stat.S_ISREG(mode) and mode & 0o007:
                    warnings.append(f"{at('server', 'tls_key')}: [server] tls_key {key} can be read by every local "
                                    f"user (mode {mode & 0o777:o}): chmod 600 it (640 with a group serve's user is in)")
        ca = files.get("tls_client_ca")
        bad = ca and _certs_problem(ca)
        if bad:
            errors.append(f"{at('server', 'tls_client_ca')}: [server] tls_client_ca {ca}: {bad}")
        crl = files.get("tls_client_crl")
        if crl and not ca:
            errors.append(f"{at('server', 'tls_client_crl')}: [server] tls_client_crl needs tls_client_ca (client "
                          "certificates are asked for, and checked against the CRL, only then)")
        elif crl:
            why, more, _ = check_crl(crl, "" if bad else ca, now)
            if why:
                errors.append(f"{at('server', 'tls_client_crl')}: [server] tls_client_crl {crl}: {why}")
            warnings += [f"{at('server', 'tls_client_crl')}: [server] tls_client_crl {crl}: {w}" for w in more]
    for i, (addr, e) in enumerate(links.items()):
        ca = e.get("tls_ca")
        if isinstance(ca, str):
            where = f"{at('upstream', 'smsc')}: [upstream] smsc {addr}"
            if not e.get("tls"):
                errors.append(f"{where}: tls_ca without tls = true")
            bad = _certs_problem(resolve(cdir, ca))
            if bad:
                errors.append(f"{where}: tls_ca {resolve(cdir, ca)}: {bad}")
        elif "tls_server_name" in e and not e.get("tls"):
            errors.append(f"{at('upstream', 'smsc')}: [upstream] smsc {addr}: tls_server_name without tls = true")
    return errors, warnings


class TlsEsmeSession(EsmeSession):
    """A connection on the TLS listener: admitted (connection caps) at its TCP accept, then its handshake; after
    it an ordinary EsmeSession (asyncio calls connection_made with the TLS transport)."""

    def __init__(self, proxy, listener: "TlsListener", sock, peer):
        super().__init__(proxy)
        self.listener, self.sock, self.peer = listener, sock, peer[:2]
        self.handshake = None               # its task, until the handshake ends

    def accepted(self) -> None:
        if not self.proxy.caps.admit(self):     # every connection under the cap is bound: refused before its handshake
            log.warning("TLS connection from %s refused: connection cap reached", self.peer[0])
            self.closed = True
            self.sock.close()
            self.sock = None
            return
        self.proxy.stats["tls_handshakes"] += 1
        self.handshake = self.proxy.loop.create_task(self._handshake())
        self.listener.handshakes.add(self.handshake)
        self.handshake.add_done_callback(self._handshake_done)

    async def _handshake(self) -> None:
        lst = self.listener
        # from here the socket is the transport's: asyncio closes it (fds are reused at once: never closed twice)
        sock, self.sock = self.sock, None
        try:
            await self.proxy.loop.connect_accepted_socket(lambda: self, sock, ssl=lst.context,
                                                          ssl_handshake_timeout=lst.handshake_timeout)
        except asyncio.CancelledError:      # evicted at a cap, not bound in time, or the listener closed
            pass
        except (OSError, ConnectionError, asyncio.TimeoutError) as e:     # ssl.SSLError is an OSError
            if not self.closed:
                self.proxy.stats["tls_handshake_failures"] += 1
                if not lst.cert_refusals.refused(self.peer[0], e, time.monotonic()):     # (revocation: its own line)
                    log.info("TLS handshake with %s failed: %s", self.peer[0], e)
        except Exception as e:              # none seen; whatever it is, the slot is given back below
            if not self.closed:
                self.proxy.stats["tls_handshake_failures"] += 1
                log.warning("TLS handshake with %s failed (%s: %s)", self.peer[0], type(e).__name__, e)
        else:
            return
        self.closed = True
        self.proxy.session_gone(self)       # its slot given back (a release twice is a no-op)

    def _handshake_done(self, task) -> None:
        self.listener.handshakes.discard(task)
        self.handshake = None
        if self.sock is not None:           # cancelled before it started (evicted on the accept it came with)
            self.sock.close()
            self.sock = None
            self.closed = True
            self.proxy.session_gone(self)

    def connection_made(self, transport):   # the handshake is done: no admission again (accepted() did it)
        self.transport = transport
        self.handshake = None               # an abort from now on closes the transport, not the task
        if self.closed:
            transport.abort()
            return
        self.proxy.sessions.add(self)

    def eof_received(self):
        # TLS has no half-close here (asyncio's SSL transport shuts down after a close_notify whatever we return):
        # what was read is handled and answered at once, answers still owed by an SMSC are lost with the connection
        super().eof_received()
        return False

    def abort(self) -> None:
        if self.handshake is not None:      # before its transport exists: the handshake is given up
            self.closed = True
            self.handshake.cancel()
            return
        super().abort()


class TlsListener:
    """The ESME side's TLS listener: accepts TCP itself, so each connection is admitted before its handshake
    (asyncio's create_server(ssl=...) shows a connection to the protocol only after its handshake). Quacks like
    the asyncio.Server the plain listener is (sockets, close, wait_closed)."""

    def __init__(self, proxy, sock, context: ssl.SSLContext, handshake_timeout: float, rate: HandshakeRate):
        self.proxy, self.sock, self.context, self.handshake_timeout = proxy, sock, context, handshake_timeout
        self.rate, self.refusals, self.cert_refusals = rate, Refusals(proxy.stats), CertRefusals(proxy.stats)
        self.sockets = [sock]
        self.handshakes: set = set()        # tasks of the handshakes under way (each holds a connection slot)
        self.crl_next_update = None         # of tls_client_crl, for /metrics (tls_crl.py)
        self.task = None                    # accepting: from begin()

    def begin(self) -> None:
        """Accept connections (the socket listens from start_listener: the kernel queues what comes before)."""
        sock = self.sock
        self.task = self.proxy.loop.create_task(self._accept())
        # the socket is closed once the task is done, not in close(): asyncio removes sock_accept's reader by fd
        # number at the turn after the cancel, and a socket opened in between (a drain goes on) would take that
        # number and lose its reader (its done callbacks run in order: the reader's removal first)
        self.task.add_done_callback(lambda _t: sock.close())

    async def _accept(self) -> None:
        loop = self.proxy.loop
        while True:
            try:
                conn, peer = await loop.sock_accept(self.sock)
            except OSError as e:            # out of fds (EMFILE): as asyncio's own server, wait and accept again
                log.error("TLS listener: accept failed: %s", e)
                await asyncio.sleep(1)
                continue
            now = time.monotonic()
            peer = peer_of(peer)            # an IPv4 peer of `[::]` as IPv4, for the rate, caps and accounts (listen.py)
            if self.rate.admit(peer[0], now):       # before the caps: a refused peer evicts nobody's connection
                TlsEsmeSession(self.proxy, self, conn, peer).accepted()
            else:
                self.refusals.refuse(conn, peer[0], now)
            # asyncio's sock_accept returns without yielding while connections wait in the backlog (its future
            # is done at once; uvloop's yields): without this a flood of connects held the loop from every bound
            # session. asyncio's own server takes at most `backlog` a turn; one a turn here
            await asyncio.sleep(0)

    def close(self) -> None:
        if self.task is None:               # never accepted (a start stopped before begin())
            self.sock.close()
        else:
            self.task.cancel()
        for t in list(self.handshakes):
            t.cancel()

    async def wait_closed(self) -> None:
        await asyncio.gather(*([self.task] if self.task else []), *self.handshakes, return_exceptions=True)


async def start_listener(proxy, listen: str, reuse_port: bool) -> TlsListener:
    """The ESME side's TLS listener ([server] tls_listen), beside or instead of the plain one."""
    from .smsc import parse_addr
    s = proxy.settings
    ctx = server_context(s.tls_cert, s.tls_key, s.tls_client_ca, s.tls_client_crl)
    host, port = parse_addr(listen)
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0][0]
    # reuse_port: `serve --workers N` runs N processes on one port (SO_REUSEPORT), as the plain listener;
    # `[::]` takes IPv4 peers too (engine/listen.py)
    dual = host == "::" and socket.has_dualstack_ipv6()
    sock = socket.create_server((host, port), family=family, backlog=BACKLOG, reuse_port=reuse_port, dualstack_ipv6=dual)
    sock.setblocking(False)
    rate = HandshakeRate(s.tls_handshakes_per_second, s.tls_handshakes_per_source, s.tls_handshakes_per_source_burst)
    lst = TlsListener(proxy, sock, ctx, s.tls_handshake_timeout, rate)
    lst.crl_next_update = crl_next_update(s)
    return lst


def crl_next_update(s) -> float | None:
    """The earliest nextUpdate of SmppSettings `s`'s tls_client_crl (epoch seconds; None: no CRL or none says)."""
    return earliest_next_update(s.tls_client_crl) if s.tls_client_crl and s.tls_client_ca else None


async def smsc_start_tls(loop, link, ctx: ssl.SSLContext, server_name: str, timeout: float = HANDSHAKE_TIMEOUT):
    """TLS on an SMSC link's connected transport; the link then writes through the TLS transport."""
    try:
        link.transport = await loop.start_tls(link.transport, link, ctx, server_hostname=server_name,
                                              ssl_handshake_timeout=timeout)
    except (OSError, asyncio.TimeoutError, ConnectionError):
        link.proxy.stats["smsc_tls_handshake_failures"] += 1
        raise



def link_contexts(settings) -> dict:
    """SMSC address -> (client context, server name) of the links with tls = true."""
    return {name: (client_context(o.get("tls_ca", "")), o.get("tls_server_name") or name.rpartition(":")[0].strip("[]"))
            for name, o in settings.smsc_links.items() if o.get("tls")}
