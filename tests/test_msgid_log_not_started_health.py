"""A message-id log that cannot start (a full data disk at serve's start: its first write, the whole map, is
refused) leaves the map in memory only for the life of the process, a crash losing it. That was one ERROR line at
start and nothing else: once the disk had room again /healthz said 200 and telfilter_disk_failing{writer=
"message_ids"} 0, though the log never started (probed on a full 3 MB tmpfs). Now it is that writer's failure,
until a restart: /healthz 503 "disk writes failing: message_ids", as a verdict log whose pipe lost its reader."""
import asyncio
import errno

from engine import disktrouble
from engine.disktrouble import DiskTrouble
from engine.metrics import Metrics
from engine.smpp_proxy import idlog as idlog_mod
from engine.smpp_proxy.idlog import IdLog
from engine.smpp_proxy.msgids import MessageIds


def test_a_message_id_log_that_cannot_start_is_a_failing_writer(tmp_path, monkeypatch):
    monkeypatch.setitem(disktrouble._TROUBLE, "message_ids", DiskTrouble("message_ids"))
    real_open = open

    def full(path, mode="r", *a, **kw):
        if "w" in mode and str(path).startswith(str(tmp_path)):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_open(path, mode, *a, **kw)
    monkeypatch.setattr(idlog_mod, "open", full, raising=False)

    async def go():
        log = IdLog(tmp_path / "smpp" / "message_ids.msgpack", MessageIds(1000))
        log.open(asyncio.get_running_loop())
        return log
    log = asyncio.run(go())
    assert log.writer is None                           # not started
    t = disktrouble.trouble("message_ids")
    assert t.failing and t.errors == 1
    ok, why = Metrics(pipeline=None).health()
    assert not ok and "disk writes failing: message_ids" in why
