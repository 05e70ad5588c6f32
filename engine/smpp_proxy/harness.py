"""Run an SMSC simulator and the proxy on loopback in a background event loop thread.

Used by `telfilter demo`, the interop tests and the benchmarks, so that a blocking client
(smpplib) can drive the proxy from the calling thread. Everything listens on 127.0.0.1 and
stops with `stop()`.
"""
from __future__ import annotations

from ..loopthread import LoopThread
from .accounts import SmppSettings, account_from_arg
from .server import SmppProxy
from ..verdictlog import VerdictLog
from .simulator import SmscSimulator


class ProxyHarness(LoopThread):
    def __init__(self, pipeline, accounts=("esme1:secret",), settings: SmppSettings | None = None,
                 verdict_log=None, clock=None, receipt_delay=0.05, with_proxy=True, prepare=None, simulator=None,
                 wait_bound=True):
        self.prepare = prepare      # prepare(proxy) in the loop before it starts (serve opens its journals then)
        self.simulator = simulator  # the SMSC simulator's class (a test's subclass), else SmscSimulator
        self.wait_bound = wait_bound    # start() waits for the proxy's SMSC link (False: a test of links that fail)
        self.pipeline, self.accounts, self.settings = pipeline, accounts, settings or SmppSettings()
        self.vlog = verdict_log if verdict_log is not None else VerdictLog(open("/dev/null", "w"))
        self.clock, self.receipt_delay, self.with_proxy = clock, receipt_delay, with_proxy
        super().__init__("smpp-harness")
        self.sim = self.proxy = None

    def start(self):
        self.start_loop()
        self.sim = (self.simulator or SmscSimulator)(receipt_delay=self.receipt_delay)
        self.call(self.sim.start("127.0.0.1", 0))
        if self.with_proxy:
            s = self.settings
            s.smsc = [f"127.0.0.1:{self.sim.port}"]
            for a in self.accounts:
                acc = account_from_arg(a)
                s.accounts[acc.system_id] = acc
            self.proxy = SmppProxy(self.pipeline, s, self.vlog, clock=self.clock)
            if self.prepare is not None:
                self.run(self.prepare, self.proxy)
            self.call(self.proxy.start("127.0.0.1:0"))
            if self.wait_bound and not self.call(self.proxy.wait_upstream(10)):
                raise RuntimeError("proxy did not bind to the simulator")
        return self

    @property
    def port(self) -> int:
        return self.proxy.port if self.proxy else self.sim.port

    def stop(self):
        try:
            if self.proxy:
                self.call(self.proxy.stop())
            if self.sim:
                self.call(self.sim.stop())
        finally:
            self.stop_loop()
