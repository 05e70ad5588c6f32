"""The server side of the shared counters (engine/state/redis_store.py): the batch script
the store sends once per event-loop iteration, and how a counter is named in Redis.

Value layouts (all little-endian uint32): a count key holds its last `limit` stamps, oldest
first (12 bytes for a cap of 3; counted at delivery, its last 2 * limit in time order, some perhaps
ahead of the clock, and the key lives a window past the newest); a distinct key its last limit+1 (value fingerprint, second)
pairs, least recently seen first. These are the rows of rules/counters.py's flat tables, so a
count read from Redis is the count MemoryCounters would give for the same commits.

Keys (`tf:c:{<16 hex>}`): the hash tag is a 64-bit digest of the namespace and the stable key
(engine/state/journalled.stable_key), so the key never carries a number or a text. Every key
expires one window (+ TTL_SLACK) after its newest stamp (the last commit's second, or later: counted at
delivery, or a commit after the clock stepped back, stamped at the key's newest second); "forever" counters never
expire.
"""
from __future__ import annotations

import hashlib

TTL_SLACK = 60              # seconds a key outlives its window
# seconds a batch's answer is kept under its token (tf:b:<token>) for RedisStore's reconcile after a timeout;
# it runs at the first call after the back-off (at most 5 s), so a minute is plenty: ~60 B a batch
BATCH_TTL = 60
# after the server lost its keys, how long a message with an enforced op waits for every process to re-seed the
# counts its mirror holds (redis_reseed.py): a process learns of the loss at its next batch or its watch (every
# RESEED_WATCH s); each chunk of re-seeded counts sent starts it again, up to RESEED_GRACE_MAX_MS after the loss was
# found (a process re-seeds ~50,000 keys a second: messages under a cap are not held for ever behind a large mirror)
RESEED_GRACE_MS = 1000
RESEED_GRACE_MAX_MS = 5000

# The batch script. KEYS: the counter keys (ARGV[3] of them), then the streams that ride with
# the batch (the event stream, events.py; message ids, receipts.py). ARGV[2]: TTL slack; then per
# stream a blob (may be empty), the milliseconds it keeps (TRIM_STREAM) and the process id; then the batch's
# token, the keyspace epoch the caller knows and '1' when it carries re-seeded counts (both optional).
# ARGV[1]: msgpack list of messages, each a list of ops
# {key index, mode (0 count, 1 distinct, 2 remove: a count taken back, 3 count at delivery; 4, 5 re-seeded rows:
# `reseed`), limit, window (-1 = forever), second (mode 3: the delivery's), enforce?, value fingerprint (mode 3: the
# clock's second) [, mode 3: a second one stamp of which the measure leaves out: a replace_sm's replaced message,
# Message.replacing; the row keeps it]}.
# Returns one string of comma-separated integers (parsed in C, not as a RESP array of thousands of items), after a
# head when the keyspace epoch is not the caller's ('E<epoch>;') or the re-seed grace runs ('W<ms>;'): per message,
# committed (1, 0; 2: waits for the grace's end) and then each op's count (count mode:
# stamps within the window before this one; mode 3: the most in one window holding the delivery, or
# the limit when the row has no room (rules/counters.py count_at); distinct mode: distinct values within
# the window including this one).
# A stream's MINID is its newest entry's milliseconds less what it keeps, on the server's clock (the entry ids'):
# it was the client's wall clock less KEEP, so a process whose clock was ahead of the server's by more than KEEP (a
# step forward, NTP on one node) trimmed the stream whole at every XADD, its own new entry too (published to no one),
# and one whose clock was behind (a step back) trimmed nothing for as long (a day back: a day of message ids, ~6 GB
# at 5k/s); found by the clock-step probe.
TRIM_STREAM = r"""
local function trim_stream(key, id, keep_ms)
  local ms = tonumber(string.match(id, '^(%d+)'))
  redis.call('XTRIM', key, 'MINID', '~', string.format('%.0f-0', ms - tonumber(keep_ms)))
end
"""

