"""Responses through the SIP screen: relayed back along their Vias (RFC 3261 §16.7, §18.2.2, RFC 3581) by the
full path (`_response`) or as the fast path or the C pump edited them (`_relay`), our own answers (`_reply`), and
which final response to an INVITE answers its call and is counted, once, in `final_codes` (`_invite_final`).
Mixed into SipScreen; every send is forwarding.py's `_send`.

Responses over TCP (§18.2.2): a request that came in on a TCP connection carries the connection's
id in our Via (`;i=`, as Kamailio and OpenSIPS write theirs); its response goes back on that
connection while it is open (and still to the address the next Via names), else on a connection
(ours or new) to `received` and the sent-by port. rport is not used on TCP: it is for unreliable
transports (RFC 3581 §4), and a port the UAC's connection came from is dead once that connection
is. The screen stamps rport only on a Via that asked for it, so nothing else points a response at
such a port. A response bound for a TCP Via is relayed by the full path only (the fast paths leave
it, fastpath.py), where this rule lives once.

Responses are relayed by their Vias whoever sends them (§16.7), but only a final response from
where the call's INVITE went is believed (`_invite_final`): it alone answers the call (the
call-duration clock, re-INVITE privileges) or is counted in `final_codes`. "Where it went" is
the IP address, any port, any transport: RFC 3261 checks a response by its Via alone (§18.1.2),
and §18.2.2 sends it to our Via's address without saying from where -- RFC 3581 §4 asks for the
address and port the request came in on (our Via has rport), but a trunk may answer from
another socket, over a new TCP connection from an ephemeral port (§18.2.2), or its SBC from
another port; a carrier knows its next hop by IP (its ACLs are per address). A caller can then
only fake the callee's answer from the callee's own IP (spoofed UDP: ingress filtering's job).
A next hop that answers from other addresses (an SBC pair, a VIP whose backends answer) is named
in sip.toml's `answer_networks`: a 200 from those answers a call too.
"""
from __future__ import annotations

import ipaddress

from .codec import SipParseError, parse_datagram
from .grammar import parse_via
from .message import SipMessage
from .fastpath import response_to_tag
from .identity import caller_key
from .recent import dialog_digest, digest
from .settings import BRANCH_PREFIX, TRANSPORTS
from .sources import SourceFilter

FINALS_SEEN = 65536             # INVITE transactions remembered so a retransmitted final response counts once
# Finals after which the same call comes again on a new branch (a new transaction, same Call-ID, From and callee)
# and gets its verdict replayed instead of being judged and counted again (screening._screen_once): a challenge
# (RFC 3261 §22.2), a session interval too small (RFC 4028 §6), and any 3xx (redirected, §8.1.3.4) or 5xx (failed
# over to another server, RFC 3263 §4.3). Not after a 2xx, a 487 (cancelled), another 4xx or a 6xx: an INVITE
# then is a new call.
RETRY_FINALS = frozenset(("401", "407", "422"))


def _to_tag_of(data: bytes) -> str:
    """The To tag of a response the fast path relayed, read as the full parse reads it ('' if none, or if it does
    not parse: then any BYE of the call ends it, as before the tag was kept). A plain To is read by the fast path's
    patterns (~3 µs), any other by the full parse (~10 µs)."""
    tag = response_to_tag(data)
    if tag is not None:
        return tag
    try:
        msg = parse_datagram(data)
    except SipParseError:
        return ""
    return msg.tag_in(msg.get("to"))


def same_host(sent_to: str, source: str) -> bool:
    """Whether a packet from `source` (an address as the socket gives it) comes from `sent_to` (the
    address we sent to). Texts first; then as addresses (an IPv6 address written another way, an
    IPv4 one mapped into IPv6 by a dual-stack socket)."""
    if sent_to == source or (source.startswith("::ffff:") and source[7:] == sent_to):
        return True                 # (the second: an IPv4 next hop's answer on a `[::]` socket, without ipaddress)
    try:
        a, b = ipaddress.ip_address(sent_to), ipaddress.ip_address(source.partition("%")[0])
    except ValueError:
        return False
    return (getattr(a, "ipv4_mapped", None) or a) == (getattr(b, "ipv4_mapped", None) or b)



def tx_of(msg) -> str:
    """An INVITE's transaction as its finals name it (_final, forwarding's waits on it): "Call-ID CSeq-number"."""
    return tx_key(msg.get("call-id"), msg.get("cseq"))


