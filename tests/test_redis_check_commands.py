"""The start-up check of the Redis server (engine/state/redis_check.py) tries every command the shared store uses,
read from the store's own code: a command a script calls is tried inside the check's script and named in its error
text, a command called directly is named there too. (The sorted-set commands of the MO parts' leases, TTL and PTTL
were not tried: an ACL user without @sortedset passed the check and every MO part then failed mid-traffic.)
The refusals themselves, on a real redis-server: tests/test_redis_ops.py."""
import re

from engine.state import redis_check

from .conftest import ROOT

STATE = ROOT / "engine" / "state"          # (the only code that talks to Redis)
SCRIPT_CALL = re.compile(r"redis\.p?call\('([A-Za-z]+)'")
# redis-py methods of the store's clients (self.redis, self.reader, follower.redis), as the commands they send
CLIENT_CALL = re.compile(r"\b(?:redis|reader)\.([a-z_]+)\(")
NOT_COMMANDS = {"call", "pcall", "pipeline"}          # Lua's, and a pipeline's commands are named by its methods


def _named(command) -> bool:
    return re.search(rf"\b{command}\b", redis_check.NEEDS) is not None


def _sources():
    return [(p, p.read_text()) for p in sorted(STATE.glob("*.py")) if p.name != "redis_check.py"]


def test_every_command_the_scripts_call_is_tried_and_named():
    used = {c.upper() for _, text in _sources() for c in SCRIPT_CALL.findall(text)}
    tried = set(re.findall(r"try\('([A-Z]+)'", redis_check.CHECK_LUA))
    assert {"ZADD", "ZRANGEBYSCORE", "PTTL", "TIME"} <= used, used      # (the scan finds the scripts)
    assert used - tried == set(), f"called in the store's scripts, not tried by the check: {sorted(used - tried)}"
    assert not [c for c in used if not _named(c)], f"not named in the check's error text: {sorted(used)}"


def test_every_command_called_directly_is_named():
    used = set()
    for _, text in _sources():
        for m in set(CLIENT_CALL.findall(text)) - NOT_COMMANDS:
            if m == "register_script":              # redis-py: EVALSHA, SCRIPT EXISTS before a pipeline, SCRIPT LOAD
                used |= {"EVALSHA", "SCRIPT EXISTS", "SCRIPT LOAD"}
            else:
                used.add(m.upper().replace("_", " "))
    assert {"XREAD", "TIME", "EVALSHA"} <= used, used
    missing = sorted(c for c in used if not _named(c))
    assert not missing, f"called directly, not named in the check's error text: {missing}"
