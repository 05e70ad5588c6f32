"""A bounded-time fuzzer of the C extensions' entry points against their pure-Python twins (no I/O, no network).

    python -m tests.fuzz.c_fuzz [--seconds 60] [--seed N] [--target sip|text|slots|stamps|numbers|all]

Meant to be run on a sanitizer build (tests/fuzz/README.md, "Sanitizer build"): the inputs go to the C functions
directly, with the edges a peer can reach in mind.

- sip: engine/sip_screen/_sipfast.c's relay_response, in_dialog, split_head, parse_request, check_plain, to_values
  and to_tag (the INVITE's parse and check, the 200's To tag: each against its Python twin) on mutations of the SIP
  seeds of tests/test_sip_fuzz.py and on targeted ones (edge numbers in Content-Length, CSeq and ports; long runs of one
  separator; values at the host, key and size bounds; 30-200 header lines; 30-64 Via parameters; odd source
  addresses and ports), each buffer passed in a malloc block of exactly its size (a bytes object carries a NUL
  after its data, where a one-byte over-read goes unseen). A C answer must be None or the Python fast path's.
- text: engine/_textnorm.c (template mask and digest, fold, content digest, host runs) and engine/ml/_fastfeat.c
  (normalise, feature ids, language, decision) on text at the score cache's 480 characters and the classifier's
  2048, Vietnamese with combining marks, zero-width characters, surrogates, NULs, non-BMP and separator runs;
  each compared with textnorm's and features.py's Python paths.
- slots: engine/rules/_slotsfast.c against the Python tables (tests/test_slots_fast.py's `run`) with odd keys
  (huge and negative ints, bools, surrogates, bytes, None, nested and 8- or 9-long tuples), tables at max_keys 1-64,
  hashes homing at the index's end; answers, exceptions and dumps must be the same.
- stamps: engine/_stamps.c's posix and second_key against stamps.py's Python forms (tests/fuzz/c_fuzz_stamps.py).
- numbers: engine/_numbers.c's bare_digits against numbers.py's Python read, and normalise_number with each, on
  addresses of 0-40 characters (ASCII and other Unicode digits, the 18/19-digit bound, signs, spaces, NULs, letters)
  under every TON.

A failure raises AssertionError naming the input. Iterations are deterministic for a seed.
"""
from __future__ import annotations

import argparse
import ctypes
import random
import time

# ------------------------------------------------------------------ sip


def exact(data: bytes):
    """`data` in a buffer of exactly its length (ctypes: its own malloc block beyond 16 bytes), and the owner."""
    arr = (ctypes.c_char * max(len(data), 17))()
    ctypes.memmove(arr, data, len(data))
    return memoryview(arr).cast("B")[:len(data)], arr


NUMS = [b"0", b"00000", b"1", b"65535", b"65536", b"99999", b"999999", b"4294967296", b"4294967301", b"2147483647",
        b"2147483648", b"9223372036854775807", b"9223372036854775808", b"18446744073709551616", b"000000000",
        b"0000000001", b"999999999", b"9999999999", b"-1", b"+5", "²".encode(), b"5060 ", b" 5060"]
SEPS = [b";", b",", b":", b"@", b"<", b">", b'"', b"\\", b"[", b"]", b"=", b" ", b"\t", b"\x00", b"\r", b"\n"]
SPORTS = [5080, 0, 1, 65535, 65536, -1, 2 ** 31 - 1, 2 ** 31, -2 ** 31, 2 ** 63 - 1, -2 ** 63]
IPS = ["127.0.0.1", "::1", "10.0.0.3", "a" * 64, "b" * 65, "", "1.2.3.4%eth0", "ff02::1%1", "é", "[::1]"]


def _numbers(b: bytes, rnd) -> bytes:
    starts = [i for i in range(len(b)) if 48 <= b[i] <= 57 and (i == 0 or not 48 <= b[i - 1] <= 57)]
    if not starts:
        return b
    i = j = rnd.choice(starts)
    while j < len(b) and 48 <= b[j] <= 57:
        j += 1
    return b[:i] + rnd.choice(NUMS) + b[j:]


def _separators(b: bytes, rnd) -> bytes:
    i = rnd.randrange(len(b) + 1)
    return b[:i] + rnd.choice(SEPS) * rnd.choice([2, 3, 31, 32, 33, 64, 65, 300, 1000]) + b[i:]


def _long_value(b: bytes, rnd) -> bytes:
    i = rnd.randrange(len(b) + 1)
    n = rnd.choice([63, 64, 65, 255, 256, 298, 299, 300, 301, 600, 1199, 1200, 1201, 4000, 7990, 8000, 8001])
    return b[:i] + bytes([rnd.choice(b"a1.-")]) * n + b[i:]