def tx_key(call_id, cseq) -> str:
    """tx_of from the Call-ID and CSeq values (a request's first values: draining.py)."""
    cseq = cseq or ""
    return f"{(call_id or '').strip(' ')} {cseq.split(None, 1)[0] if cseq.strip() else ''}"

class Responses:
    """Mixed into SipScreen: what goes back toward the caller."""

    def _response(self, msg: SipMessage, src):
        """A response from `src` (host, port, ...): relayed by its next Via (§16.7)."""
        vias = msg.values("via")
        if not vias:
            return
        top = parse_via(vias[0])
        if not top.params.get("branch", "").startswith(BRANCH_PREFIX) or (top.host, top.port or 5060) not in self.me:
            self.stats["dropped"] += 1
            return                                      # §16.7 step 3 / §16.11: not ours
        msg.pop_first_value("Via")
        if len(vias) < 2:
            return                                      # it was meant for us
        cseq = msg.get("cseq") or ""
        tx = None
        if msg.status >= 200 and cseq.rstrip().upper().endswith("INVITE"):      # as the fast path reads it
            tx = tx_of(msg)
            self._invite_final(str(msg.status), tx, msg.get("call-id") or "", src, lambda: msg.tag_in(msg.get("to")))
        nxt = parse_via(vias[1])
        self._send_response(self._wire(msg, nxt.transport if nxt.transport in TRANSPORTS else "UDP"), nxt,
                            top.params.get("i"), tx)

    def _relay(self, r, src):
        if not r:
            self.stats["dropped"] += 1
            return
        data, (host, port, transport), invite_final = r
        if invite_final:
            self._fast_final(data[8:11].decode("ascii"), invite_final, src, data)
        self._send(data, (host, port), transport)

    def _fast_final(self, code: str, invite_final: bytes, src, data: bytes = b""):
        """A final response to an INVITE relayed by the fast path (or the C pump) from `src`:
        b"Call-ID CSeq-number"; `data`: the response as relayed (its To tag is read only if it answers the call)."""
        key = invite_final.decode("utf-8", "surrogateescape")
        self._invite_final(code, key, key.rpartition(" ")[0], src, data)     # (its bytes: no closure made a final)

    def _invite_final(self, code: str, key: str, call_id: str, src, to_tag=lambda: ""):
        """A final response with status `code` to the INVITE transaction `key` ("Call-ID CSeq-number") of
        call `call_id`, relayed from `src`. While the call waits for its answer, only one from the
        address its INVITE was sent to is believed (theory of operation above): a 200 answers it (the
        call starts, its entry leaves the tier forgotten first), and it is counted once. Any other
        is still relayed, but neither counted nor an answer. `to_tag()`: the response's To tag, read
        only for the 200 that answers the call: it names the dialog whose BYE ends the call
        (server._call_ended; a forked INVITE's other 2xx are other dialogs, RFC 3261 §13.2.2.4). Or the response's
        bytes as relayed (_fast_final): its To tag read from them (_to_tag_of)."""
        dkey = digest(key)                  # (ringing's key and finals_seen's, hashed once)
        if self.ringing:                    # not in flight any more, from wherever it comes (draining.py)
            self.ringing.pop(dkey, None)
        if self.tcp_out_invites:            # its wait on a TCP connection ends (where it came from: bounds.py)
            self.tcp_out_final(key, src)
        k = dialog_digest(self.dialog_key, call_id)
        ent = self.answered.get(k) if self.answered else None
        if ent is not None and ent[1] is None:          # judged, let through, not answered yet
            if ent[3] is None or not (same_host(ent[3], src[0]) or self._answers_from(src[0])):
                self.stats["final_wrong_origin"] += 1   # a forged answer, or before its INVITE left
                return
            if code == "200":
                # answered: the call starts, and its entry leaves the tier forgotten first (promoted) where it
                # waited since its INVITE (screening._screen), so no INVITE pushes it out of the bound
                tag = _to_tag_of(to_tag) if type(to_tag) is bytes else to_tag()
                # (ent[4]: the caller's side, identity.caller_side; last: the digest of the 200's To tag)
                self.answered.promote(k, (ent[0], self.call_ticks(), ent[2], ent[3], ent[4] if len(ent) > 4 else None,
                                          dialog_digest(self.dialog_key, tag) if tag else None))
            elif code in RETRY_FINALS or code[0] in "35":
                # the call may come again: its verdict is replayed once, to the caller it was judged as (ent[0])
                self.retries.put(digest(call_id), caller_key(ent[0]))
            # A 3xx-6xx (busy, no answer, cancelled 487, refused downstream) leaves the call where it is, in the
            # tier forgotten first (oldest first): calls that fail, like calls never answered at all, never push
            # the established ones out of the bound. Not removed: after a 401/407 or a 3xx the same call comes
            # again (§8.1.3.4, §22.2) with its verdict replayed (its INVITE, forwarded again, makes it the newest
            # of that tier), and a forking proxy may still send a 2xx after a final (§16.7 step 10)
        self._final(code, key, dkey)

    def _answers_from(self, host: str) -> bool:
        """Whether `host` is in sip.toml's answer_networks (checked as accept_networks is: sources.SourceFilter,
        built again for another list)."""
        nets = self.s.answer_networks
        if not nets:
            return False
        f = self._answer_filter
        if f is None or f.networks is not nets:
            f = self._answer_filter = SourceFilter(nets)
        return f.accepts(host)

    def _final(self, code: str, key: str, dkey=None):
        """Count a final response to the INVITE transaction `key` ("Call-ID CSeq-number") once (`dkey`: digest(key),
        when the caller has it). (The waits on TCP connections end with a relayed final from where each fork went,
        _invite_final, or with the failed send of that fork, _forward: never with our own answer, which would end
        every fork's.)"""
        if self.finals_seen.add(digest(key) if dkey is None else dkey):     # else a retransmission
            self.final_codes[code] = self.final_codes.get(code, 0) + 1

    def _final_of(self, msg, status: int):
        """_final() for our own answer with `status` to the INVITE `msg` (relayed ones: _invite_final); its
        transaction ("Call-ID CSeq-number") if it is a final, else None."""
        cseq = msg.get("cseq") or ""
        if status >= 200 and cseq.rstrip().upper().endswith("INVITE"):      # as the fast path reads it
            tx = tx_of(msg)
            self._final(str(status), tx)
            return tx
        return None

    def _send_response(self, data, nxt, conn_id=None, tx=None):
        """Send a response by its next Via `nxt`; `conn_id`: our Via's `;i=`, the TCP connection its
        request came in on (theory of operation above); `tx`: the INVITE transaction it is a final of."""
        host = nxt.params.get("received") or nxt.host
        if nxt.transport == "TCP":
            # §18.2.2: the request's connection while it is open, else one to `received` and the sent-by port
            conn = self._connection(conn_id, host)
            if conn is not None:
                conn.send(data)                         # False: the peer leaves WRITE_MAX unread (counted)
                if tx is not None:
                    conn.invite_answered(digest(tx))    # (tcp.py _ringing: it may idle out again)
                return
            return self._send(data, (host, nxt.port or 5060), "TCP")
        rport = nxt.params.get("rport", "")
        port = int(rport) if rport else (nxt.port or 5060)          # parse_via checked it is a port
        self._send(data, (host, port), nxt.transport if nxt.transport in TRANSPORTS else "UDP")

    def _connection(self, conn_id, host):
        """The open TCP connection named `conn_id` (hex, our Via's `;i=`), if it is from `host`: an
        id a peer made up cannot put a response on someone else's connection."""
        if not conn_id or len(conn_id) > 16:
            return None
        try:
            conn = self.tcp_ids.get(int(conn_id, 16))
        except ValueError:
            return None
        if conn is None or not conn.is_open() or not same_host(host, conn.peer[0]):
            return None
        return conn

    def _reply(self, req, resp: SipMessage, transport, src, conn):
        """Send a response we generated: §18.2.2 / RFC 3581, i.e. back where the request came from."""
        data = resp.to_bytes()
        tx = self._final_of(req, resp.status) if req.method == "INVITE" else None
        if transport == "TCP" and conn is not None and conn.is_open():
            conn.send(data)                             # False: the peer leaves WRITE_MAX unread (counted)
            if tx is not None:
                conn.invite_answered(digest(tx))
            return
        dest = src
        if req.get("via") is not None:
            try:
                # §18.2.2: the source address (what `received` says) and the sent-by port, as
                # _send_response does; with rport (RFC 3581 §4) the source port, over UDP only
                v = parse_via(req.values("via")[0])
                if "rport" not in v.params or transport == "TCP":
                    dest = (src[0], v.port or 5060)
            except SipParseError:
                pass
        # over TCP: the request's connection has closed, so a new one (or ours) to the sent-by port
        self._send(data, dest, "TCP" if transport == "TCP" else "UDP")
