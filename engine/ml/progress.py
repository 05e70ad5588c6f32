"""`ml train`'s progress on a terminal, by stage: the message features (a step a message), then the model fits (a
step a fit, the one under way named), with the elapsed time ticking while a fit runs.

One bar over messages and fits alike put the features at 99.7% of it (4,729 of 4,741 steps on the shipped data),
so the bar sat at 99% for the fits, ~90% of the time (6 s of 7 there; minutes on a large set), and never reached
the end (its total counted one step more than were made). tqdm redraws only when a step is counted: a ticker thread
redraws every TICK_S so the elapsed time moves during a fit that takes minutes.
"""
from __future__ import annotations

import threading

TICK_S = 1.0


class Stages:
    def __init__(self, enabled: bool, desc: str = "ml train"):
        self.enabled, self.desc = enabled, desc
        self.bar = None
        self._stop = None

    def stage(self, name: str, total: int, unit: str) -> None:
        """A new stage of `total` steps (the last one's bar closed)."""
        self.close()
        if not self.enabled:
            return
        try:
            from tqdm import tqdm
        except ImportError:       # tqdm is a declared dependency; this keeps training usable without it
            self.enabled = False
            return
        self.bar = tqdm(total=total, desc=f"{self.desc}: {name}", unit=unit, leave=False,
                        bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} {unit} "
                                   "[{elapsed}{postfix}]")
        self._stop = threading.Event()
        threading.Thread(target=self._tick, args=(self.bar, self._stop), daemon=True, name="ml-progress").start()

    def doing(self, what: str) -> None:
        """Name the step under way (a fit: which one)."""
        if self.bar is not None:
            self.bar.set_postfix_str(what)

    def update(self, n: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def close(self) -> None:
        if self._stop is not None:
            self._stop.set()
            self._stop = None
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    @staticmethod
    def _tick(bar, stop: threading.Event) -> None:
        while not stop.wait(TICK_S):
            bar.refresh()
