"""`python -m engine.smpp_proxy.simulator`: the SMSC side of SMPP 3.4 run by hand, for an ESME integrator with no SMSC
to test against (or telfilter's proxy: `serve --smsc 127.0.0.1:2775`). The simulator is simulator.py's, the one the
tests, the demo and the benchmarks use; this is only its command line.

It takes binds (any, or only --system-id with --password: others get ESME_RINVSYSID / ESME_RINVPASWD), answers
submit_sm, data_sm and submit_multi with message_ids of its own, answers enquire_link, query_sm, cancel_sm,
replace_sm and unbind, and sends a delivery receipt (deliver_sm, stat:DELIVRD) for each message that asks for one
(registered_delivery), --receipt-delay seconds after its answer, on a receiver or transceiver bind of its system_id
(kept for the next one when there is none, SMPP 3.4 §2.3). It listens on loopback unless --listen says otherwise,
keeps nothing it receives (a long run does not grow), and stops on Ctrl-C (SIGINT), SIGTERM or after --seconds:
sessions closed, what it received said in one line, exit 0.
"""
from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
from collections import Counter

from ..cli_types import MAX_SECONDS, _seconds
from .simulator import SmscSimulator

EXAMPLE = """example:
  python -m engine.smpp_proxy.simulator --port 2775 --system-id esme1 --password secret -v
  (then bind your ESME to 127.0.0.1:2775 as esme1/secret; Ctrl-C stops it)"""


def _port(v: str) -> int:
    try:
        n = int(v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {v!r}") from None
    if not 0 <= n <= 65535:
        raise argparse.ArgumentTypeError(f"must be 0 to 65535 (0: any free port, printed), got {v!r}")
    return n


def _delay(v: str) -> float:
    try:
        x = float(v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {v!r}") from None
    if not 0 <= x <= MAX_SECONDS:
        raise argparse.ArgumentTypeError(f"must be 0 to {MAX_SECONDS:g} seconds, got {v!r}")
    return x


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m engine.smpp_proxy.simulator", epilog=EXAMPLE,
                                 description="an SMPP 3.4 SMSC simulator, run by hand: takes binds, answers "
                                 "submits, sends delivery receipts", formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--listen", default="127.0.0.1", metavar="ADDRESS",
                    help="address to listen on (default 127.0.0.1: loopback only)")
    ap.add_argument("--port", type=_port, default=2775, help="TCP port (default 2775; 0: any free one, printed)")
    ap.add_argument("--system-id", help="the only system_id a bind may give, with --password (default: any bind)")
    ap.add_argument("--password", help="the password a bind of --system-id must give")
    ap.add_argument("--smsc-id", default="SIMSMSC", help="the system_id of its bind_resp (default SIMSMSC)")
    ap.add_argument("--receipt-delay", type=_delay, default=0.05, metavar="SECONDS",
                    help="from a submit's answer to its delivery receipt (default 0.05)")
    ap.add_argument("--no-receipts", action="store_true", help="send no delivery receipt, whatever a submit asks")
    ap.add_argument("--id-format", choices=("hex", "decimal"), default="hex",
                    help="message_ids as 8 hex digits (00000001, the default) or a decimal counter (1)")
    ap.add_argument("--seconds", type=_seconds, metavar="SECONDS",
                    help=f"stop after that long (at most {MAX_SECONDS:g}; default: run until Ctrl-C or SIGTERM)")
    ap.add_argument("-v", "--verbose", action="store_true", help="print each PDU received, one line each")
    return ap


class _HandRun(SmscSimulator):
    """Counts what it receives and the receipts it sends; with `verbose`, prints each PDU received."""

    def __init__(self, verbose: bool, **kw):
        super().__init__(**kw)
        self.verbose, self.counts, self.receipts_sent = verbose, Counter(), 0

    def on_pdu(self, s, ev):
        name = type(ev).__name__
        self.counts[name] += 1
        if self.verbose:
            peer = s.transport.get_extra_info("peername") if s.transport else None
            fields = " ".join(f"{k}={getattr(ev, k)!r}" for k in ("system_id", "source_addr", "destination_addr",
                                                                   "message_id") if getattr(ev, k, None))
            print(f"{time.strftime('%H:%M:%S')} {f'{peer[0]}:{peer[1]}' if peer else '?'} {name} "
                  f"seq={ev.sequence_number} status={ev.command_status} {fields}".rstrip(), flush=True)
        super().on_pdu(s, ev)

    def _send_receipt(self, s, pdu) -> None:
        self.receipts_sent += 1
        super()._send_receipt(s, pdu)


async def run(a) -> int:
    sim = _HandRun(a.verbose, receipt_delay=None if a.no_receipts else a.receipt_delay, system_id=a.smsc_id)
    sim.record = False
    sim.id_format = "%d" if a.id_format == "decimal" else "%08X"
    if a.system_id is not None:
        sim.accounts = {a.system_id: a.password}
    try:
        await sim.start(a.listen, a.port)
    except OSError as e:
        print(f"simulator: error: cannot listen on {a.listen}:{a.port}: {e.strerror or e}", file=sys.stderr)
        return 1
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    host, port = sim.server.sockets[0].getsockname()[:2]
    binds = f"system_id {a.system_id!r} only" if a.system_id is not None else "any system_id and password"
    receipts = "no receipts" if a.no_receipts else f"receipts {a.receipt_delay:g} s after each answer"
    print(f"SMSC simulator listening on {host}:{port} ({binds}; {receipts}); Ctrl-C or SIGTERM stops it", flush=True)
    started = time.monotonic()
    try:
        await asyncio.wait_for(stop.wait(), a.seconds)
    except asyncio.TimeoutError:
        pass
    await sim.stop()
    got = ", ".join(f"{n} {name}" for name, n in sorted(sim.counts.items())) or "nothing"
    print(f"stopped after {time.monotonic() - started:.1f} s: received {got}; {sim.receipts_sent} receipts sent",
          flush=True)
    return 0


def main(argv=None) -> int:
    ap = parser()
    a = ap.parse_args(argv)
    if (a.system_id is None) != (a.password is None):
        ap.error("--system-id and --password go together (neither: any bind is taken)")
    return asyncio.run(run(a))
