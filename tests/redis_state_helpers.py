"""Helpers of the shared-state tests against a real redis-server (test_redis_state_* and the other files that
run nodes on one server: test_redis_sentinel, test_redis_ops, test_dnc_stream_*, ...): a node (a pipeline with one
registered advertiser, its state on the server) and its ads judged as the SMPP submit path does, a node with only
lists, the `url` fixture (a flushed server) and a Redis client whose server refuses at once. The server itself is
tests/redis_helpers.py's `redis_server`."""
import asyncio
from datetime import datetime, timedelta, timezone

import pytest

from engine.app import build
from engine.lists import ListStore
from engine.state import install, open_state
from engine.verdict import Message

from .redis_helpers import redis_server  # noqa: F401


SENDERS = b"sender,owner,category,valid_from,valid_to,accounts\nSHOPABC,Shop ABC,QC,2020-01-01,,\n"


T0 = datetime.now(timezone(timedelta(hours=7))).replace(hour=9, minute=0, second=0, microsecond=0)


def _ad(i, recipient="0912000444"):
    return Message("SHOPABC", recipient, f"[QC] Uu dai {i}. Tu choi: TC gui 5656", T0 + timedelta(minutes=i), "e")


def _node(tmp_path, name, url):
    data = tmp_path / name
    ListStore(data).import_csv("senders", SENDERS, "senders.csv")
    pipe = build(data_dir=data, with_model=False)
    store = open_state(url, data)
    install(pipe, store)
    return pipe, store


async def _verdict(pipe, msg):
    """What the SMPP submit path does: judge, then wait for the server to settle the commits. The final verdict."""
    fut = asyncio.get_running_loop().create_future()
    pipe.state.shared.begin()
    v = pipe.judge(msg)
    pipe.state.shared.settle(pipe, v, fut.set_result)
    return await fut


async def _judge(pipe, msg):
    """_verdict's action and hits."""
    v = await _verdict(pipe, msg)
    return v.action.name.lower(), [h.symbol for h in v.hits]


@pytest.fixture
def url(redis_server):  # noqa: F811
    redis_server.flush()
    return redis_server.url


def _lists_node(tmp_path, name):
    import types
    st = ListStore(tmp_path / name)
    return types.SimpleNamespace(store=st, lists=st.load(), reports=None, state=None)


class _Down:
    """A Redis client whose server refuses at once (redis-py itself would retry a closed port for seconds)."""

    async def xadd(self, *a, **k):
        raise ConnectionError("refused")

    async def aclose(self):
        pass
