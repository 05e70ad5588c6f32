"""Run the SIP screen on loopback in a background event loop (tests, benchmarks)."""
from __future__ import annotations

import asyncio
import threading

from .server import SipScreen, SipSettings


class SipHarness:
    def __init__(self, pipeline, settings: SipSettings | None = None, verdict_log=None, clock=None):
        self.pipeline = pipeline
        self.settings = settings or SipSettings(listen="127.0.0.1:0", allow_networks=["127.0.0.0/8"])
        self.vlog, self.clock = verdict_log, clock
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="sip-harness", daemon=True)
        self.screen = None

    def call(self, coro, timeout=30):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self):
        self.thread.start()
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
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *a):
        self.stop()
