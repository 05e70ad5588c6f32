"""`wait_for`: asyncio.wait_for, with the awaited call's own error always read.

On Python 3.11 asyncio.wait_for runs a coroutine as a task of its own. Cancelled itself (a stop cancelling the
task that waits), it cancels that task, waits for it and re-raises the cancellation; when the call ends with an
error instead (redis-py cut short mid-call raises the connection's `ConnectionError`), nothing reads that error and
asyncio logs `Task exception was never retrieved` with its traceback when the task is collected: an ERROR line on a
clean stop. Here the task's error is read by a done callback; the caller gets what asyncio.wait_for gives it (the
result, the error, TimeoutError or the cancellation)."""
import asyncio


def _read(fut: asyncio.Future) -> None:
    if not fut.cancelled():
        fut.exception()                  # (marks it retrieved; the caller, if still waiting, gets it all the same)


async def wait_for(aw, timeout):
    fut = asyncio.ensure_future(aw)
    fut.add_done_callback(_read)
    return await asyncio.wait_for(fut, timeout)
