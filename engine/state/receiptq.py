"""The server side of handed-over receipts (receipt_handover.py): an account's list of receipts held for it
(`tf:{a:<account>}:rq`, newest on the left) and its claims (`tf:{a:<account>}:rqc`, a field per
process), both in the account's hash slot like pool.py's keys, and the scripts that use them."""
from __future__ import annotations

from .pool import _keys


# KEYS[1]: the account's list, KEYS[2]: this call's token key; ARGV[1]: its bound; ARGV[2..]: raw deliver_sm,
# oldest first. Returns how many it took (the first ones); the rest stay with the caller. The answer is left under
# the token for 60 s, and a token already there (the call asked about by RESOLVE: -1) means do nothing: a
# call whose answer never came (a timeout, Redis paused) and that runs late pushes nothing twice.
PUSH = r"""
local done = redis.call('GET', KEYS[2])
if done then return tonumber(done) end
local n = math.max(0, math.min(tonumber(ARGV[1]) - redis.call('LLEN', KEYS[1]), #ARGV - 1))
if n > 0 then redis.call('LPUSH', KEYS[1], unpack(ARGV, 2, n + 1)) end
redis.call('SET', KEYS[2], n, 'EX', 60)
return n
"""

# KEYS[1]: the token key of a PUSH whose answer never came. Returns how many it took if it ran, else -1, and marks
# the token so that it never runs after this answer.
RESOLVE = r"""
local done = redis.call('GET', KEYS[1])
if done then return tonumber(done) end
redis.call('SET', KEYS[1], -1, 'EX', 60)
return -1
"""

# KEYS[1]: the account's list, KEYS[2]: its claims (a field per process). ARGV[1]: this process,
# ARGV[2]: the number of its last claim whose answer it received ("" if none), ARGV[3]: this claim's
# number, ARGV[4]: how many it can take, ARGV[5]: STALE in ms. A claim is msgpack [number, ms, [raw...]].
# Returns what this process is to deliver, oldest first: its previous claim again when that answer was
# lost, else up to ARGV[4] from the list.
PULL = r"""
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local mine = redis.call('HGET', KEYS[2], ARGV[1])
if mine then
  local c = cmsgpack.unpack(mine)
  if c[1] ~= ARGV[2] then
    redis.call('HSET', KEYS[2], ARGV[1], cmsgpack.pack({ARGV[3], now, c[3]}))
    return {1, c[3]}
  end
  redis.call('HDEL', KEYS[2], ARGV[1])
end
local all = redis.call('HGETALL', KEYS[2])
for i = 1, #all, 2 do
  local c = cmsgpack.unpack(all[i + 1])
  if now - c[2] > tonumber(ARGV[5]) then
    for j = #c[3], 1, -1 do redis.call('RPUSH', KEYS[1], c[3][j]) end
    redis.call('HDEL', KEYS[2], all[i])
  end
end
local items = redis.call('RPOP', KEYS[1], tonumber(ARGV[4]))
if not items then return {0, {}} end
redis.call('HSET', KEYS[2], ARGV[1], cmsgpack.pack({ARGV[3], now, items}))
return {0, items}
"""

# KEYS[1]: the account's claims; ARGV[1]: this process; ARGV[2]: the claim's number. Deletes that claim.
ACK = r"""
local mine = redis.call('HGET', KEYS[1], ARGV[1])
if mine and cmsgpack.unpack(mine)[1] == ARGV[2] then
  redis.call('HDEL', KEYS[1], ARGV[1])
  return 1
end
return 0
"""


def queue_key(acct: str) -> str:
    return _keys(acct, "rq")[0]


def claims_key(acct: str) -> str:
    return _keys(acct, "rqc")[0]


def push_token_key(acct: str, token: str) -> str:
    """A hand-over call's token, in the account's hash slot."""
    return _keys(acct, "rh:" + token)[0]
