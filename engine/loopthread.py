"""An asyncio event loop in a background thread, for driving servers from blocking code
(the demo's smpplib client, tests, benchmarks)."""
from __future__ import annotations

import asyncio
import threading


class LoopThread:
    def __init__(self, name="telfilter-loop"):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)

    def start_loop(self):
        self.thread.start()

    def call(self, coro, timeout=30):
        """Run a coroutine in the loop thread and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def run(self, fn, *a):
        """Run a plain function inside the loop thread and return its result."""
        async def _f():
            return fn(*a)
        return self.call(_f())

    def stop_loop(self):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *a):
        self.stop()
