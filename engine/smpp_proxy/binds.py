"""Binds from ESMEs: credentials checked off the event loop, paced per source.

A bind is answered in one of three ways, and the first two look the same to the peer:
unknown system_id, wrong password, or a source network the account does not allow are all
ESME_RINVPASWD after a full PBKDF2 (a dummy hash for unknown accounts), so neither the
status nor the time tells an attacker which system_ids exist or that a password was right.
A bind type the account may not use, too many binds, or a client certificate that is not the
account's (tls_identity.py) is ESME_RBINDFAIL, which only a holder of the credentials can see.
See admission.py for the pacing per source and system_id.
"""
from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from .accounts import DUMMY_HASH, verify_password
from .codec import Tlv
from .codec import constants as C
from .codec import pdu as P
from .tls_identity import refusal as tls_refusal

if TYPE_CHECKING:
    from .esme import EsmeSession

log = logging.getLogger("telfilter.smpp")
BIND_NAMES = {C.BIND_TRANSMITTER: "transmitter", C.BIND_RECEIVER: "receiver", C.BIND_TRANSCEIVER: "transceiver"}
_executor: ThreadPoolExecutor | None = None


def _hash_pool() -> ThreadPoolExecutor:
    # hashlib's PBKDF2 releases the GIL: two threads keep binds from blocking the loop while
    # bounding the CPU an attacker can make us spend on them
    global _executor
    if _executor is None:
        _executor = ThreadPoolExecutor(2, thread_name_prefix="smpp-bind")
    return _executor


class _BindJob:
    """One bind waiting for its turn in the per-source throttle."""

    __slots__ = ("proxy", "sess", "pdu")

    def __init__(self, proxy, sess, pdu):
        self.proxy, self.sess, self.pdu = proxy, sess, pdu

    def alive(self) -> bool:
        return not self.sess.closed

    def __call__(self, done) -> None:
        self.proxy._check_bind(self.sess, self.pdu, done)


