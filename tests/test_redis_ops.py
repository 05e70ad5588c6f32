"""`--state redis://…` against a Redis configured as a carrier runs one (found by the Redis operations probe).

Before: a wrong or missing password, an ACL user without EVALSHA or XADD, or a replica given by mistake each
started serve with "counters shared" (or an outage line) and every ad then went through fail-open for as long as it
ran (per-process caps only, one ERROR line every 5 s); the password in the URL was written to the service log at
every start and outage line and into every STATE_UNAVAILABLE hit's source (the verdict log); an evicting
`maxmemory-policy` (counter keys all have a TTL: volatile-* evicts them too) was never mentioned; and a Redis
restarted empty under load let another node send three more ads to a recipient at its cap without a word. Now:
the refusals are start-up errors naming what is missing (exit 2), the password is shown as ***, an evicting
policy is a warning at start and in `config check --state`, and a lost keyspace is logged as an ERROR and counted
(`keyspace_lost`)."""
import asyncio
import logging
import subprocess
import sys

import pytest

from engine.state import StateError
from engine.state.redis_store import RedisStore
from engine.state.url import parse_url

from .conftest import ROOT
from .redis_helpers import RedisServer, free_port
from .redis_state_helpers import _ad, _node

SECRET = "s3cr3t-pw"


async def _judge(pipe, msg):
    fut = asyncio.get_running_loop().create_future()
    pipe.state.shared.begin()
    v = pipe.judge(msg)
    pipe.state.shared.settle(pipe, v, fut.set_result)
    return (await fut).action.name.lower()


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    """A server with requirepass and ACL users each missing a command (or a category) the store needs."""
    srv = RedisServer(tmp_path_factory.mktemp("redis-auth"), extra=("--requirepass", SECRET))
    c = srv.client(SECRET)
    c.execute_command("ACL", "SETUSER", "noeval", "on", ">pw", "~*", "+@all", "-evalsha", "-eval")
    c.execute_command("ACL", "SETUSER", "noxadd", "on", ">pw", "~*", "+@all", "-xadd")
    c.execute_command("ACL", "SETUSER", "nozset", "on", ">pw", "~*", "+@all", "-@sortedset")     # (MO parts' leases)
    c.execute_command("ACL", "SETUSER", "noxrev", "on", ">pw", "~*", "+@all", "-xrevrange")
    c.execute_command("ACL", "SETUSER", "noscriptexists", "on", ">pw", "~*", "+@all", "-script|exists")
    c.execute_command("ACL", "SETUSER", "good", "on", ">pw", "~tf:*", "+@all", "-@dangerous", "+info")
    c.close()
    yield srv
    srv.stop()


async def _start(url):
    st = RedisStore(url)
    try:
        await st.start()
        return st
    finally:
        await st.close()


@pytest.mark.parametrize("auth,says", [
    ("", "authentication refused"),
    (":wrong@", "authentication refused"),
    ("noeval:pw@", "'evalsha'"),
    ("noxadd:pw@", "may not run XADD inside scripts"),
    ("nozset:pw@", "may not run ZADD, ZSCORE, ZRANGE, ZRANGEBYSCORE, ZREM, ZREMRANGEBYSCORE inside scripts"),
    ("noxrev:pw@", "'xrevrange'"),
    ("noscriptexists:pw@", "'script|exists'"),
])
def test_a_server_refusing_the_store_is_a_start_up_error_naming_why(secured, auth, says):
    url = f"redis://{auth}127.0.0.1:{secured.port}/0"
    with pytest.raises(StateError) as e:
        asyncio.run(_start(url))
    assert says in str(e.value), e.value
    assert "wrong" not in str(e.value) and SECRET not in str(e.value)


def test_a_user_with_what_the_store_needs_starts(secured):
    st = asyncio.run(_start(f"redis://good:pw@127.0.0.1:{secured.port}/0"))
    assert st.stats["errors"] == 0


