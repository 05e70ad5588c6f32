"""What mo_parts.py keeps in Redis: the keys of a message's parts (`keys_of`), the sorted set a stop leaves
(DUE), the Lua scripts that move a message between stored, being judged, recorded and waiting for its redelivery
(mo_parts.py's module text tells the story), how a part's text is stored (`stored_text`, `text_of`) and how a
message is named in DUE and to a sweep (`member_of`, `read_member`). No I/O."""
from __future__ import annotations

import hashlib
import os

import msgpack

from ..smpp_proxy.codec import decode, encode, pdu_concat
from ..smpp_proxy.codec.text import TwoReadings, Ucs2Octets

DUE = "tf:mo:due"       # messages a stop left waiting: [SMSC (mo_origin), first PDU, reading] -> when to judge (ms)

TAKEN = "tf:mo:taken"   # messages being judged: their parts' key -> when the taker's lease ends (ms)

# The server's clock (ms), which the leases are read on: each node's own put a node whose clock ran ahead of the
# taker's by the lease past it at once (a copy of a part there took over a message being written: judged twice).
NOW = r"""
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# KEYS[1]: the message's parts, KEYS[2]: its done mark, KEYS[3]: its wait mark (not recorded), KEYS[4]: TAKEN.
# The done mark is 'w' while the taker writes the message's command, '1' once it is recorded (DONE). The parts stay
# while it writes (DONE or PUTBACK removes them, and its TAKEN entry): a taker killed -9 before either left them
# nowhere, and the completing part's redelivery was answered ESME_RX_T_APPN until the mark expired, then judged as
# a fragment. A part that comes once the lease has ended (the server's clock, NOW, past its TAKEN score) takes the
# message over: judged again, whole (again 1); so does a sweep (TAKEOVER) of a message no part will come for again.
# While the mark is 'w' the wait key holds the take's token (TOKEN_LEN octets, new_token) and what a sweep needs to
# judge the message (`member`: the DUE member's form); DONE, PUTBACK and RENEW act only for the holder of the token
# (a taker cut off past its lease, taken over, then reaching the server again put back a message another had
# recorded: judged a third time), or on a message nothing is left of (its mark expired). An older process's take
# deletes the wait key (so a newer taker's token is no longer there), and never reads it while the mark is there.
MINE = r"""
local function mine(tok)
  local v = redis.call('GET', KEYS[3])
  return v ~= false and #tok > 0 and string.sub(v, 1, #tok) == tok
end
local function others()
  return redis.call('EXISTS', KEYS[2]) == 1 or redis.call('EXISTS', KEYS[3]) == 1 or redis.call('EXISTS', KEYS[1]) == 1
end
"""

# The take shared by ADD, TAKE and TAKEOVER: ARGV[1] KEEP in ms, ARGV[2] LEASE in ms, ARGV[3] the token and member.
TAKEN_BY = NOW + r"""
local function taken_by(keep, lease, by)
  local all = redis.call('HGETALL', KEYS[1])
  redis.call('SET', KEYS[3], by, 'PX', keep)
  redis.call('SET', KEYS[2], 'w', 'PX', keep)
  if redis.call('PTTL', KEYS[1]) < tonumber(keep) then
    redis.call('PEXPIRE', KEYS[1], keep)
  end
  redis.call('ZADD', KEYS[4], now + tonumber(lease), KEYS[1])
  return all
end
"""

# ADD: ARGV: part number, text, total, KEEP in ms, LEASE in ms, token and member. {2, mark}: judged already (or
# being: 'w'); {1, [n, text, ...], again}: this part completed it (again 0), or came for a message waiting to be
# recorded or whose taker's lease ended (again 1: judged before, its line a refusal or never written) (taken);
# {0}: stored (the parts kept KEEP from now, or longer when a stop left them waiting: DEFER).
ADD = TAKEN_BY + r"""
local done = redis.call('GET', KEYS[2])
if done then
  local due = redis.call('ZSCORE', KEYS[4], KEYS[1])
  if done == 'w' and due and tonumber(due) <= now and redis.call('EXISTS', KEYS[1]) == 1 then
    redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
    return {1, taken_by(ARGV[4], ARGV[5], ARGV[6]), 1}
  end
  return {2, done}
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local again = redis.call('EXISTS', KEYS[3])
if again == 1 or redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[3]) then
  return {1, taken_by(ARGV[4], ARGV[5], ARGV[6]), again}