class BindHandling:
    """Mixin of `SmppProxy`: bind_transmitter / bind_receiver / bind_transceiver."""

    def _bind(self, sess: EsmeSession, pdu) -> None:
        if sess.bind_pending:
            # one bind at a time per connection; a second one while the first waits is refused
            return sess.send_pdu(P.response_class(pdu.command_id)(sequence_number=pdu.sequence_number,
                                                                 command_status=C.ESME_RALYBND))
        sess.bind_pending = True
        self.bind_throttle.submit(sess.peer[0], pdu.system_id, _BindJob(self, sess, pdu))

    def _check_bind(self, sess: EsmeSession, pdu, done) -> None:
        acct = self.accounts.get(pdu.system_id)
        if acct is not None and acct.known_password(pdu.password):
            return self._bind_checked(sess, pdu, acct, True, done)
        stored = acct.password_hash if acct is not None else DUMMY_HASH
        fut = self.loop.run_in_executor(_hash_pool(), verify_password, pdu.password, stored)

        def checked(f):
            ok = acct is not None and not f.cancelled() and f.exception() is None and f.result()
            if ok:
                acct.remember(pdu.password)
            self._bind_checked(sess, pdu, acct, ok, done)
        fut.add_done_callback(checked)

    def _bind_checked(self, sess: EsmeSession, pdu, acct, password_ok: bool, done) -> None:
        try:
            self._bind_answer(sess, pdu, acct, password_ok, done)
        finally:
            if sess.eof:                    # it half-closed while its bind was checked: answered, then closed
                self.owed_nothing(sess)

    def _bind_answer(self, sess: EsmeSession, pdu, acct, password_ok: bool, done) -> None:
        sess.bind_pending = False
        kind = BIND_NAMES[pdu.command_id]
        resp_cls = P.response_class(pdu.command_id)
        if acct is not None and self.accounts.get(acct.system_id) is not acct:
            # the accounts were reloaded while the password was checked (live_accounts.py): bind
            # with the account as it is now, and only if the password checked is still its one
            cur = self.accounts.get(acct.system_id)
            password_ok = password_ok and cur is not None and cur.password_hash == acct.password_hash
            acct = cur
        ok = password_ok and acct.network_allowed(sess.peer[0])
        done(ok)
        if sess.closed:
            return
        if not ok:
            why = "unknown system_id" if acct is None else "wrong password" if not password_ok else "network not allowed"
            log.info("bind %s as %r from %s refused: %s", kind, pdu.system_id, sess.peer[0], why)
            self.stats["binds_refused"] += 1
            return sess.send_pdu(resp_cls(sequence_number=pdu.sequence_number, command_status=C.ESME_RINVPASWD))
        why = tls_refusal(sess, acct)        # an account tied to a client certificate (tls_identity.py)
        if why:
            log.warning("bind %s as %r from %s refused: %s", kind, pdu.system_id, sess.peer[0], why)
            self.stats["binds_refused_tls_client"] += 1
            return sess.send_pdu(resp_cls(sequence_number=pdu.sequence_number, command_status=C.ESME_RBINDFAIL))
        # (each refusal says its own reason: "bind type or max_binds" left the carrier unable to tell the ESME which)
        if kind not in acct.bind_types:
            why = f"bind type {kind} not allowed for this account ({', '.join(acct.bind_types)})"
            self.stats["binds_refused_bind_type"] += 1
        elif len(self.binds[acct.system_id]) >= acct.max_binds:
            why = f"max_binds {acct.max_binds} reached"
            self.stats["binds_refused_max_binds"] += 1
        if why:
            log.info("bind %s as %r from %s refused: %s", kind, pdu.system_id, sess.peer[0], why)
            return sess.send_pdu(resp_cls(sequence_number=pdu.sequence_number, command_status=C.ESME_RBINDFAIL))
        if self.bind_gate is not None:          # max_binds across processes (engine/state/pool.py)
            sess.bind_pending = True            # a second bind on this connection waits its turn
            def gated(ok):
                sess.bind_pending = False
                if sess.closed:
                    return
                if not ok:
                    log.info("bind %s as %r from %s refused: max_binds across the pool", kind, pdu.system_id, sess.peer[0])
                    self.stats["binds_refused_max_binds"] += 1
                    return sess.send_pdu(resp_cls(sequence_number=pdu.sequence_number, command_status=C.ESME_RBINDFAIL))
                self._bound(sess, pdu, acct, kind, resp_cls)
                if sess.eof:
                    self.owed_nothing(sess)
            return self.bind_gate(acct, gated)
        self._bound(sess, pdu, acct, kind, resp_cls)

    def _bound(self, sess, pdu, acct, kind, resp_cls) -> None:
        sess.account = acct
        sess.state.bound(pdu.command_id)
        self.stats["binds_accepted"] += 1   # (an ESME that binds and closes in a loop shows here; not "binds":
                                            # ctl stats names the binds per account so)
        self.caps.bound(sess)
        self.binds[acct.system_id].append(sess)
        sess.interface_version = version = pdu.interface_version
        if version < 0x34:
            # SMPP 3.4 §5.2.4: 0x00-0x33 is SMPP 3.3 or earlier, which has no TLVs (codec/v33.py); any bind type
            # (3.3 has no transceiver, but ESMEs that say 3.3 and bind one exist)
            sess.speak_v33()
        # §5.3.2.25: sc_interface_version tells a 3.4 peer our version; a 3.3 peer is sent no TLV, this one neither
        sess.send_pdu(resp_cls(sequence_number=pdu.sequence_number, system_id="telfilter",
                               tlvs=(Tlv(C.TAG_SC_INTERFACE_VERSION, b"\x34"),) if version >= 0x34 else ()))
        log.info("ESME %s bound as %s from %s%s", acct.system_id, kind, sess.peer[0],
                 "" if version >= 0x34 else f" (interface_version 0x{version:02x}: SMPP 3.3, no TLVs)")
        if sess.eof:
            sess.state.state = "UNBOUND"        # it cannot answer a receipt: none is offered to it
        if sess.state.can_receive:
            self.held_retry_at.pop(acct.system_id, None)      # a new receiver: no back-off to wait out
            self._flush_held(acct.system_id)
