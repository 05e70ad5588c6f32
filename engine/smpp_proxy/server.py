"""The inline SMPP 3.4 proxy: ESMEs bind to us as if we were the SMSC; we bind upstream.

Theory of operation (after uvicorn/aiosmtpd): protocol classes only move bytes into the
codec (`SmppConnection`), events into `SmppProxy`, and answers back out. A bind has an
`EsmeSession` (per-connection state: bind state, account, its window of deliver_sm); a
submitted message is judged once (a concatenated one once for all its parts) and its
answer follows it upstream and back. The verdict is turned into bytes here, at the edge:

    allow -> the original PDU bytes, only sequence_number changed, to an SMSC link
    tag   -> the same bytes with a vendor TLV appended and/or a text prefix spliced in
    drop  -> submit_sm_resp with the rule's command_status (default ESME_RSUBMITFAIL), or,
             for symbols configured as silent, success with a local message_id and an
             optional REJECTD delivery receipt

Every message is judged and logged before it is forwarded: binary content on everything but
its text (plus the URLs readable in it); what cannot be judged as the SMSC would deliver it
(both short_message and message_payload, a distribution list by default, a broken UDH) is
refused with an error status and logged. A failing verdict log never changes an answer.

Nothing is acknowledged before it is safe: an ESME gets the SMSC's own submit_sm_resp
(with the SMSC's message_id); when no SMSC link is bound, its window is full or it is
stalled the ESME gets ESME_RTHROTTLED (retryable); an SMSC that does not answer within the
link's response_timeout yields ESME_RSYSERR (outcome unknown; a late answer is logged and
its message_id kept for the receipt). A link silent for enquire_link_interval +
response_timeout is closed and bound again. Receipts are routed by message_id to a
receiver/transceiver bind of the account that sent the MT; with no free receiver (none bound,
windows full, or the ESME refused it) it is held (in memory, bounded by max_held_receipts) and
offered again as windows free, binds come, or after a back-off; one that arrives before its
submit_sm_resp waits for it. The SMSC's deliver_sm is acknowledged only after the ESME
acknowledged it or it was held; at the hold cap it is answered ESME_RX_T_APPN (redelivered later).
An MO message is judged once, a concatenated one once for all its parts, which wait unanswered
until it is (mo.py); then it goes to an ESME by destination prefix, or to the short code.

Files: esme.py (ESME sessions), inbox.py (the queue PDUs from ESMEs wait in, handled in slices,
and the flush points of every socket write), admission.py (connection caps, bind pacing), binds.py
(credentials), smsc.py (SMSC links and the upstream pool; submit_sm_resp read straight from
its bytes), submit.py (the submit path: judge, drop, forward, tag), submit_concat.py (its concatenated
messages), routing.py (receipts from the
SMSC), mo.py (MO from the SMSC), concat.py (concatenated messages put together, both directions),
msgids.py (message_id -> account, bounded), dispatch.py (the dispatch of ESME PDUs); the verdict log it writes is
engine/verdictlog.py (the SIP screen writes it too).
This module holds the proxy's state, lifecycle and housekeeping.
"""
from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import OrderedDict, defaultdict, deque

from ..groupcommit import GroupCommit
from ..listen import addr_text, listen_args
from ..stamps import utc_now
from ..verdictlog import VerdictLog
from .accounts import SmppSettings, TokenBucket
from .codec import pdu as P
from .admission import BindThrottle, ConnectionCaps
from .binds import BindHandling
from .concat import Handsets, Reassembly
from .dispatch import EsmeDispatch
from .dnc_cancel import DncCancel
from .dnc_look import DncLook
from .dnc_retry import Retries
from .esme import WRITE_STALL, EsmeSession
from .held import HeldReceipts
from .multi import MultiSubmit
from .inbox import Inbox, WriteBatch
from .local_ids import LocalIds
from .mo import MoPath
from .msgids import MessageIds, RecentlyAnswered
from .routing import RECEIPT_AFTER_RESP, DeliveryRouting
from .scheduled import ScheduledAds
from .smsc import RESERVE_ACTIVE, SmscLink, UpstreamMixin, parse_addr
from .relay import RelayPath
from .stopping import Stopping
from .submit import SubmitPath, local_id_prefix
from .submit_concat import ConcatSubmit
from .tls import link_contexts, start_listener