@pytest.mark.parametrize("command,to,says", [
    ("ZADD", "zadd_7f3a", "does not know ZADD inside scripts"),
    ("PTTL", "", "does not know PTTL inside scripts"),
    ("TIME", "", "does not know TIME inside scripts"),         # (a lease's clock: was taken for an outage, fail-open)
    ("XREVRANGE", "xrevrange_7f3a", "does not know the command XREVRANGE"),
])
def test_a_command_renamed_away_is_a_start_up_error_naming_it(tmp_path, command, to, says):
    """A managed Redis's `rename-command` (renamed to a secret name, or to "": disabled) is as fatal as an ACL's
    refusal: the store would fail on it mid-traffic."""
    srv = RedisServer(tmp_path, extra=("--rename-command", command, to))
    try:
        with pytest.raises(StateError) as e:
            asyncio.run(_start(srv.url))
    finally:
        srv.stop()
    assert says in str(e.value) and "rename-command" in str(e.value), e.value


def test_a_replica_given_by_mistake_is_a_start_up_error(tmp_path):
    primary = RedisServer(tmp_path / "p")
    replica = RedisServer(tmp_path / "r", extra=("--replicaof", "127.0.0.1", str(primary.port)))
    try:
        with pytest.raises(StateError, match="replica"):
            asyncio.run(_start(replica.url))
    finally:
        replica.stop()
        primary.stop()


@pytest.mark.parametrize("policy,warned", [("allkeys-lru", True), ("volatile-lru", True), ("volatile-ttl", True),
                                           ("noeviction", False)])
def test_an_evicting_policy_is_a_warning_at_start(tmp_path, caplog, policy, warned):
    srv = RedisServer(tmp_path, extra=("--maxmemory", "50mb", "--maxmemory-policy", policy))
    try:
        with caplog.at_level(logging.INFO, logger="telfilter"):
            asyncio.run(_start(srv.url))
    finally:
        srv.stop()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(f"maxmemory-policy is {policy}" in w for w in warnings) is warned, warnings


def test_info_and_config_disabled_still_start(tmp_path, caplog):
    srv = RedisServer(tmp_path, extra=("--rename-command", "INFO", "", "--rename-command", "CONFIG", ""))
    try:
        with caplog.at_level(logging.INFO, logger="telfilter"):
            st = asyncio.run(_start(srv.url))
    finally:
        srv.stop()
    assert st.stats["errors"] == 0
    assert "INFO refused" in caplog.text and "not checked" in caplog.text


def test_a_redis_restarted_empty_is_said(tmp_path, caplog):
    srv = RedisServer(tmp_path / "r1")
    port = srv.port

    async def main():
        nonlocal srv
        a, sa = _node(tmp_path, "a", srv.url)
        b, sb = _node(tmp_path, "b", srv.url)
        await sa.start()
        await sb.start()
        assert [await _judge(a, _ad(i)) for i in range(3)] == ["allow"] * 3
        srv.stop()                      # no persistence: the server comes back empty
        srv = RedisServer(tmp_path / "r2", port=port)
        got = []
        for i in range(3):              # (the first may meet the old connection: an error, then the back-off)
            got.append(await _judge(b, _ad(10 + i)))
            await asyncio.sleep(0.3)
        await sa.close()
        await sb.close()
        return got, sb
    try:
        with caplog.at_level(logging.INFO, logger="telfilter"):
            got, sb = asyncio.run(main())
    finally:
        srv.stop()
    # said and counted; node A, not watching the keyspace here (no run()) and sending nothing after, puts back none
    # of its counts (serve runs the watch: test_redis_keyspace_reseed.py, the caps kept)
    assert got == ["allow"] * 3
    assert sb.stats["keyspace_lost"] == 1
    assert "lost its keys" in caplog.text