def _header_lines(b: bytes, rnd) -> bytes:
    he = b.find(b"\r\n\r\n")
    line = rnd.choice([b"X: y", b"v: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKa", b"Route: <sip:127.0.0.1:5060;transport=udp;lr>",
                       b"l: 0", b"i: c", b"a:", b"To: <sip:a@b>;tag=1"])
    return b if he < 0 else b[:he] + (b"\r\n" + line) * rnd.choice([30, 31, 32, 33, 63, 64, 65, 200]) + b[he:]


def _via_params(b: bytes, rnd) -> bytes:
    i = b.find(b";branch=")
    return b if i < 0 else b[:i] + b"".join(b";p%d" % k for k in range(rnd.choice([30, 31, 32, 33, 64]))) + b[i:]


def _to_size(b: bytes, rnd) -> bytes:
    """an X-Pad header making the message exactly a size bound long"""
    he = b.find(b"\r\n\r\n")
    need = rnd.choice([1199, 1200, 1201, 1300, 1301, 7999, 8000, 8001]) - len(b) - len(b"\r\nX-Pad: ")
    return b if he < 0 or need < 0 else b[:he] + b"\r\nX-Pad: " + b"p" * need + b[he:]


def _fix_length(b: bytes) -> bytes:
    """Content-Length set to the body's, so the message goes past that check"""
    he = b.find(b"\r\n\r\n")
    for name in (b"Content-Length:", b"\r\nl:"):
        i = b.find(name)
        if 0 <= i < he:
            e = b.find(b"\r\n", i + len(name))
            nb = b[:i + len(name)] + b" %d" % (len(b) - he - 4) + b[e:]
            return nb if e <= he and len(nb) - nb.find(b"\r\n\r\n") - 4 == len(b) - he - 4 else b
    return b


def sip(seconds: float, seed: int) -> dict:
    from engine.sip_screen import _sipfast, codec, fastpath
    from tests.sip_helpers import UAC
    from tests.test_sip_fuzz import OUR, REQUESTS, RESPONSES, SEEDS, mutate
    rnd = random.Random(seed)
    seeds = list(dict.fromkeys(SEEDS + RESPONSES + REQUESTS))
    muts = [_numbers, _separators, _long_value, _header_lines, _via_params, _to_size]
    n = {"inputs": 0, "relayed": 0, "in_dialog": 0, "split": 0}
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        data = rnd.choice(seeds)
        for _ in range(rnd.randrange(1, 4)):
            data = rnd.choice(muts)(data, rnd) if rnd.random() < 0.5 else mutate(data, rnd, 1)
        if rnd.random() < 0.7:
            data = _fix_length(data)
        mv, _keep = exact(data)
        r = _sipfast.relay_response(mv, OUR)
        if r is not None:
            n["relayed"] += 1
            assert r == fastpath.py_relay_response(data, OUR), ("relay_response", data)
        ip = rnd.choice(IPS) if rnd.random() < 0.3 else UAC[0]
        sport = rnd.choice(SPORTS) if rnd.random() < 0.3 else UAC[1]
        hop = rnd.choice([None, ("10.0.0.9", 5070, "UDP")])
        c = _sipfast.in_dialog(mv, ip, sport, OUR, hop)
        if c is not None:
            n["in_dialog"] += 1
            py = fastpath.py_in_dialog(data, ip, sport, OUR, hop)
            assert py is not None and py is not fastpath.FULL_PARSE and c == py.astuple(), ("in_dialog", data, ip, sport)
        hmv, _keep2 = exact(data.split(b"\r\n\r\n", 1)[0])
        n["split"] += _sipfast.split_head(hmv, codec._CANON_MEMO, codec._canon_memo) is not None
        n["parsed"] = n.get("parsed", 0) + _parse_and_check(data, mv)
        tos = _sipfast.to_values(mv)
        he = data.find(b"\r\n\r\n")
        assert tos == (None if he < 0 else fastpath._TO.findall(data, 0, he + 2)), ("to_values", data)
        for v in tos or ():
            t = _sipfast.to_tag(v)
            assert t is None or t == _python_only(fastpath.response_to_tag, b"SIP/2.0 200 OK\r\nTo: " + v + b"\r\n\r\n"), \
                ("to_tag", v)
        n["inputs"] += 1
    return n


