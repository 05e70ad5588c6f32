"""Prometheus metrics and health endpoints: `serve --metrics-listen HOST:PORT`.

    GET /metrics   Prometheus text format (prometheus_client)
    GET /healthz   200 while the process runs and, where an SMSC is configured, a link that takes submits is
                   bound (a receiver alone is not enough), and no durable writer's write failed in the last 10 s
                   (telfilter_disk_failing: the last one); 503 with every reason in the body otherwise
    GET /readyz    200 once start-up is complete (configs valid, listening), 503 while stopping
    GET /livez     200 whenever it answers: the event loop runs (a liveness probe; /healthz is 503 while the
                   SMSC is away, which a restart would not cure)

In a `serve --workers N` pool worker 0 alone listens, and its /metrics and /healthz are the pool's: every worker's
samples, labelled worker="i", and 503 while any worker is away or unhealthy (metrics_pool.py); /readyz and /livez are
worker 0's own.

Theory of operation: verdicts are counted where the verdict log sees them
(`MeteredVerdictLog.write`), so every message and call that is judged and logged is counted
exactly once, by channel and action, with its hits and its judge time, in plain dicts of ints
(about 1 us per verdict); they become metric families only when scraped. The lines of what was answered unjudged
(an SMS's `write_refusal`, a call's `write_call_refusal`: action refuse) are counted there too, and by the status
answered; a SIP call let through that never left (`write_call_unsent`) by its status: every line of the log but a
cancel_sm of ours (no verdict: its message had one) is in `telfilter_verdicts_total` or
`telfilter_calls_unsent_total`, each counted where its one line is built. Component statistics (`SmppProxy.stats`,
`SipScreen.stats`, ESME binds, SMSC links and windows, rules and model) are read at scrape time by a collector
(metrics_collect.py), so the proxies carry no metrics code. The HTTP server runs on serve's own event loop: scrapes
read that state without locks or torn reads, and each request is bounded (8 KiB of request head, 5 s, at most
MAX_CONNECTIONS at once) so a scraper, or anything else that reaches the port, cannot hold the element up.
"""
from __future__ import annotations

import asyncio
import logging

from bisect import bisect_left
from collections import defaultdict

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, PlatformCollector, ProcessCollector, generate_latest

from . import metrics_pool
from .disktrouble import all_writers
from .listen import listen_args
from .metrics_collect import JUDGE_BUCKETS, StateCollector
from .verdictlog import VerdictLog
from .sourcekey import source_key

log = logging.getLogger("telfilter")

MAX_PER_PEER = 8                # connections from one address (an IPv6 /64) at once: the others stay reachable
MAX_CONNECTIONS = 32
REQUEST_TIMEOUT_S = 5.0
MAX_REQUEST_HEAD = 8192