def test_a_redis_restarted_with_its_keys_is_not_a_lost_keyspace(tmp_path, caplog):
    srv = RedisServer(tmp_path / "r1")

    async def main():
        a, sa = _node(tmp_path, "a", srv.url)
        await sa.start()
        assert [await _judge(a, _ad(i)) for i in range(2)] == ["allow"] * 2
        c = srv.client()
        c.script_flush()                # the script cache gone (as after a restart with AOF): NOSCRIPT
        c.close()
        assert await _judge(a, _ad(5, "0912000555")) == "allow"
        await sa.close()
        return sa
    try:
        with caplog.at_level(logging.INFO, logger="telfilter"):
            sa = asyncio.run(main())
    finally:
        srv.stop()
    assert sa.stats["keyspace_lost"] == 0 and "lost its keys" not in caplog.text


def _config_check(*args):
    return subprocess.run([sys.executable, "-m", "engine.cli", "config", "check", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_config_check_state(secured, tmp_path):
    r = _config_check("--state", f"redis://:wrong@127.0.0.1:{secured.port}/0")
    assert r.returncode == 2 and "authentication refused" in r.stderr and "wrong" not in r.stderr + r.stdout
    r = _config_check("--state", f"redis://:{SECRET}@127.0.0.1:{secured.port}/0")
    assert r.returncode == 0, r.stderr
    assert "usable as the shared state server" in r.stdout and SECRET not in r.stdout + r.stderr
    srv = RedisServer(tmp_path, extra=("--maxmemory", "50mb", "--maxmemory-policy", "volatile-lru"))
    try:
        r = _config_check("--state", srv.url)
        assert r.returncode == 0 and "maxmemory-policy is volatile-lru" in r.stderr
        assert _config_check("--strict", "--state", srv.url).returncode == 1
    finally:
        srv.stop()


def test_serve_exits_2_on_a_refused_password(secured, tmp_path):
    r = subprocess.run([sys.executable, "-m", "engine.cli", "serve", "--data-dir", str(tmp_path / "d"),
                        "--smpp-listen", f"127.0.0.1:{free_port()}", "--sip-listen", "off", "--log", str(tmp_path / "v"),
                        "--state", f"redis://:wrong@127.0.0.1:{secured.port}/0", "--control-socket", "off"],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stderr[-2000:]
    assert "authentication refused" in r.stderr and ":wrong@" not in r.stderr


def test_a_certificate_not_trusted_is_a_refusal_not_an_outage():
    """rediss:// to a server whose certificate a private CA signed: CERTIFICATE_VERIFY_FAILED on every connect (was
    taken for an outage: serve started and failed open for as long as it ran)."""
    from engine.state.redis_check import _refused
    e = ConnectionError("Error 1 connecting to 127.0.0.1:6380. [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify "
                        "failed: self-signed certificate in certificate chain (_ssl.c:1006).")
    assert "SSL_CERT_FILE" in _refused(e)
    assert _refused(ConnectionError("Error 111 connecting to 127.0.0.1:6380. Connection refused.")) is None


def test_a_unix_socket(tmp_path):
    """unix:///PATH?db=N (redis-py's form): was refused ("expected redis://HOST:PORT/DB"), though a Redis beside
    serve on a socket is a common carrier set-up."""
    sock = tmp_path / "redis.sock"
    srv = RedisServer(tmp_path, extra=("--unixsocket", str(sock), "--unixsocketperm", "700"))
    url = f"unix://{sock}?db=2&on_error=closed"
    assert parse_url(url)["unix_socket_path"] == str(sock) and parse_url(url)["db"] == 2
    with pytest.raises(StateError, match="absolute"):
        parse_url("unix://relative.sock")

    async def main():
        a, sa = _node(tmp_path, "a", url)
        await sa.start()
        got = [await _judge(a, _ad(i)) for i in range(4)]
        await sa.close()
        return got, sa
    try:
        got, sa = asyncio.run(main())
        assert got == ["allow"] * 3 + ["drop"] and sa.stats["errors"] == 0 and sa.stats["batches"] >= 3
        c = srv.client()
        c.select(2)
        assert any(k.startswith(b"tf:c:") for k in c.keys("tf:*"))     # db 2 holds the counters
        c.close()
        assert _config_check("--state", url).returncode == 0
    finally:
        srv.stop()
