"""SIGHUP's and SIGUSR1's reloads one at a time (serve_signals.OneAtATime): a burst of signals while one reload reads
costs one more after it, not one each. Each signal began its own, its reading queued in the loop's executor: 100
SIGUSR1s loaded 63 models, and a stop that came meanwhile waited behind them (6.4 s of a 1 s --drain-timeout)."""
import asyncio

from engine.serve_signals import OneAtATime


def _gated():
    """A reload that reads until its gate opens: the runs begun, the gate, the OneAtATime."""
    began, gate = [], asyncio.Event()

    async def reload():
        began.append(len(began))
        await gate.wait()
    return began, gate, OneAtATime(reload)


def test_a_burst_of_reload_signals_during_a_reload_costs_one_more_after_it():
    async def main():
        (began, gate, one), tasks = _gated(), []

        def spawn(coro):
            tasks.append(asyncio.ensure_future(coro))
        one.ask(spawn)
        await asyncio.sleep(0)                  # the first reload reads
        for _ in range(50):
            one.ask(spawn)                      # the burst, while it reads
        assert (began, len(tasks)) == ([0], 1)
        gate.set()
        await asyncio.gather(*tasks)
        after_burst = list(began)
        one.ask(spawn)                          # none running: a signal now begins one at once
        await asyncio.gather(*tasks)
        return after_burst, began, len(tasks)
    after_burst, began, spawned = asyncio.run(main())
    assert after_burst == [0, 1]                # the one under way, then one for the whole burst
    assert began == [0, 1, 2] and spawned == 2


def test_a_reload_that_fails_lets_the_next_signal_begin_one():
    async def main():
        runs = []

        async def reload():
            runs.append(1)
            raise OSError("unreadable")

        one, tasks = OneAtATime(reload), []
        for _ in range(2):
            one.ask(lambda coro: tasks.append(asyncio.ensure_future(coro)))
            await asyncio.gather(*tasks, return_exceptions=True)
        return len(runs)
    assert asyncio.run(main()) == 2


def test_the_one_more_a_burst_asked_is_not_run_once_the_stop_began():
    async def main():
        (began, gate, one), tasks = _gated(), []
        one.ask(lambda coro: tasks.append(asyncio.ensure_future(coro)))
        await asyncio.sleep(0)
        one.ask(tasks.append)                   # one more, asked while it reads
        one.stop()                              # serve's stop
        one.ask(tasks.append)
        gate.set()
        await asyncio.gather(*tasks)
        return began, len(tasks)
    assert asyncio.run(main()) == ([0], 1)
