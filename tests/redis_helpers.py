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
