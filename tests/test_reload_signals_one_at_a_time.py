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


def test_the_one_more_dropped_at_the_stop_is_said(caplog):
    # it was dropped without a word: the operator who sent the second SIGHUP took the change for applied
    async def main():
        (began, gate, one), tasks = _gated(), []
        one.name = "SIGHUP"
        one.ask(lambda coro: tasks.append(asyncio.ensure_future(coro)))
        await asyncio.sleep(0)
        one.stop()                              # nothing asked during it: nothing to say
        quiet = [r.getMessage() for r in caplog.records]
        one.stopped = False
        one.ask(tasks.append)                   # one more, asked while it reads
        one.stop()
        gate.set()
        await asyncio.gather(*tasks)
        return quiet, began
    with caplog.at_level("WARNING", logger="telfilter"):
        quiet, began = asyncio.run(main())
    assert quiet == [] and began == [0]
    said = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert said == ["SIGHUP sent during the reload under way not applied: serve is stopping (the files are read at "
                    "the next start)"]


def test_a_sighup_reload_the_stop_kept_from_beginning_is_said(caplog, monkeypatch):
    # its rules read waited behind another; the stop began meanwhile: its lists and model parts returned STOPPING,
    # which _reload_all threw away
    from types import SimpleNamespace

    from engine import serve_reload

    async def rules(pipe):
        pipe.reloads_stopped = True             # serve_stop.settle_reloads, while the rules were read
        return []
    monkeypatch.setattr(serve_reload, "reload_rules", rules)
    pipe = SimpleNamespace(replicator=object())
    with caplog.at_level("WARNING", logger="telfilter"):
        asyncio.run(serve_reload._reload_all(pipe))
    said = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert said == [f"SIGHUP: lists and model not reloaded: {serve_reload.STOPPING} (a CLI DNC change among them is "
                    "published to the other nodes by that start)"]
