"""CoalescedStream: writes made in one loop iteration share one transport.write, but a queue
older than FLUSH_AFTER goes out with the next write instead of waiting for the iteration's end
(a message must not wait behind the judging of the others read with it). The clock is faked."""
import asyncio

import engine.smpp_proxy.stream as S


class _T:
    def __init__(self):
        self.writes = []

    def write(self, b):
        self.writes.append(b)

    def is_closing(self):
        return False

    def close(self):
        pass


def _run(monkeypatch, gaps):
    clock = [100.0]
    monkeypatch.setattr(S, "_now", lambda: clock[0])
    t = _T()

    async def main():
        s = S.CoalescedStream()
        s.transport = t
        for k, gap in enumerate(gaps):
            clock[0] += gap
            s._queue(b"%d" % k)
        await asyncio.sleep(0)              # the end of the iteration
        await asyncio.sleep(0)
    asyncio.run(main())
    return t.writes


def test_writes_within_flush_after_share_one_write(monkeypatch):
    assert _run(monkeypatch, [0, 0.00005, 0.00005, 0.00005]) == [b"0123"]


def test_a_queue_older_than_flush_after_goes_out_with_the_next_write(monkeypatch):
    # judging took 150 µs per message: the third write finds the queue 300 µs old
    writes = _run(monkeypatch, [0, 0.00015, 0.00015, 0.00015, 0.00015])
    assert writes == [b"012", b"34"]
    assert b"".join(writes) == b"01234"     # nothing lost or reordered
