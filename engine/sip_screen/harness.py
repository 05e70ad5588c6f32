"""Run the SIP screen on loopback in a background event loop (tests, benchmarks)."""
from __future__ import annotations

from ..loopthread import LoopThread
from .server import SipScreen, SipSettings


class SipHarness(LoopThread):
    def __init__(self, pipeline, settings: SipSettings | None = None, verdict_log=None, clock=None):
        self.pipeline = pipeline
        self.settings = settings or SipSettings(listen="127.0.0.1:0", allow_networks=["127.0.0.0/8"])
        self.vlog, self.clock = verdict_log, clock
        super().__init__("sip-harness")
        self.screen = None

    def start(self):
        self.start_loop()
        self.screen = SipScreen(self.pipeline, self.settings, self.vlog, self.clock)
        self.call(self.screen.start())
        return self

    @property
    def port(self) -> int:
        return self.screen.port

    def stop(self):
        try:
            self.call(self.screen.stop())
        finally:
            self.stop_loop()
