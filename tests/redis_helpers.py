"""A real redis-server for the shared-state tests: started on a free loopback port, stopped
after. Skips (with the reason) only when redis-server is not installed: the README's test
command installs it (Debian package redis-server)."""
import shutil
import socket
import subprocess
import time

import pytest

from benchmarks import ports


def free_port() -> int:
    return ports.free_port()


class RedisServer:
    def __init__(self, tmp, port=None, extra=()):
        exe = shutil.which("redis-server") or shutil.which("valkey-server")
        if exe is None:
            pytest.skip("redis-server is not installed (apt-get install -y redis-server): shared-state tests skipped")
        try:
            import redis  # noqa: F401
        except ImportError:
            pytest.skip("the redis package is not installed (pip install -e '.[test]')")
        tmp.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.proc = subprocess.Popen([exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no", "--dir", str(tmp), "--protected-mode", "yes", *extra],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        else:
            self.stop()
            raise RuntimeError("redis-server did not start")
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def client(self, password=None):
        import redis
        return redis.Redis(host="127.0.0.1", port=self.port, password=password)

    def flush(self):
        c = self.client()
        c.flushall()
        c.close()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    srv = RedisServer(tmp_path_factory.mktemp("redis"))
    yield srv
    srv.stop()


def ports_in(lo: int, hi: int, n: int) -> list:
    """`n` loopback ports bindable now, drawn at random from [lo, hi] (a helper's range: the servers of one test
    never take a port another test run was given)."""
    import random

    from benchmarks.ports import bindable
    got: list = []
    for p in random.sample(range(lo, hi + 1), hi - lo + 1):
        if p not in got and bindable(p, socket.SOCK_STREAM):
            got.append(p)
            if len(got) == n:
                return got
    raise RuntimeError(f"no {n} free ports in {lo}-{hi}")


class RedisHA:
    """A primary, a replica of it (--replicaof) and three sentinels monitoring them as `service`, on loopback
    ports in [lo, hi]; a failover takes ~2-5 s (down-after-milliseconds 1000, failover-timeout 5000)."""

    def __init__(self, tmp, lo=29000, hi=29999, service="tfha"):
        self.tmp, self.service = tmp, service
        ports = ports_in(lo, hi, 5)
        # (no diskless-sync delay: Redis 7 waits 5 s by default before the replica's first sync)
        quick = ("--repl-diskless-sync-delay", "0")
        self.nodes = [RedisServer(tmp / "n0", ports[0], extra=quick)]
        self.nodes.append(RedisServer(tmp / "n1", ports[1], extra=(*quick, "--replicaof", "127.0.0.1", str(ports[0]))))
        self.sentinels = []
        exe = shutil.which("redis-server") or shutil.which("valkey-server")
        for i, port in enumerate(ports[2:]):
            d = tmp / f"s{i}"
            d.mkdir(parents=True, exist_ok=True)
            conf = d / "sentinel.conf"
            conf.write_text(f"port {port}\nbind 127.0.0.1\ndir {d}\n"
                            f"sentinel monitor {service} 127.0.0.1 {ports[0]} 2\n"
                            f"sentinel down-after-milliseconds {service} 1000\n"
                            f"sentinel failover-timeout {service} 5000\n"
                            f"sentinel parallel-syncs {service} 1\n")
            self.sentinels.append((port, subprocess.Popen([exe, str(conf), "--sentinel"], stdout=subprocess.DEVNULL,
                                                          stderr=subprocess.DEVNULL)))
        self.url = ("redis+sentinel://" + ",".join(f"127.0.0.1:{p}" for p, _ in self.sentinels)
                    + f"/{service}/0")
        try:
            r = self.nodes[1].client()
            deadline = time.monotonic() + 20
            while r.info("replication").get("master_link_status") != "up":     # the replica in sync
                if time.monotonic() > deadline:
                    raise TimeoutError("the replica did not sync")
                time.sleep(0.05)
            r.close()
            self.wait(lambda m: m["num-slaves"] >= 1 and m["num-other-sentinels"] >= 2, 20)
        except BaseException:
            self.stop()
            raise

    def sentinel_client(self, i=0):
        import redis
        return redis.Redis(host="127.0.0.1", port=self.sentinels[i][0], socket_timeout=1)

    def master(self, i=0) -> dict:
        c = self.sentinel_client(i)
        try:
            return c.sentinel_master(self.service)
        finally:
            c.close()

    def wait(self, pred, timeout: float) -> dict:
        """Until every sentinel's view of the service satisfies `pred`."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                views = [self.master(i) for i in range(len(self.sentinels))]
                if all(pred(m) for m in views):
                    return views[0]
            except Exception:
                if time.monotonic() > deadline:
                    raise
            if time.monotonic() > deadline:
                raise TimeoutError(f"sentinels: {views}")
            time.sleep(0.1)

    def primary_port(self) -> int:
        return int(self.master()["port"])

    def stop(self):
        for _, p in self.sentinels:
            if p.poll() is None:
                p.terminate()
        for _, p in self.sentinels:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
        for n in self.nodes:
            n.stop()