LUA = TRIM_STREAM + r"""
-- the batch's token (after the streams' arguments): a batch already settled by RECONCILE (its caller timed out and
-- asked afterwards whether it ran) is never run late; the answer is kept under it for RECONCILE
local ti = 4 + 3 * (#KEYS - tonumber(ARGV[3]))
local tok = 'tf:b:' .. ARGV[ti]
if redis.call('EXISTS', tok) == 1 then return '' end
-- the keyspace mark (redis_check.KEYSPACE, its value the keyspace's epoch): gone, the server lost its keys since it
-- was set (restarted without persistence, FLUSHALL or FLUSHDB, keys evicted); set again, to this batch's token, and
-- the re-seed grace begins. The epoch the caller knew (ARGV[ti + 1]; none: a caller that does not follow it) other
-- than the mark's: the answer's head says the mark's, 'E<epoch>;' (redis_reseed.py: every process re-seeds the
-- counts its mirror holds). ARGV[ti + 2] '1': the batch carries re-seeded counts, the grace runs on (at most
-- RESEED_GRACE_MAX_MS after the loss was found: tf:reseed:cap).
local known, head = ARGV[ti + 1], ''
local mark = redis.call('GET', 'tf:keyspace')
if not mark then
  mark = ARGV[ti]
  redis.call('SET', 'tf:keyspace', mark)
  -- (a caller that knows no epoch, '': one started while the server was away, cannot tell a fresh server from one
  -- that lost the other processes' counts: the grace begins all the same)
  if known then
    redis.call('SET', 'tf:reseed', '1', 'PX', RESEED_GRACE_MS)
    redis.call('SET', 'tf:reseed:cap', '1', 'PX', RESEED_GRACE_MAX_MS)
  end
end
if ARGV[ti + 2] == '1' then
  local cap = redis.call('PTTL', 'tf:reseed:cap')
  if cap > 0 then redis.call('SET', 'tf:reseed', '1', 'PX', math.min(cap, RESEED_GRACE_MS)) end
end
if known and mark ~= known then head = 'E' .. mark .. ';' end
-- within the grace a message with an enforced op waits (answered 2, nothing committed): the other processes'
-- counts are not back yet; the answer's head says how long, 'W<ms>;'
local grace = 0
if known then grace = redis.call('PTTL', 'tf:reseed') end
if grace > 0 then head = head .. 'W' .. grace .. ';' end
local msgs = cmsgpack.unpack(ARGV[1])
local out = {}
local function parse(v, step)
  local r = {}
  if v then
    local pos = 1
    while pos + step - 1 <= #v do
      local a, b
      if step == 4 then a, pos = struct.unpack('<I4', v, pos); r[#r + 1] = a
      else a, b, pos = struct.unpack('<I4I4', v, pos); r[#r + 1] = {a, b} end
    end
  end
  return r
end
local cache = {}                          -- key index -> parsed value, kept current within the batch
local function load(op)
  local c = cache[op[1]]
  if c == nil then
    c = parse(redis.call('GET', KEYS[op[1]]), (op[2] == 1 or op[2] == 5) and 8 or 4)
    cache[op[1]] = c
  end
  return c
end
-- `pend`: what this message's earlier ops put on the same key (count: how many; distinct: their value
-- fingerprints), measured as if committed: one message's ops (a submit_multi's destinations) each see the
-- ones before it, as one process judging them in order does
local function measure(op, pend)
  local distinct, limit, window, now = op[2], op[3], op[4], op[5]
  if distinct == 2 or distinct >= 4 then return 0 end
  local hz = 0
  if window >= 0 then hz = now - window end
  local p = pend[op[1]]
  if distinct == 0 then
    local st = load(op)
    local n = p or 0
    for i = 1, #st do if st[i] > hz then n = n + 1 end end
    pend[op[1]] = (p or 0) + 1
    return n
  end
  if distinct == 3 then
    -- stamps in time order, some ahead of the clock (op[7]); this message's earlier ops on the key as at `now`
    local st = load(op)
    local q = p or 0
    pend[op[1]] = q + 1
    -- no room: the stamps still to count (newer than clock - window), with this message's earlier ops on
    -- the key, fill 2 * limit (the whole row: a stamp left out below stays in it)
    if window >= 0 then
      local live = 0
      for i = 1, #st do if st[i] > op[7] - window then live = live + 1 end end
      if live + q >= 2 * limit then return limit + q end
    end
    if op[8] then
      -- a replacement's: one stamp of the replaced message's second left out of the count
      local all, gone = st, false
      st = {}
      for i = 1, #all do
        if not gone and all[i] == op[8] then gone = true else st[#st + 1] = all[i] end
      end
    end
    if window < 0 then return #st + q end
    local function within(x)
      local c = 0
      for i = 1, #st do if st[i] > x - window and st[i] <= x then c = c + 1 end end
      return c
    end
    local best = within(now)
    for i = 1, #st do
      if st[i] > now and st[i] < now + window then
        local c = within(st[i])
        if c > best then best = c end
      end
    end
    return best + q
  end
  local pr = load(op)
  local vals, n = {}, 0
  for i = 1, #pr do
    if pr[i][2] > hz and not vals[pr[i][1]] then vals[pr[i][1]] = true; n = n + 1 end
  end
  if p == nil then p = {}; pend[op[1]] = p end
  for v, _ in pairs(p) do
    if not vals[v] then vals[v] = true; n = n + 1 end
  end
  if not vals[op[7]] then n = n + 1 end
  p[op[7]] = true
  return n
end
local function store(op, body, newest)
  -- the key outlives its newest stamp by the window (a row counted at delivery, read by a count at submission
  -- after a rule changed back, may hold stamps ahead of the clock)
  local key, window = KEYS[op[1]], op[4]
  if window >= 0 then redis.call('SET', key, body, 'EX', window + math.max(0, newest - op[5]) + tonumber(ARGV[2]))
  else redis.call('SET', key, body) end
end
-- a re-seeded row (redis_reseed.py): mode 4 a count's stamps (op[7] 1: counted at delivery, room 2 * limit), mode 5
-- a distinct counter's (value, second) pairs, as a process's mirror holds them (its own counts), op[5] the clock.
-- Merged, never added: per second the most stamps of the row's and the seed's (a count), per value the later second
-- (distinct), so a seed sent twice, or holding counts the server took since the loss, counts once; two processes'
-- counts of one key in one second count as one.
local function reseed(op, cur)
  local limit, window, clock, rows = op[3], op[4], op[5], op[8]
  local kept, parts = {}, {}
  if op[2] == 4 then
    local have = {}
    for j = 1, #cur do have[cur[j]] = (have[cur[j]] or 0) + 1; kept[#kept + 1] = cur[j] end
    local want = {}
    for j = 1, #rows do want[rows[j]] = (want[rows[j]] or 0) + 1 end
    for s, n in pairs(want) do
      for _ = (have[s] or 0) + 1, n do kept[#kept + 1] = s end
    end
    table.sort(kept)
    local room = op[7] == 1 and 2 * limit or limit
    while #kept > room do table.remove(kept, 1) end
    for j = 1, #kept do parts[#parts + 1] = struct.pack('<I4', kept[j]) end
  else
    local at = {}
    for j = 1, #cur do at[cur[j][1]] = j; kept[j] = {cur[j][1], cur[j][2]} end
    for j = 1, #rows do
      local v, s = rows[j][1], rows[j][2]
      if at[v] == nil then kept[#kept + 1] = {v, s}; at[v] = #kept
      elseif kept[at[v]][2] < s then kept[at[v]][2] = s end
    end
    table.sort(kept, function(a, b) return a[2] < b[2] end)
    while #kept > limit + 1 do table.remove(kept, 1) end
    for j = 1, #kept do parts[#parts + 1] = struct.pack('<I4I4', kept[j][1], kept[j][2]) end
  end
  cache[op[1]] = kept
  if #kept == 0 then return end
  local newest = op[2] == 4 and kept[#kept] or kept[#kept][2]
  if window < 0 then redis.call('SET', KEYS[op[1]], table.concat(parts)); return end
  local ex = math.max(newest - clock, 0) + window + tonumber(ARGV[2])
  local ttl = redis.call('TTL', KEYS[op[1]])
  redis.call('SET', KEYS[op[1]], table.concat(parts), 'EX', math.max(ex, ttl))
end
for m = 1, #msgs do
  local ops = msgs[m]
  local counts, ok, pend = {}, 1, {}
  for i = 1, #ops do
    local op = ops[i]
    local n = measure(op, pend)
    counts[i] = n
    local over
    if op[2] == 0 or op[2] == 3 then over = n + 1 > op[3] else over = n > op[3] end
    if over and op[6] == 1 then ok = 0 end
    if grace > 0 and op[6] == 1 then ok = 2 end
  end
  if ok == 2 then
    for i = 1, #counts do counts[i] = 0 end
  elseif ok == 1 then
    for i = 1, #ops do
      local op = ops[i]
      local cur = load(op)                  -- current: an earlier op of this batch may share the key
      local limit, now = op[3], op[5]
      local parts = {}
      if op[2] >= 4 then
        reseed(op, cur)
      elseif op[2] == 2 then
        -- a count taken back: one stamp of exactly its second, if there is one (rules/counters.py remove)
        local kept, gone = {}, false
        for j = 1, #cur do
          if not gone and cur[j] == now then gone = true else kept[#kept + 1] = cur[j] end
        end
        cache[op[1]] = kept
        if gone then
          for j = 1, #kept do parts[#parts + 1] = struct.pack('<I4', kept[j]) end
          if #kept > 0 then redis.call('SET', KEYS[op[1]], table.concat(parts), 'KEEPTTL')
          else redis.call('DEL', KEYS[op[1]]) end
        end
      elseif op[2] == 3 then
        -- in time order, room for 2 * limit: the oldest leave a full row only when out of every window to come
        -- (not newer than clock - window; a live one stays, as after a lowered limit the row may hold more)
        local kept = {}
        for j = 1, #cur do kept[#kept + 1] = cur[j] end
        local at = #kept + 1
        while at > 1 and kept[at - 1] > now do at = at - 1 end
        table.insert(kept, at, now)
        local drop = 0
        while #kept - drop > 2 * limit and (op[4] < 0 or kept[drop + 1] <= op[7] - op[4]) do drop = drop + 1 end
        if drop > 0 then
          local rest = {}
          for j = drop + 1, #kept do rest[#rest + 1] = kept[j] end
          kept = rest
        end
        cache[op[1]] = kept
        for j = 1, #kept do parts[#parts + 1] = struct.pack('<I4', kept[j]) end
        -- the key outlives its newest stamp (perhaps ahead of the clock) by the window
        local ahead = math.max(0, kept[#kept] - op[7])
        if op[4] >= 0 then
          redis.call('SET', KEYS[op[1]], table.concat(parts), 'EX', op[4] + ahead + tonumber(ARGV[2]))
        else redis.call('SET', KEYS[op[1]], table.concat(parts)) end
      elseif op[2] == 0 then
        local last = cur[#cur] or 0
        if now < last then now = last end
        local kept = {}
        for j = math.max(1, #cur - limit + 2), #cur do kept[#kept + 1] = cur[j] end
        kept[#kept + 1] = now
        cache[op[1]] = kept
        for j = 1, #kept do parts[#parts + 1] = struct.pack('<I4', kept[j]) end
      else
        local last, keep = 0, {}
        for j = 1, #cur do
          if cur[j][1] ~= op[7] then keep[#keep + 1] = cur[j] end
          if cur[j][2] > last then last = cur[j][2] end
        end
        if now < last then now = last end
        keep[#keep + 1] = {op[7], now}
        local kept = {}
        for j = math.max(1, #keep - limit), #keep do kept[#kept + 1] = keep[j] end
        cache[op[1]] = kept
        for j = 1, #kept do parts[#parts + 1] = struct.pack('<I4I4', kept[j][1], kept[j][2]) end
      end
      if op[2] == 0 then store(op, table.concat(parts), cache[op[1]][#cache[op[1]]])
      elseif op[2] == 1 then store(op, table.concat(parts), now) end     -- (its newest second: the clock's, or later)
    end
  end
  out[#out + 1] = ok
  for i = 1, #counts do out[#out + 1] = counts[i] end
end
-- the updates of this loop iteration for each stream (history and call durations, message ids), the stream
-- then trimmed to the milliseconds it keeps (ARGV[a + 1]) before its new entry's id: the server's time, never
-- a client's (trim_stream)
local nk = tonumber(ARGV[3])
for j = nk + 1, #KEYS do
  local a = 4 + 3 * (j - nk - 1)
  if #ARGV[a] > 0 then
    trim_stream(KEYS[j], redis.call('XADD', KEYS[j], '*', 'p', ARGV[a + 2], 'd', ARGV[a]), ARGV[a + 1])
  end
end
local res = table.concat(out, ',')
redis.call('SET', tok, res, 'EX', BATCH_TTL)
return head .. res
"""

