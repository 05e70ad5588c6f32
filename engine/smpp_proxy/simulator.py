"""An SMSC simulator for tests, the demo and benchmarks (loopback only).

Accepts binds, answers submit_sm / data_sm / submit_multi with its own message_ids, records
every PDU it receives byte for byte (`received`), sends a delivery receipt for each accepted
message that asked for one, and can inject MO messages (`send_mo`, `send_deliver`: on a receiver or transceiver
bind only, of a system_id when given). `down` makes it refuse
binds; `stall` makes it stop answering submits (to exercise windows and timeouts);
`answer_delay` answers submits, query_sm, cancel_sm and replace_sm that many seconds late;
`wrong_answers` answers submits with a cancel_sm_resp (a broken SMSC); `id_format` writes its
message_ids (`%08X` by default, `%d` for a decimal counter) and `receipt_ids_in_other_base` writes a
receipt's id in the other base (an SMSC whose receipts say 16 for the 00000010 of its resp); `hang()` makes the sessions bound so
far answer nothing at all, not even enquire_link (a hung SMSC; new sessions work); `answer_status`
answers submits with that command_status and no message_id, `nack_status` with a generic_nack of it (an SMSC
that lost the session's bind answers ESME_RINVBNDSTS), `payload_status` a submit_sm carrying message_payload
with it (an SMSC that takes no message_payload in a submit_sm: ESME_ROPTPARNOTALLWD); the submits a `stall` leaves
unanswered are `held`, for `unbind_sessions()` (an SMSC's graceful unbind) and `answer_held()` (the answers it
still owes, sent after it);
`receipts_elsewhere` sends each receipt on another bound receiver/transceiver session than the one
its submit came on, round-robin (an SMSC that spreads receipts over every bind of a system_id:
two proxies sharing this simulator get each other's receipts).

Receipts still due when a session ends are kept, as an SMSC keeps them: one that comes due after its session was
unbound (by either side) or closed, and one sent but not answered with deliver_sm_resp when its session closed,
when no other receiver/transceiver bind of the same system_id is there to take it; and one for a submit made on a
transmitter bind when no receiver/transceiver bind of its system_id is there (SMPP 3.4 §2.3: a transmitter session
gets no deliver_sm). They are sent, oldest first, on the next receiver or transceiver bind of that system_id. At most
MAX_KEPT_RECEIPTS (1,000) are kept per system_id; past it the oldest is dropped, counted in `receipts_dropped`.
`kept_receipts()` says how many wait, per system_id.

`accounts` ({system_id: password}; None, the default: every bind is taken) refuses a bind of another system_id with
ESME_RINVSYSID and one with another password with ESME_RINVPASWD; `record = False` keeps no `received` (a long run by
hand). Run by hand, for an ESME integrator: `python -m engine.smpp_proxy.simulator --help` (simulator_cli.py).
"""
from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from functools import partial

from .codec import constants as C
from .codec import SmppConnection, Tlv
from .stream import SmppStream
from .codec import pdu as P

MAX_KEPT_RECEIPTS = 1000    # receipts kept per system_id for its next bind (the oldest dropped past it)

_BOUND_ONLY = frozenset((C.SUBMIT_SM, C.DATA_SM, C.SUBMIT_MULTI, C.QUERY_SM, C.CANCEL_SM, C.REPLACE_SM))


class _SimSession(SmppStream):
    def __init__(self, sim):
        self.sim, self.conn, self.transport, self.bound = sim, SmppConnection(1 << 20), None, False
        self.kind = None
        self.hung = False
        self.system_id = None           # its bind's
        self.owed: dict = {}            # sequence_number -> receipt sent on it, not yet answered

    def connection_made(self, t):
        self.transport = t
        self.sim.sessions.append(self)

    def connection_lost(self, exc):
        if self in self.sim.sessions:
            self.sim.sessions.remove(self)
        self.bound = False
        for pdu in self.owed.values():      # sent, never answered: sent again (another bind of its system_id)
            self.sim._again(self.system_id, pdu)
        self.owed.clear()

    def pdu_received(self, ev):
        if self.hung:
            self.sim.ignored.append(ev)
            return
        self.sim.on_pdu(self, ev)

    send = SmppStream.send_pdu