class Metrics:
    def __init__(self, pipeline, proxy=None, sip=None):
        self.pipeline, self.proxy, self.sip = pipeline, proxy, sip
        self.state = None               # the durable state store, set by serve
        self.vlog = None                # the verdict log (MeteredVerdictLog sets it)
        self.ready = False
        self.pool = None                # worker 0 of a --workers pool: the others (metrics_pool.Pool), set by serve
        # plain ints, turned into metric families at scrape time: prometheus_client's own
        # Counter/Histogram take a lock per increment (measured 8-10 us per verdict vs ~1 us)
        self.verdicts: dict = defaultdict(int)        # (channel, action) -> count
        self.hits: dict = defaultdict(int)            # (channel, symbol) -> count
        self.judge: dict = {}                         # channel -> [bucket counts..., +Inf], sum
        self.refusals: dict = defaultdict(int)        # (channel, status answered) -> count: the refuse lines
        self.unsent: dict = defaultdict(int)          # status answered -> count: the call_unsent lines
        self.links_seen: dict = {}                    # (smsc, kind) of SMSC links, exported 0 while down
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(StateCollector(self))
        # what a NOC's dashboards expect of any process (process_resident_memory_bytes, process_cpu_seconds_total,
        # process_open_fds, process_start_time_seconds; python_info), read from /proc at scrape time only
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)

    # --- per verdict (hot path) ---
    def verdict(self, rec: dict) -> None:
        channel = "call" if rec.get("kind") == "call" else "sms"
        if rec.get("action") == "refuse":           # answered unjudged (write_refusal): no hits, no judge time
            return self.refusal(channel, rec.get("status"))
        self.count(channel, rec.get("action"), [h.get("symbol") for h in rec.get("hits", ())], rec.get("judge_us"))

    def refusal(self, channel: str, status) -> None:
        """A message or call answered `status` unjudged: a verdict of action refuse, and its status's count (the
        status, not the reason, is the label: a reason may hold a peer's text or an address, without bound)."""
        self.verdicts[(channel, "refuse")] += 1
        self.refusals[(channel, status)] += 1

    def count(self, channel: str, action, symbols, us) -> None:
        self.verdicts[(channel, action)] += 1
        for sym in symbols:
            self.hits[(channel, sym)] += 1
        if us is not None:
            j = self.judge.get(channel)
            if j is None:
                j = self.judge[channel] = [[0] * (len(JUDGE_BUCKETS) + 1), 0.0]
            j[0][bisect_left(JUDGE_BUCKETS, us / 1e6)] += 1
            j[1] += us / 1e6

    # --- health ---
    def health(self) -> tuple[bool, str]:
        why = []
        p = self.proxy
        if p is not None and p.settings.smsc:
            bound = [l for l in getattr(p, "links", []) if getattr(l, "bound", False)]
            if not bound:
                why.append("no SMSC link bound")
            elif all(getattr(l, "kind", "") == "receiver" for l in bound):
                # (a transmitter + receiver pair whose transmitter is refused: every submit_sm is throttled)
                why.append("no SMSC link bound that takes submits (receiver only)")
        # a durable writer whose last write failed, or one in the last 10 s (a full or read-only data disk; one at the
        # edge of full refuses every other write: no 200/503 by turns, disktrouble.HOLD_S): the node still answers every
        # message, but loses its verdict lines, journals or snapshots; a load balancer drains it (a restart would
        # not cure a full disk: /livez stays 200). O(writers): the fixed list of engine/disktrouble.py
        failing = [t.writer for t in all_writers() if t.troubled()]
        if failing:
            why.append("disk writes failing: " + ", ".join(failing))
        return (False, "; ".join(why)) if why else (True, "ok")

    def readiness(self) -> tuple[bool, str]:
        return (True, "ready") if self.ready else (False, "not ready")

    # --- HTTP ---
    async def start(self, listen: str, serve: bool = True):
        host, _, port = listen.rpartition(":")
        self._conns = 0
        self._by_peer: dict = {}
        # `[::]` takes IPv4 peers too (engine/listen.py); a mapped peer is counted as its IPv4 address (source_key)
        self.server = await asyncio.start_server(self._serve, **listen_args(host.strip("[]") or "127.0.0.1", int(port)),
                                                 limit=MAX_REQUEST_HEAD, start_serving=serve)
        return self.server

    @property
    def port(self) -> int:
        return self.server.sockets[0].getsockname()[1]

    async def stop(self):
        self.server.close()
        await self.server.wait_closed()

    async def _serve(self, reader, writer):
        peer = source_key((writer.get_extra_info("peername") or ("?",))[0])     # an IPv6 peer: its /64
        per = self._by_peer.get(peer, 0)
        if self._conns >= MAX_CONNECTIONS or per >= MAX_PER_PEER:
            writer.close()           # one slow peer cannot hold every slot (a liveness probe must get in)
            return
        self._conns += 1
        self._by_peer[peer] = per + 1
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), REQUEST_TIMEOUT_S)
            method, path = _request_line(head)
            # a pool's worker 0 asks the others first (bounded: metrics_pool.POOL_TIMEOUT_S in all)
            asked = (await self.pool.ask() if self.pool is not None and method in ("GET", "HEAD")
                     and path.split("?", 1)[0] in ("/metrics", "/healthz") else None)
            status, ctype, body = self._route(method, path, asked)
            writer.write(b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
                         % (status, _REASONS[status].encode(), ctype.encode(), len(body)))
            if method != "HEAD":
                writer.write(body)
            await asyncio.wait_for(writer.drain(), REQUEST_TIMEOUT_S)
        except (asyncio.TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError,
                ConnectionError):
            pass                     # a slow, oversized or broken request: close it, nothing else
        except Exception:
            log.exception("metrics endpoint: internal error")
        finally:
            self._conns -= 1
            left = self._by_peer.get(peer, 1) - 1
            if left > 0:
                self._by_peer[peer] = left
            else:
                self._by_peer.pop(peer, None)
            writer.close()

    def _route(self, method: str, path: str, asked: dict | None = None):
        if method not in ("GET", "HEAD"):
            return 405, "text/plain", b"method not allowed\n"
        path = path.split("?", 1)[0]
        if path == "/metrics":
            return 200, CONTENT_TYPE_LATEST, (generate_latest(self.registry) if asked is None
                                              else metrics_pool.exposition(self.registry, asked))
        if path == "/livez":                # answered on serve's loop: answering at all is the proof
            return 200, "text/plain", b"alive\n"
        if path in ("/healthz", "/readyz"):
            ok, why = self.readiness() if path == "/readyz" else (
                self.health() if asked is None else metrics_pool.health(self.health(), asked))
            return (200 if ok else 503), "text/plain", why.encode() + b"\n"
        return 404, "text/plain", b"not found\n"


_REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}


def _request_line(head: bytes) -> tuple[str, str]:
    parts = head.split(b"\r\n", 1)[0].split(b" ")
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/"):
        raise ValueError("bad request line")
    return parts[0].decode("ascii"), parts[1].decode("ascii")


class MeteredVerdictLog(VerdictLog):
    """The verdict log, counting each verdict it writes."""

    def __init__(self, target, events, metrics: Metrics):
        super().__init__(target, events)
        self.metrics = metrics
        metrics.vlog = self                 # its lost lines, read at scrape time

    def write(self, rec: dict) -> None:
        if rec.get("kind") != "cancel":     # a cancel_sm of ours (write_cancel) is no verdict: its message had one
            self.metrics.verdict(rec)
        super().write(rec)

    def write_sms(self, msg, pdu: str, v, judge_us: float, binary: bool = False, reading: str | None = None,
                  status: int | None = None, late: bool = False, concat: str | None = None,
                  redelivery: bool = False, mo: str = "") -> None:
        # the SMS hot path builds its line without a record dict: count from the verdict itself
        self.metrics.count("sms", str(v.action), [h.symbol for h in v.hits], judge_us)
        super().write_sms(msg, pdu, v, judge_us, binary, reading, status, late, concat, redelivery, mo)

    def write_call(self, when, call_id, caller, callee, ingress, v, judge_us) -> None:
        self.metrics.count("call", str(v.action), [h.symbol for h in v.hits], judge_us)
        super().write_call(when, call_id, caller, callee, ingress, v, judge_us)

    def write_call_refusal(self, when, call_id, caller, callee, ingress, status, reason) -> None:
        self.metrics.refusal("call", status)
        super().write_call_refusal(when, call_id, caller, callee, ingress, status, reason)

    def write_call_unsent(self, when, call_id, caller, callee, ingress, judged, status, reason) -> None:
        # no verdict (the call's was counted with its line): a call that never left, by the status it was answered
        self.metrics.unsent[status] += 1
        super().write_call_unsent(when, call_id, caller, callee, ingress, judged, status, reason)