# Whether a batch whose answer never came (a timeout: the server may have run it, or may run it later, from a
# connection the process gave up on) ran: its answer if it did; if not, a mark under its token that stops it from
# ever running ('-'). KEYS[1]: tf:b:<token>.
RECONCILE = r"""
local v = redis.call('GET', KEYS[1])
if v then return v end
redis.call('SET', KEYS[1], '-', 'EX', BATCH_TTL)
return '-'
"""
# The keyspace mark looked for outside a batch (redis_check.check_server at start, RedisStore's watch while idle):
# gone, set to ARGV[1] and the re-seed grace begun. Returns the mark. KEYS: tf:keyspace, tf:reseed.
MARK = r"""
local mark = redis.call('GET', KEYS[1])
if mark then return mark end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SET', KEYS[2], '1', 'PX', RESEED_GRACE_MS)
redis.call('SET', KEYS[2] .. ':cap', '1', 'PX', RESEED_GRACE_MAX_MS)
return ARGV[1]
"""
LUA, RECONCILE, MARK = (x.replace("BATCH_TTL", str(BATCH_TTL)).replace("RESEED_GRACE_MAX_MS", str(RESEED_GRACE_MAX_MS))
                        .replace("RESEED_GRACE_MS", str(RESEED_GRACE_MS)) for x in (LUA, RECONCILE, MARK))


_M64 = (1 << 64) - 1
_ns_digest: dict = {}


def counter_key(ns: str, key) -> str:
    """The Redis key of (rule namespace, stable key): `tf:c:{<counter_hash>}`."""
    return f"tf:c:{{{counter_hash(ns, key):016x}}}"


def counter_hash(ns: str, key) -> int:
    """The Redis key of (rule namespace, stable key): a 64-bit digest, the same in every
    process and Python version. The namespace's BLAKE2b digest (cached) seeds it and each int
    of the stable key is folded in with the splitmix64 finaliser (a full avalanche per word),
    so two keys share a Redis key with probability ~2^-64 per pair; ~1 µs against ~5 µs for
    a BLAKE2b of the key's repr."""
    h = _ns_digest.get(ns)
    if h is None:
        h = _ns_digest[ns] = int.from_bytes(hashlib.blake2b(ns.encode(), digest_size=8).digest(), "little")
    for x in (key if type(key) is tuple else (key,)):
        h = (h ^ x) & _M64
        h = ((h ^ (h >> 30)) * 0xBF58476D1CE4E5B9) & _M64
        h = ((h ^ (h >> 27)) * 0x94D049BB133111EB) & _M64
        h ^= h >> 31
    return h