class SmscSimulator:
    def __init__(self, receipt_delay: float | None = 0.05, system_id="SIMSMSC"):
        self.received: list = []            # (monotonic time, pdu) for every request received
        self.sessions: list = []
        self.receipt_delay = receipt_delay
        self.system_id = system_id
        self.down = False
        self.stall = False
        self.refuse_transceiver = False     # behave like an SMSC that only knows TX and RX binds
        self.answer_status = 0
        self.nack_status = 0
        self.payload_status = 0
        self.held: list = []                # (session, submit) a stall left unanswered
        self.unbind_resps = 0
        self._ids = itertools.count(1)
        self.server = None
        self.mo_responses: list = []
        self.ignored: list = []             # PDUs a hung session received
        self.answer_delay = 0.0
        self.wrong_answers = False
        self.id_format = "%08X"
        self.receipt_ids_in_other_base = False
        self.receipts_elsewhere = False
        self._rr = itertools.count()
        self._kept: dict = {}               # system_id -> deque of receipts due, for its next bind
        self.receipts_dropped = 0           # kept receipts dropped past MAX_KEPT_RECEIPTS
        self._loop = None                   # the loop it serves on (start)
        self.accounts: dict | None = None   # system_id -> password a bind must give (None: any bind is taken)
        self.record = True                  # keep every request in `received`

    def kept_receipts(self) -> dict:
        """How many receipts wait for the next bind of each system_id."""
        return {sid: len(q) for sid, q in self._kept.items() if q}

    def _keep(self, system_id, pdu) -> None:
        q = self._kept.setdefault(system_id, deque(maxlen=MAX_KEPT_RECEIPTS))
        if len(q) == q.maxlen:
            self.receipts_dropped += 1
        q.append(pdu)

    def _again(self, system_id, pdu) -> None:
        """A receipt its session never answered: on another bound receiver/transceiver of its system_id, else kept."""
        rx = self._receiving(system_id)
        if rx:
            self._send_receipt(rx[0], pdu)
        else:
            self._keep(system_id, pdu)

    def _send_receipt(self, s, pdu) -> None:
        seq = s.conn.next_sequence()
        s.owed[seq] = pdu
        s.send(P.replace(pdu, sequence_number=seq))

    def hang(self) -> None:
        for s in self.sessions:
            s.hung = True

    def unbind_sessions(self) -> None:
        """Send unbind on every bound session (kept open: the proxy closes it once it has what it is owed)."""
        for s in self.sessions:
            if s.bound:
                s.bound = False
                s.send(P.Unbind(sequence_number=s.conn.next_sequence()))

    def answer_held(self) -> None:
        """Answer the submits a stall held, accepted, each with its message_id and the receipts it asked for, as an
        answer given at once does (from the loop's thread or another: a test's, the harness's loop elsewhere)."""
        held, self.held = self.held, []
        for s, ev in held:
            mid = self.id_format % next(self._ids)
            s.send(P.response_class(ev.command_id)(sequence_number=ev.sequence_number, message_id=mid))
            self._receipts_due(s, ev, mid)

    def _receiving(self, system_id=None) -> list:
        """The bound sessions a deliver_sm may be sent on (SMPP 3.4 §2.3: a receiver or transceiver, never a
        transmitter), of `system_id` when given."""
        return [x for x in self.sessions if x.bound and x.kind != "transmitter"
                and (system_id is None or x.system_id == system_id)]

    def send_deliver(self, pdu, system_id=None) -> bool:
        """Send a deliver_sm (any content, e.g. a malformed one) on the first bound receiver/transceiver session (of
        `system_id` when given) that is not hung. False, nothing sent, when there is none (a transmitter bind
        alone: it gets no deliver_sm)."""
        for s in self._receiving(system_id):
            if not s.hung:
                s.send(P.replace(pdu, sequence_number=s.conn.next_sequence()))
                return True
        return False

    async def start(self, host="127.0.0.1", port=0):
        self._loop = asyncio.get_running_loop()
        self.server = await self._loop.create_server(lambda: _SimSession(self), host, port)
        return self

    @property
    def port(self) -> int:
        return self.server.sockets[0].getsockname()[1]

    async def stop(self):
        for s in list(self.sessions):
            s.transport.close()
        if self.server:
            self.server.close()
            await self.server.wait_closed()

    def submits(self):
        return [p for _, p in self.received if p.command_id in (C.SUBMIT_SM, C.DATA_SM, C.SUBMIT_MULTI)]

    def on_pdu(self, s: _SimSession, ev):
        cid = ev.command_id
        if P.is_response(cid):
            if cid in (C.DELIVER_SM_RESP, C.DATA_SM_RESP):      # (the answer to a deliver_sm / data_sm we sent)
                if self.record:
                    self.mo_responses.append(ev)
                s.owed.pop(ev.sequence_number, None)
            elif cid == C.UNBIND_RESP:
                self.unbind_resps += 1
            return
        if self.record:
            self.received.append((time.monotonic(), ev))
        if cid in (C.BIND_TRANSCEIVER, C.BIND_TRANSMITTER, C.BIND_RECEIVER):
            st = C.ESME_RBINDFAIL if self.down else self._credentials_refused(ev)
            if cid == C.BIND_TRANSCEIVER and self.refuse_transceiver:
                s.send(P.GenericNack(sequence_number=ev.sequence_number, command_status=C.ESME_RINVCMDID))
                return
            s.bound = not st
            s.kind = {C.BIND_TRANSCEIVER: "transceiver", C.BIND_TRANSMITTER: "transmitter", C.BIND_RECEIVER: "receiver"}[cid]
            s.send(P.response_class(cid)(sequence_number=ev.sequence_number, command_status=st, system_id=self.system_id))
            if st:
                s.transport.close()
                return
            s.system_id = ev.system_id
            kept = self._kept.pop(s.system_id, None) if s.kind != "transmitter" else None
            for pdu in kept or ():
                self._send_receipt(s, pdu)
        elif cid == C.ENQUIRE_LINK:
            s.send(P.EnquireLinkResp(sequence_number=ev.sequence_number))
        elif cid == C.UNBIND:
            s.bound = False
            s.send(P.UnbindResp(sequence_number=ev.sequence_number))
            s.transport.close()
        elif cid in _BOUND_ONLY and (not s.bound or s.kind == "receiver"):
            # SMPP 3.4 §2.3 table 2-1: an ESME sends these bound as a transmitter or transceiver only; otherwise
            # ESME_RINVBNDSTS, as a real SMSC answers (an ESME that submits before its bind_resp is caught here)
            s.send(P.response_class(cid)(sequence_number=ev.sequence_number, command_status=C.ESME_RINVBNDSTS))
        elif cid in (C.SUBMIT_SM, C.DATA_SM, C.SUBMIT_MULTI):
            if self.stall:
                self.held.append((s, ev))
                return
            if self.nack_status:
                return s.send(P.GenericNack(sequence_number=ev.sequence_number, command_status=self.nack_status))
            if self.payload_status and cid == C.SUBMIT_SM and any(t.tag == C.TAG_MESSAGE_PAYLOAD for t in ev.tlvs):
                return s.send(P.SubmitSmResp(sequence_number=ev.sequence_number, command_status=self.payload_status))
            if self.answer_status:
                return s.send(P.response_class(cid)(sequence_number=ev.sequence_number,
                                                    command_status=self.answer_status))
            mid = self.id_format % next(self._ids)
            resp = P.response_class(cid)(sequence_number=ev.sequence_number, message_id=mid)
            self._answer(s, P.CancelSmResp(sequence_number=ev.sequence_number) if self.wrong_answers else resp)
            self._receipts_due(s, ev, mid)
        elif cid in (C.QUERY_SM,):
            self._answer(s, P.QuerySmResp(sequence_number=ev.sequence_number, message_id=ev.message_id, message_state=2))
        elif cid == C.CANCEL_SM:
            self._answer(s, P.CancelSmResp(sequence_number=ev.sequence_number))
        elif cid == C.REPLACE_SM:
            self._answer(s, P.ReplaceSmResp(sequence_number=ev.sequence_number))
        else:
            s.send(P.GenericNack(sequence_number=ev.sequence_number, command_status=C.ESME_RINVCMDID))

    def _credentials_refused(self, bind) -> int:
        """The bind_resp status for `bind`'s system_id and password (SMPP 3.4 §5.1.3): 0 when `accounts` takes them."""
        if self.accounts is None:
            return 0
        password = self.accounts.get(bind.system_id)
        if password is None:
            return C.ESME_RINVSYSID
        return 0 if password == bind.password else C.ESME_RINVPASWD

    def _answer(self, s, resp) -> None:
        if self.answer_delay:
            asyncio.get_running_loop().call_later(self.answer_delay, s.send, resp)
        else:
            s.send(resp)

    def _receipts_due(self, s, sm, mid) -> None:
        """Schedule the receipts `sm`, answered with `mid`, asked for (registered_delivery), receipt_delay from now;
        a submit_multi's: one per SME destination, each from that recipient (its distribution lists: none)."""
        if self.receipt_delay is None or not getattr(sm, "registered_delivery", 0) & 0x03 or sm.command_id == C.DATA_SM:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        loop = self._loop or running        # (a server made without start(), on the caller's loop: that one)
        # (call_later from another thread: the loop, asleep in select, would not see it in time)
        later = loop.call_later if running is loop else partial(loop.call_soon_threadsafe, loop.call_later)
        for to in _recipients(sm):
            later(self.receipt_delay, self._receipt, s, sm, mid, to)

    def _receipt(self, s, sm, mid, to=None):
        """A delivery receipt for `sm` (its `mid`) from its recipient `to` (ton, npi, address; default: its
        destination)."""
        to = to or _recipients(sm)[0]
        rx = self._receiving()
        other = [x for x in rx if x is not s] if self.receipts_elsewhere else None
        same = [x for x in rx if x.system_id == s.system_id]
        if not s.bound:                     # unbound or closed since: another bind of its system_id, else kept
            s = same[next(self._rr) % len(same)] if same else s
        elif other:
            s = other[next(self._rr) % len(other)]
        elif s.kind == "transmitter":
            # SMPP 3.4 §2.3: a transmitter session gets no deliver_sm: a receiver bind of its system_id takes it,
            # or it is kept for the next one (as over an unbind)
            s = same[0] if same else s
        if self.receipt_ids_in_other_base:
            mid = str(int(mid, 16)) if self.id_format.endswith("X") else format(int(mid), "X")
        now = time.strftime("%y%m%d%H%M")
        body = f"id:{mid} sub:001 dlvrd:001 submit date:{now} done date:{now} stat:DELIVRD err:000 text:".encode()
        pdu = P.DeliverSm(sequence_number=0, source_addr_ton=to[0], source_addr_npi=to[1], source_addr=to[2],
                          dest_addr_ton=sm.source_addr_ton, dest_addr_npi=sm.source_addr_npi,
                          destination_addr=sm.source_addr, esm_class=C.ESM_TYPE_DELIVERY_RECEIPT, short_message=body,
                          tlvs=(Tlv(C.TAG_RECEIPTED_MESSAGE_ID, mid.encode() + b"\x00"), Tlv(C.TAG_MESSAGE_STATE, b"\x02")))
        if s.bound and s.kind != "transmitter":
            self._send_receipt(s, pdu)
        else:
            self._keep(s.system_id, pdu)

    def send_mo(self, source: str, dest: str, text: str, system_id=None) -> bool:
        """Send an MO `text` from `source` to `dest` as a deliver_sm on the first bound receiver/transceiver session
        (of `system_id` when given). False, nothing sent, when there is none: a transmitter bind gets no deliver_sm
        (SMPP 3.4 §2.3), and an MO, unlike a receipt, is not kept for a later bind (the caller, told, sends again)."""
        from .codec import encode_text
        dc, body = encode_text(text)
        rx = self._receiving(system_id)
        if not rx:
            return False
        s = rx[0]
        s.send(P.DeliverSm(sequence_number=s.conn.next_sequence(), source_addr_ton=1, source_addr_npi=1,
                           source_addr=source, destination_addr=dest, data_coding=dc, short_message=body))
        return True


def _recipients(sm) -> list:
    """(ton, npi, address) of each recipient a receipt of `sm` comes from: a submit_multi's SME destinations."""
    if sm.command_id == C.SUBMIT_MULTI:
        return [(d[1], d[2], d[3]) for d in sm.dest_addresses if d[0] == 1]
    return [(sm.dest_addr_ton, sm.dest_addr_npi, sm.destination_addr)]


if __name__ == "__main__":         # python -m engine.smpp_proxy.simulator: the command line is simulator_cli's
    import sys

    from engine.smpp_proxy.simulator_cli import main
    sys.exit(main())