def _python_only(f, *a):
    """f(*a) with every C twin of the INVITE's parse and check off (grammar, checks, codec, message, fastpath,
    routing)."""
    from engine.sip_screen import checks, codec, fastpath, grammar, message, routing
    saved = [(m, k, getattr(m, k)) for m, k in ((grammar, "_c_uri"), (grammar, "_c_name_addr"), (grammar, "_c_via"),
                                                (checks, "_c_check"), (codec, "_c_parse_request"), (message, "_c_join"),
                                                (message, "_c_index"), (fastpath, "_c_to_tag"), (fastpath, "_c_to_values"),
                                                (routing, "_c_stamp"))]
    for m, k, _ in saved:
        setattr(m, k, None)
    try:
        return f(*a)
    except Exception as e:                              # noqa: BLE001 (compared, not hidden)
        return e
    finally:
        for m, k, v in saved:
            setattr(m, k, v)


def _parse_and_check(data: bytes, mv) -> int:
    """parse_request and check_plain (_sipmsg.h, _sipcheck.h) on `data` against the Python parse and check: a C
    answer must be theirs (the same SipMessage slots and bytes; the same state check_request leaves)."""
    from engine.sip_screen import _sipfast, checks, codec, message
    m = _sipfast.parse_request(mv, codec._CANON_MEMO, codec._canon_memo)
    if m is None:
        return 0
    py = _python_only(codec.parse_datagram, data)
    assert isinstance(py, message.SipMessage), ("parse_request", data, py)
    slots = message.SipMessage.__slots__
    assert [getattr(m, k) for k in slots] == [getattr(py, k) for k in slots]
    assert m.to_bytes() == _python_only(py.to_bytes), ("join_message", data)
    if m.method != "ACK" and _sipfast.check_plain(m.method, m.uri, m.headers) is not None:
        assert checks.check_request(m) is None and _python_only(checks.check_request, py) is None, ("check_plain", data)
        assert (m.first, m.vias, m.ruri) == (py.first, py.vias, py.ruri), ("check_plain", data)
    return 1


# ------------------------------------------------------------------ text

VI = "ăâđêôơưạảấầẩẫậắằẳẵặẹẻẽếềểễệỉịọỏốồổỗộớờởỡợụủứừửữựỳỵỷỹĐĂÂÊÔƠƯ"
COMB = "\u0300\u0301\u0303\u0309\u0323\u031b\u0306\u0302"
ZW = "\u200b\u200c\u200d\u2060\ufeff\u00ad\u200e\u200f"
ODD = ["\x00", "\ud800", "\udfff", "\U0001f600", "\U0001d400", "\U0010ffff", "\u3000", "\x85", "\u2028", "\x1c", "ǅ",
       "İ", "ß", "ﬁ", "Ⅳ", "²", "٣", "١٢٣", "₫", "£", "€", "¥", "$", "\uffff", "\ufffd", "ſ", "K", "ẞ", "_", "@",
       "://", "www.", ".com", ".vn/", "/", ".", ":", "*", "-", " ", "\t", "\n", "!", "?", "%"]
WORDS = ["free", "WIN", "vay", "tiền", "nhanh", "0912345678", "1900 1234", "50k", "5tr", "v1agra", "c@sh", "bit.ly/x",
         "t.i.e.n", "f r e e", "x x x", "***", "xx12", "gửi 8088", "send 1234", "/msg", "per sms", "@abc.d", "zalo",
         "ib", "inbox", "REPLY STOP", "TEXT WIN", "_url_", "_phone12_", "$100", "£5", "100 usd", "ck", "stk"]


