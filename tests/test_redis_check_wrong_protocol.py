"""`--state` naming the other protocol than the port speaks: `rediss://` to a plain Redis port, `redis://` to a TLS
port (the server's `tls-port`). Before, both were taken for an outage ("unreachable (TimeoutError: )" and "Connection
reset by peer"): `config check --state` exited 0 and serve started and let every message through fail-open for as
long as it ran, every batch waiting out its timeout (an outage that never heals). Now both are start-up errors
naming the scheme to use; a port that answers neither way is still an outage."""
import asyncio
import socket

import pytest

from engine.state import StateError
from engine.state.redis_check import check_url

from .redis_helpers import RedisServer, free_port
from .test_redis_ops import _start
from .test_smpp_tls import pki  # noqa: F401


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory, pki):  # noqa: F811
    """A redis-server with a plain port and a TLS port (its certificate from the test CA)."""
    tls_port = free_port()
    srv = RedisServer(tmp_path_factory.mktemp("redis-tls"), extra=(
        "--tls-port", str(tls_port), "--tls-cert-file", str(pki / "server.pem"),
        "--tls-key-file", str(pki / "server.key"), "--tls-ca-cert-file", str(pki / "ca.pem"),
        "--tls-auth-clients", "no"))
    try:
        socket.create_connection(("127.0.0.1", tls_port), 2).close()
    except OSError:
        srv.stop()
        pytest.skip("this redis-server has no TLS (built without BUILD_TLS)")
    srv.tls_port = tls_port
    yield srv
    srv.stop()


def test_rediss_to_a_plain_port_is_a_start_up_error(tls_redis):
    url = f"rediss://127.0.0.1:{tls_redis.port}/0?timeout=0.2"
    with pytest.raises(StateError) as e:
        asyncio.run(_start(url))
    assert "not TLS" in str(e.value) and "redis://" in str(e.value), e.value
    errors, _warnings, _notes = check_url(url)
    assert errors and "not TLS" in errors[0], errors


def test_redis_to_a_tls_port_is_a_start_up_error(tls_redis):
    url = f"redis://127.0.0.1:{tls_redis.tls_port}/0?timeout=0.2"
    with pytest.raises(StateError) as e:
        asyncio.run(_start(url))
    assert "TLS port" in str(e.value) and "rediss://" in str(e.value), e.value
    errors, _warnings, _notes = check_url(url)
    assert errors and "TLS port" in errors[0], errors


def test_a_port_that_answers_neither_way_is_still_an_outage():
    """A listener that accepts and never answers (a hung server): unreachable, a warning, as before."""
    s = socket.socket()
    s.bind(("127.0.0.1", free_port()))
    s.listen(8)
    try:
        for scheme in ("redis", "rediss"):
            errors, warnings, _notes = check_url(f"{scheme}://127.0.0.1:{s.getsockname()[1]}/0?timeout=0.1")
            assert not errors and "unreachable" in warnings[0], (errors, warnings)
    finally:
        s.close()