end
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[4]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
end
return {0}
"""

# TAKE (a timer): ARGV: KEEP in ms, LEASE in ms, token and member. {1, [n, text, ...]}: the parts there were (taken,
# kept until DONE or PUTBACK as ADD's); {0}: none, the message waits for its redelivery (wait mark), or it is judged
# or being judged (done mark).
TAKE = TAKEN_BY + r"""
if redis.call('EXISTS', KEYS[3]) == 1 or redis.call('EXISTS', KEYS[1]) == 0 or redis.call('EXISTS', KEYS[2]) == 1 then
  return {0}
end
return {1, taken_by(ARGV[1], ARGV[2], ARGV[3])}
"""

# ENDED (a sweep): KEYS[1] TAKEN; ARGV[1]: at most how many. The messages whose taker's lease has ended.
ENDED = NOW + r"""
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
"""

# TAKEOVER (a sweep, for one message ENDED named): ARGV: KEEP in ms, LEASE in ms, token. A message whose taker's
# lease has ended, still being written ('w') with its parts there, taken as ADD takes it over: {1, [n, text, ...],
# member}; else {0} (taken over or renewed meanwhile, recorded, or taken by an older process, whose take says no
# member: a copy of a part still takes that one over), its TAKEN entry gone if nothing is left to take.
TAKEOVER = TAKEN_BY + r"""
local due = redis.call('ZSCORE', KEYS[4], KEYS[1])
if not due or tonumber(due) > now then return {0} end
if redis.call('GET', KEYS[2]) ~= 'w' or redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('ZREM', KEYS[4], KEYS[1])
  return {0}
end
local v = redis.call('GET', KEYS[3])
if not v or #v <= #ARGV[3] then return {0} end
local member = string.sub(v, #ARGV[3] + 1)
return {1, taken_by(ARGV[1], ARGV[2], ARGV[3] .. member), member}
"""

# DONE (the command recorded): the done mark '1' (its late parts, wherever they land, are acknowledged); its parts,
# token and TAKEN entry go (and the entries of takers that died whose parts have expired since). ARGV: KEEP in ms,
# token. 1: done; 0: not this taker's (taken over, and recorded or put back there, or being written there).
DONE = NOW + MINE + r"""
if not mine(ARGV[2]) and others() then return 0 end
redis.call('SET', KEYS[2], '1', 'PX', ARGV[1])
redis.call('DEL', KEYS[1], KEYS[3])
redis.call('ZREM', KEYS[4], KEYS[1])
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now - tonumber(ARGV[1]))
return 1
"""

# RENEW (every LEASE / 3 while the taker writes: a disk that stalls): its lease from now, its done mark, token and
# parts kept KEEP from now, if it is still being written and taken (TAKEN) by this taker: 1, else 0. ARGV: KEEP in
# ms, LEASE in ms, token. (Without it a copy of a part sent after the lease took the message over from a taker alive
# and still writing: judged and recorded twice; after KEEP the mark and the parts expired and the copy was a
# fragment.)
RENEW = NOW + MINE + r"""
if redis.call('GET', KEYS[2]) ~= 'w' or not mine(ARGV[3]) or not redis.call('ZSCORE', KEYS[4], KEYS[1]) then
  return 0
end
redis.call('ZADD', KEYS[4], now + tonumber(ARGV[2]), KEYS[1])
redis.call('PEXPIRE', KEYS[2], ARGV[1])
redis.call('PEXPIRE', KEYS[3], ARGV[1])
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return 1
"""

# PUTBACK (not recorded): ARGV: NOT_RECORDED_KEEP in ms, token, then n, text, ... 1: put back; 0: not this taker's
# (as DONE's).
PUTBACK = MINE + r"""
if not mine(ARGV[2]) and others() then return 0 end
redis.call('DEL', KEYS[2], KEYS[1])
redis.call('ZREM', KEYS[4], KEYS[1])
redis.call('SET', KEYS[3], '1', 'PX', ARGV[1])
if #ARGV > 2 then
  redis.call('HSET', KEYS[1], unpack(ARGV, 3))