def _text(rnd) -> str:
    k = rnd.randrange(8)
    if k == 0:                                   # at a length bound, one repeated unit
        n = rnd.choice([479, 480, 481, 2044, 2045, 2046, 2047, 2048, 2049, 4096, 70000])
        unit = rnd.choice(["a ", "x", "1", "é", "\U0001f600", "a.", "A", "ab1 ", "đ ", ". ", "_", "a\u0301", "\u200b",
                           "!", "a1!", "\ud800", "é "])
        return (unit * (n // len(unit) + 1))[:n]
    if k == 1:
        return "".join(rnd.choice(ODD + list(VI) + list(COMB) + list(ZW)) for _ in range(rnd.randrange(60)))
    if k == 2:
        return " ".join(rnd.choice(WORDS) for _ in range(rnd.randrange(1, 40)))
    if k == 3:
        return "".join(chr(rnd.randrange(0x110000)) for _ in range(rnd.randrange(1, 30)))
    if k == 4:                                   # a word joined by one separator, up to ~1200 times
        return rnd.choice([" ", ".", "*", "-", "_", "", ":", "/", "@"]).join(
            [rnd.choice(WORDS + list(VI))] * rnd.randrange(1, 1200))
    if k == 5:                                   # Vietnamese with marks and zero widths sprinkled in
        base = "Chúc mừng bạn trúng thưởng 700 triệu liên hệ 0912000111 tại qr.vn/xk2 để nhận giải"
        return "".join(ch + (rnd.choice(COMB + ZW) if rnd.random() < 0.2 else "") for ch in base)
    if k == 6:
        return (" ".join(rnd.choice(WORDS) for _ in range(rnd.randrange(1, 10))) + " ") * rnd.choice([1, 10, 50, 300])
    return "".join(rnd.choice("aA0 .:/@_-$!?xX*1đ\u0301\u200b") for _ in range(rnd.randrange(1, 3000)))


def text(seconds: float, seed: int) -> dict:
    import numpy as np

    from engine import textnorm as T
    from engine.ml import features as F
    from engine.ml.model import default_model_dir, load_scorer
    rnd = random.Random(seed)
    sc = load_scorer(default_model_dir())
    n = {"texts": 0, "numpy_refused": 0}
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        t = _text(rnd) + (_text(rnd) if rnd.random() < 0.3 else "")
        C = T._C
        if C is not None:
            w = T._template_words(t)
            assert C.template_mask(t, T.TEMPLATE_MIN_WORDS) == w, ("template_mask", t)
            ref = None if w is None else T._digest(w.lower() if w.isascii() else T._fold_text(w))
            assert C.template_digest(t, T.TEMPLATE_MIN_WORDS, T._fold_text) == ref, ("template_digest", t)
            assert t.isascii() or C.fold(t, T._fold_text) == T._fold_text(t), ("fold", t)
            assert C.collapse_spaces(t) == " ".join(t.split()), ("collapse_spaces", t)
            assert C.content_digest(t) == T._digest(" ".join(t.split())), ("content_digest", t)
            C.maybe_host(t), C.host_tokens(t), [C.template_mask(t, m) for m in (0, -1, 10 ** 6)]
        if F._C is None:
            continue
        norm = F._C.normalise(t)
        assert norm == F.normalise_py(t), ("normalise", t)
        assert F._C.language(t, norm) == F.language(t), ("language", t)
        try:
            ref = F.feature_ids_numpy(t)
        except UnicodeError:                     # a lone surrogate: numpy's UTF-32 codes refuse it
            n["numpy_refused"] += 1
        else:
            ids = np.frombuffer(F._C.ids(t, norm), np.int64)
            assert np.array_equal(np.sort(ids), np.sort(ref)), ("ids", t)
        sc.decision(t), F._C.ids(t, t), F._C.ids("", t), F._C.scan(t)
        n["texts"] += 1
    return n


# ------------------------------------------------------------------ slots

KEYS = [0, 1, -1, 2 ** 63, 2 ** 64 - 1, 2 ** 64, -2 ** 63, 2 ** 200, -2 ** 200, True, False, "", "\x00", "\ud800",
        "a" * 5000, "é", b"", b"\x00x", None, (), (1,), (1, "a"), ("a",) * 8, ("a",) * 9, (1,) * 8, (1,) * 9,
        ((1, 2), 3), (None, 1), (b"x", 2), ("\udfff", 2 ** 70), (True, 1), (-1, -2), (2 ** 64, 0)]


def _key(rnd):
    return rnd.choice(KEYS) if rnd.random() < 0.5 else rnd.choice(
        [rnd.randrange(50), f"s{rnd.randrange(50)}", (rnd.randrange(5), f"o:{rnd.randrange(5)}"),
         rnd.randrange(-2 ** 70, 2 ** 70)])


def _ops(rnd, n: int, t: float) -> list:
    out = []
    for _ in range(n):
        t += rnd.choice((0, 0, 0.25, 0.999, 1, 3, 30, 200, 700, 70000))
        k, r = _key(rnd), rnd.random()
        if r < 0.5:                              # (namespace, window, limit): short rows, stamps, no expiry
            ns, window, limit = rnd.choice([("VOL|sender|1h", 3600.0, rnd.choice([1, 2, 30])),
                                            ("FLOOD|s+r|5m", 300.0, 3), ("ONCE|x|forever", None, 1)])
            a = (ns, k, t, window, limit)
            out += [("count", a), ("add", a)]
        elif r < 0.75:
            a = ("TPL|template|1h|sender", k, _key(rnd), t, 3600.0, rnd.choice([1, 2, 10]))
            out += [("distinct", a), ("add_distinct", a)]
        else:
            a = (k, _key(rnd), t, 3600.0)
            out += [("share", a), ("hadd", a)]
    return out


def _table(seed: int, fast: bool):
    """SlotTable's own find/slot, hashes homing at the index's end, a tiny bound"""
    from engine.rules import slots
    from tests.test_slots_fast import T0
    rnd = random.Random(seed)
    with slots.use_fast(fast):
        t = slots.SlotTable(2, 1, keep=rnd.choice([None, 5, 5000]), max_keys=rnd.choice([1, 2, 3, 17, 64]))
        res, now = [], int(T0)
        for _ in range(3000):
            now += rnd.choice((0, 1, 2, 10))
            k = rnd.randrange(200)
            h = rnd.choice([slots.key_hash(k), (0xFFFFFFFF << 32) | (k + 1), k + 1, 2 ** 64 - 1 - k])
            if rnd.random() < 0.3:
                res.append(t.find(h))
            else:
                i = t.slot(h, now)
                t.rows[i * 2], t.rows[i * 2 + 1] = k, now
                res.append(i)
        return res, t.dump()


def _outcome(seq, fast, snap, mk, sn):
    from tests.test_slots_fast import run
    try:
        return run(seq, fast, snap, mk, sn)
    except Exception as e:                      # noqa: BLE001 -- the other path must raise the same
        return "raised", type(e).__name__


def slots_(seconds: float, seed: int) -> dict:
    from tests.test_slots_fast import T0
    rnd = random.Random(seed)
    n = {"rounds": 0}
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        seq = _ops(rnd, rnd.choice([200, 2000]), T0)
        mk, sn = rnd.choice([(1, 1), (2, 2), (5, 3), (64, 10), (2000, 500)])
        snap = rnd.choice([None, len(seq) // 2])
        fast, slow = _outcome(seq, True, snap, mk, sn), _outcome(seq, False, snap, mk, sn)
        if fast != slow and "raised" not in (fast[0], slow[0]):
            for i, (x, y) in enumerate(zip(fast[0], slow[0])):
                assert x == y, ("slots", i, seq[i], x, y, mk, sn, snap)
        said = [x if x[0] == "raised" else "answered" for x in (fast, slow)]
        assert fast == slow, ("slots", *said, mk, sn, snap)
        s = rnd.randrange(10 ** 9)
        assert _table(s, True) == _table(s, False), ("table", s)
        n["rounds"] += 1
    return n


def stamps(seconds: float, seed: int) -> dict:
    from tests.fuzz.c_fuzz_stamps import stamps as run
    return run(seconds, seed)


_ADDRESS_CHARS = "0123456789" * 6 + "+- .()\t/\x00a\u0660\uff11\u00b2\u0967\U0001d7ce"


def numbers(seconds: float, seed: int) -> dict:
    from engine import numbers as N
    if N.bare_digits is N._bare_digits:
        return {"skipped": "engine._numbers not built (or TELFILTER_NUMBERS_PURE=1)"}
    rnd, end, n = random.Random(seed), time.monotonic() + seconds, {"rounds": 0}
    fast = N.bare_digits
    while time.monotonic() < end:
        k = rnd.choice((rnd.randrange(0, 41), 17, 18, 19, 11, 10, 6, 7))
        s = "".join(rnd.choice(_ADDRESS_CHARS if rnd.random() < 0.3 else "0123456789") for _ in range(k))
        if rnd.random() < 0.1:
            s = "+" + s
        assert fast(s) == N._bare_digits(s), ("bare_digits", s)
        for ton in (0, 1, 2, 5):
            try:
                a = ("ok", N.normalise_number(s, ton))
            except Exception as e:
                a = ("raised", type(e).__name__)
            N.bare_digits = N._bare_digits
            try:
                b = ("ok", N.normalise_number(s, ton))
            except Exception as e:
                b = ("raised", type(e).__name__)
            finally:
                N.bare_digits = fast
            assert a == b, ("normalise_number", s, ton, a, b)
        n["rounds"] += 1
    return n


TARGETS = {"sip": sip, "text": text, "slots": slots_, "stamps": stamps, "numbers": numbers}

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description="C extensions against their Python twins")
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--seed", type=int, default=int(time.time()))
    ap.add_argument("--target", choices=[*TARGETS, "all"], default="all")
    a = ap.parse_args()
    names = list(TARGETS) if a.target == "all" else [a.target]
    for name in names:
        print(name, "seed", a.seed, TARGETS[name](a.seconds / len(names), a.seed))