__all__ = ["SmppProxy", "EsmeSession", "SmscLink"]
log = logging.getLogger("telfilter.smpp")


class SmppProxy(EsmeDispatch, BindHandling, SubmitPath, MultiSubmit, RelayPath, ConcatSubmit, DeliveryRouting, HeldReceipts, MoPath,
                DncCancel, UpstreamMixin, Stopping):
    def __init__(self, pipeline, settings: SmppSettings, verdict_log: VerdictLog | None = None, clock=None):
        self.pipeline = pipeline
        self.settings = settings
        self.accounts = settings.accounts
        self.vlog = verdict_log or VerdictLog("-")
        # datetime.now(timezone.utc), compiled (stamps.py; a partial without it): read once per message, it makes
        # no Python call
        self.clock = clock or utc_now
        self.sessions: set = set()
        self.binds: dict[str, list] = defaultdict(list)       # system_id -> [EsmeSession]
        # limits across processes (engine/state/pool.py sets these with --state redis://)
        self.bucket_factory = TokenBucket
        self.bind_gate = None       # callable(account, done(ok)): may the account bind once more?
        self.bind_released = None   # callable(system_id): a bind of the account ended
        self.buckets: dict[str, TokenBucket] = {}
        self.links: list[SmscLink] = []
        self.upstream_held: dict[str, int] = {}               # system_id -> its requests in the SMSC windows
        self.upstream_seen: dict[str, float] = {}             # system_id -> when it last asked for a slot (coarse)
        self.coarse_now = time.monotonic()                    # the housekeeping tick's clock (every 0.25 s)
        self.msgid_account = MessageIds()                     # SMSC message_id -> system_id (bounded)
        self.held: dict[str, deque] = defaultdict(deque)      # receipts waiting for a receiver (routing.py)
        self.held_total = 0                                   # held receipts of all accounts (bounded)
        self.settling = 0           # messages judged, waiting for a shared state store's settle (a window slot each)
        self.grace_held, self.grace_ready = 0, deque()      # ... held through a re-seed grace (submit_grace.py)
        self.held_writing: dict[str, int] = {}                # account -> its receipts being journalled to be held
        self.held_retry_at: dict[str, float] = {}             # account -> no retry before (monotonic)
        self.early_receipts: OrderedDict = OrderedDict()      # message_id -> (ack, pdu, until): before their resp
        self.recent_resps = RecentlyAnswered(RECEIPT_AFTER_RESP)  # ids whose resp just went out (routing.py)
        # ads scheduled ahead, cancelled if their recipient registers DK DNC before their delivery (dnc_cancel.py)
        self.scheduled = ScheduledAds()
        self._scheduled_at = self._scheduled_said = float("-inf")
        self._scheduled_lists = self._scheduled_seen = None     # the DNC list as last looked at
        self._scheduled_rules = None                            # ... and the rules then
        self._scheduled_more: set = set()                       # their keys, to judge at the next DNC change too
        self._scheduled_retry = Retries()                       # their keys -> when to judge again (a cancel to retry)
        self._cancel_tries: dict = {}                           # their keys -> cancels that went unanswered
        self._cancelling: set = set()                           # their keys, our cancel_sm in flight
        self._look, self._look_soon = DncLook(), False           # the ads a look is still to judge
        self._expire_soon = False                               # the expiry's next slice is to run (call_soon)
        self._cancel_held: dict = {}                            # id space (, account) -> keys waiting for a link (room)
        self.receipts_after_resp: deque = deque()              # (due, account, pdu, on_done): waiting on their resp
        self._after_resp_timer = None
        # id space -> [receipts matched by their id as sent, by its twin, of those by a twin of the same base]
        self.receipt_id_forms: dict = {}
        self.receipt_handover = None        # engine/state/receipts.py with --state redis://: receipts across processes
        self.concat = Reassembly(self._concat_due)            # submit parts waiting for their message (concat.py)
        self.handsets = Handsets()                            # ... and the handsets they go to (submit_concat.py)
        self.mo_concat = Reassembly(self._mo_due)             # MO parts waiting, unanswered (mo.py)
        self.shared_mo = None                                  # engine/state/mo_parts.py, with a shared store
        self.commands = None                                   # 5656 commands' writer thread (engine/groupcommit.py)
        self._rr = itertools.count()
        self.local_ids = LocalIds(local_id_prefix())          # silent drops' ids: never an earlier process's (submit.py)
        self.rejected_receipts_waiting: dict = {}   # silent drops' REJECTD receipts for a receiver bind (submit.py)
        self.server = self.tls_server = None             # the plain and the TLS listener (tls.py)
        self.link_tls: dict = {}                         # SMSC address -> (SSL context, server name): tls = true
        self.tasks: list = []
        self.stopping = False
        self.draining = False               # graceful stop under way: new submits and binds refused
        self.stats = defaultdict(int)
        self.caps = ConnectionCaps(settings.max_connections, settings.max_connections_per_source)
        self.bind_throttle = BindThrottle(settings.bind_failures_free, settings.bind_backoff,
                                          settings.bind_backoff_max)
        self.loop = None
        self.batch = WriteBatch()                   # flush points of every socket write (inbox.py)
        self.inbox = Inbox(EsmeSession.handle, self.batch)

    # ------------------------------------------------------------ lifecycle
    async def start(self, listen: str | None = None, reuse_port: bool = False, tls_listen: str | None = None,
                    serve: bool = True):
        """Bind the listeners; with `serve` (else at begin()) take connections and bind the SMSC links.
        `serve` False: serve binds every listener (SMPP, SIP, metrics) before any of them takes a connection, so
        a port in use stops the start before an ESME was answered or an SMSC bound."""
        host, port = parse_addr(listen or self.settings.listen or "0.0.0.0:0")
        self.loop = asyncio.get_running_loop()
        self.commands = GroupCommit(self.pipeline.write_commands, self.loop)
        self._restore_redeliveries()                # 5656 commands of the last minutes (mo_redelivery.py)
        await self._restore_mo_parts_on_disk()      # 5656 message parts the last run acknowledged (mo_journal.py)
        # reuse_port: `serve --workers N` runs N processes on one port (SO_REUSEPORT)
        if listen or self.settings.listen:          # "" with tls_listen: TLS only
            # `[::]` takes IPv4 peers too (engine/listen.py)
            self.server = await self.loop.create_server(lambda: EsmeSession(self), **listen_args(host, port, reuse_port),
                                                        start_serving=False)
        self.link_tls = link_contexts(self.settings)
        if tls_listen or self.settings.tls_listen:  # SMPP over TLS (tls.py)
            self.tls_server = await start_listener(self, tls_listen or self.settings.tls_listen, reuse_port)
        if serve:
            await self.begin()
        return self.server

    async def begin(self) -> None:
        """Take connections on the listeners start() bound, and bind the SMSC links."""
        if self.server is not None:
            await self.server.start_serving()
        if self.tls_server is not None:
            self.tls_server.begin()
        for a in self.settings.smsc:
            self.tasks.append(asyncio.create_task(self._link_loop(a)))
        self.tasks.append(asyncio.create_task(self._housekeeping()))

    @property
    def port(self) -> int:
        """The plain listener's port (the TLS one's when there is none)."""
        return (self.server or self.tls_server).sockets[0].getsockname()[1]

    @property
    def tls_port(self) -> int | None:
        return self.tls_server.sockets[0].getsockname()[1] if self.tls_server else None

    def _listeners(self) -> list:
        return [x for x in (self.server, self.tls_server) if x is not None]

    async def _housekeeping(self):
        """Window expiry, enquire_link to idle ESMEs and upstream, idle and bind timeouts."""
        while True:
            await asyncio.sleep(0.25)
            try:
                self._housekeeping_tick(time.monotonic())
            except Exception:            # a bug here must not stop timeouts for good
                log.exception("housekeeping")

    def _housekeeping_tick(self, now: float) -> None:
        s = self.settings
        self.coarse_now = now
        seen = self.upstream_seen
        if seen:        # who asked for a slot lately (smsc.RESERVE_ACTIVE): the quiet ones are not scanned per submit
            since = now - RESERVE_ACTIVE
            for a in [a for a, t in seen.items() if t < since]:
                del seen[a]
        self._link_housekeeping(now)
        self.grace_resume()                 # (held messages whose grace ended, once a link is back)
        # a bind waiting for its check (the back-off of its system_id from that address) waits on us, not on
        # the peer: its connection is given the back-off on top (admission.py)
        for sess in self.caps.expired_unbound(now - s.bind_timeout, now - s.bind_timeout - s.bind_backoff_max):
            log.info("closing connection from %s: not bound after %.0fs", sess.peer[0], now - sess.connected_at)
            self.stats["bind_timeouts"] += 1
            self.caps.release(sess)
            sess.abort()
        self.bind_throttle.prune()
        self._expire_early_receipts(now)
        r = self.recent_resps
        if now - r.new_since >= r.span:
            r.rotate(now)
        self._retry_held(now)
        self._mo_expire(self.loop.time())          # 5656 parts' markers and records (mo_journal.py)
        self._follow_redeliveries(now)             # 5656 commands the pool's other workers wrote (mo_redelivery.py)
        self._scheduled_tick(now)                  # ads scheduled ahead to a number now on DNC (dnc_cancel.py)
        for sess in list(self.sessions):
            for seq, (cb, exp, _) in list(sess.window.items()):
                if exp <= now:
                    del sess.window[seq]
                    sess.note_timed_out(seq)
                    sess.last_timeout = now     # stalled until it sends anything (routing._receiving)
                    cb(None)
            if now - sess.last_rx > s.idle_timeout:
                log.info("closing idle bind %s", addr_text(*sess.peer[:2]))
                sess.close()
            elif sess.write_paused_at is not None and now - sess.write_paused_at > WRITE_STALL:
                log.warning("closing bind %s from %s: it has not read our answers for %.0fs",
                            sess.account and sess.account.system_id, sess.peer[0], WRITE_STALL)
                self.stats["write_stalled"] += 1
                sess.abort()
            elif sess.state.state != "OPEN" and now - max(sess.last_rx, sess.probed_at) >= s.enquire_link_interval:
                # each bind its own clock, as each SMSC link's (smsc.py): one probe tick for them all left an ESME
                # quiet since just after a tick unprobed for up to twice the interval
                sess.probed_at = now
                self._send_to_esme(sess, P.EnquireLink(), lambda r: None)

    def esme_eof(self, sess: EsmeSession) -> None:
        """The ESME half-closed its socket: it sends nothing more but still reads. What it sent is handled
        and answered as after an unbind (its parts waiting for others judged with what arrived), then the
        connection closes; no receipt or MO is offered to it meanwhile (it could not answer one)."""
        self.inbox.drain_session(sess)
        sess.eof = True
        if sess.state.state != "OPEN":
            sess.state.state = "UNBOUND"
        self.judge_parts_of(sess)
        self.owed_nothing(sess)

    def judge_parts_of(self, sess: EsmeSession) -> None:
        """Its concatenated messages still waiting for parts judged with what arrived (forwarded or refused): no
        more parts can come on it (unbound or half-closed), and each part it sent is answered before it closes."""
        self.concat.judge_of(sess)

    def unbind_answered_by_esme(self, sess: EsmeSession) -> None:
        """Our unbind of `sess` (a reload, live_accounts.py) was answered or timed out: it is closed once it has
        the answers it is owed (what it sent before the unbind), as after a half-close; not at once, which lost
        the submit_sm_resps of messages the SMSC had taken."""
        sess.eof = True
        self.owed_nothing(sess)

    def owed_nothing(self, sess: EsmeSession) -> None:
        """After each answer owed to `sess`: the last one lets its unbind_resp go, or closes it when half-closed."""
        if sess.in_flight or sess.bind_pending:
            return
        if sess.unbind_seq is not None:
            self.unbind_answered(sess)
        elif sess.eof:
            sess.close()

    def unbind_answered(self, sess: EsmeSession) -> None:
        sess.send_pdu(P.UnbindResp(sequence_number=sess.unbind_seq))
        sess.unbind_seq = None
        self.bind_ended(sess)       # SMPP 3.4 §4.2: the session ends here, not when the connection is gone
        asyncio.get_running_loop().call_later(0.05, sess.close)

    def bind_ended(self, sess: EsmeSession) -> None:
        """`sess` no longer holds a place among its account's binds (max_binds, here and across a pool)."""
        if sess.account is not None:
            lst = self.binds.get(sess.account.system_id, [])
            if sess in lst:
                lst.remove(sess)
                if self.bind_released is not None:
                    self.bind_released(sess.account.system_id)

    def session_gone(self, sess: EsmeSession):
        self.caps.release(sess)
        self.sessions.discard(sess)
        self.bind_ended(sess)
        for seq, (cb, *_) in list(sess.window.items()):
            cb(None)
        sess.window.clear()