end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
"""


# DEFER (a stop): KEYS[4] DUE; ARGV: how long the parts live (ms), when to judge it (ms), the DUE member. Only a message
# whose parts are there and that is not judged (nor being judged, nor waiting for a redelivery): 1, else 0.
DEFER = r"""
if redis.call('EXISTS', KEYS[2]) == 1 or redis.call('EXISTS', KEYS[3]) == 1 or redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[4], ARGV[2], ARGV[3])
return 1
"""

# CLAIM (a start): every DUE member with its time, taken.
CLAIM = r"""
local got = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
redis.call('DEL', KEYS[1])
return got
"""


def keys_of(key) -> list:
    d = hashlib.blake2b(repr(key).encode("utf-8", "surrogatepass"), digest_size=12).hexdigest()
    return keys_named(f"tf:{{mo:{d}}}")


def keys_named(parts: str) -> list:
    """The keys of the message whose parts' key is `parts` (a TAKEN member)."""
    return [parts, parts + ":done", parts + ":wait", TAKEN]


TOKEN_LEN = 17


def new_token() -> bytes:
    """A take's token (the wait key's first TOKEN_LEN octets while its taker writes): never '1', the wait mark."""
    return b"t" + os.urandom(8).hex().encode()


def done_mark(got) -> bytes:
    """ADD's done mark (b'1' from a server running an older script, which sent none)."""
    m = got[1] if len(got) > 1 else b"1"
    return m.encode() if isinstance(m, str) else m


def stored_text(text: str) -> bytes:
    """A part's text as stored in the message's hash. A text with two readings (codec.text.TwoReadings: UCS-2
    that may be Latin-1, the Asian codings) keeps both: NUL, the first reading's length in octets, ':', then
    both readings (stored as its str, 'shown\nmeant', the joined parts were one reading's line break away from
    the other's: a 'DK DNC' in two parts under data_coding 0x0E read 'DK D\nDK DNC\nNC', a syntax error, the
    registration lost). Broken UCS-2 (codec.text.Ucs2Octets, TwoReadings.octets) keeps its octets (concat.joined
    reads them joined too): STX, their length, ':', them, then its text as above. A plain text that starts with NUL,
    SOH or STX is stored behind an SOH."""
    o = getattr(text, "octets", None)
    if o is not None:
        return b"\x02%d:" % len(o) + o + stored_text(TwoReadings(text.shown, text.meant) if type(text) is TwoReadings
                                                      else str(text))
    if type(text) is TwoReadings:
        shown = text.shown.encode("utf-8", "surrogatepass")
        return b"\x00%d:" % len(shown) + shown + text.meant.encode("utf-8", "surrogatepass")
    b = text.encode("utf-8", "surrogatepass")
    return b"\x01" + b if b[:1] in (b"\x00", b"\x01", b"\x02") else b


def text_of(b: bytes) -> str:
    """stored_text's inverse."""
    if b[:1] == b"\x02":
        n, sep, rest = b[1:].partition(b":")
        if sep and n.isdigit() and int(n) <= len(rest):
            t, o = text_of(rest[int(n):]), rest[:int(n)]
            return TwoReadings(t.shown, t.meant, o) if type(t) is TwoReadings else Ucs2Octets(t, o)
        # (not this format: a plain text starting with STX as a process before it stored one, unescaped, in a
        # rolling upgrade sharing Redis: read as written)
    if b[:1] == b"\x00":
        n, _, rest = b[1:].partition(b":")
        n = int(n)
        return TwoReadings(rest[:n].decode("utf-8", "surrogatepass"), rest[n:].decode("utf-8", "surrogatepass"))
    return (b[1:] if b[:1] == b"\x01" else b).decode("utf-8", "surrogatepass")


def texts_of(flat) -> dict:
    """HGETALL's [n, text, ...] -> {part number: text}."""
    return {int(flat[i]): text_of(flat[i + 1]) for i in range(0, len(flat), 2)}


def member_of(key, pdu, reading) -> bytes:
    """A message as DUE names it, and as its taker's token is followed by (TAKEOVER): its origin (mo_origin), a
    part's PDU (sender, destination, reference) and its reading."""
    return msgpack.packb([list(key[0]), encode(pdu), reading])


def read_member(member) -> tuple:
    """member_of's inverse: (key, pdu, reading)."""
    addr, raw, reading = msgpack.unpackb(member)
    pdu = decode(raw)
    ref, total, _ = pdu_concat(pdu)
    return (tuple(addr), pdu.source_addr, pdu.destination_addr, ref, total), pdu, reading
