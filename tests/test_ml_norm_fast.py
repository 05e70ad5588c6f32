"""The compiled features.normalise (engine/ml/_fastnorm.h) returns the string of the regex
reference features.normalise_py for every input: the training sets and the repo's corpora,
then tens of thousands of generated and mutated texts aimed at each pass (URLs, money,
phone numbers and digit runs, s p a c e d and d.o.t.t.e.d letters, leet words, shape
tokens) and at Unicode corners (zero-width and NFKC-affected characters, non-decimal digits,
non-BMP, mixed scripts), and random code points. A difference prints the input's repr."""
import json
import random
import time
import tomllib
import unicodedata

import numpy as np
import pytest

from engine.ml import features as F
from engine.ml.data import read_labelled
from engine.ml.model import default_model_dir, load_scorer

from .conftest import ROOT, SHARED
from .test_ml_fast import EDGE

pytestmark = pytest.mark.skipif(F._C is None, reason="compiled accelerator not built (python setup.py build_ext --inplace)")

DATA = ROOT / "engine" / "ml" / "data"


def _strings(x):
    if isinstance(x, str):
        yield x
    elif isinstance(x, dict):
        for v in x.values():
            yield from _strings(v)
    elif isinstance(x, list):
        for v in x:
            yield from _strings(v)


def corpus_texts():
    texts = []
    for f in (DATA / "sms_spam_collection_train.tsv", DATA / "vi_sms_train.tsv", DATA / "vi_examples.jsonl",
              SHARED / "data" / "sms_spam_collection" / "train.tsv", SHARED / "data" / "vi_sms" / "train.tsv"):
        if f.exists():
            texts += read_labelled(f)[0]
    sample = ROOT / "config" / "sample" / "messages.jsonl"
    texts += [r["text"] for r in map(json.loads, sample.read_text(encoding="utf-8").splitlines()) if r.get("text")]
    for f in sorted((ROOT / "config" / "rules").glob("*.toml")):
        texts += list(_strings(tomllib.loads(f.read_text(encoding="utf-8"))))
    from benchmarks.traffic import records
    texts += [r["text"] for r in records(3000, seed=5) if r.get("text")]
    return texts + EDGE


def _differences(texts, limit=5):
    bad = []
    for t in texts:
        c, p = F._C.normalise(t), F.normalise_py(t)
        if c != p:
            bad.append(f"{t!r}\n   C: {c!r}\n  py: {p!r}")
            if len(bad) >= limit:
                break
    return bad


def test_corpora():
    texts = corpus_texts()
    # the bundled copies alone give ~8,500 texts (../shared is not beside every clone)
    assert len(texts) > 8000
    bad = _differences(texts)
    assert not bad, "\n".join(bad)
    # the corpora reach every pass and every shape token
    out = " ".join(F._C.normalise(t) for t in texts)
    for tok in ("_url_", "_urlhy_", "_urlpath_", "_urldig_", "_money_", "_phone1", "_num4_", "_masked_",
                "_hotline_", "_cta_", "_permsg_", "_handle_", "_chat_"):
        assert tok in out, tok


# ---- generated texts -------------------------------------------------------------------

TLDS = ["com", "net", "org", "vn", "info", "biz", "co", "uk", "io", "me", "xyz", "top", "club", "online", "site",
        "ly", "gl", "example", "comb", "com.vn", "co.uk", "vnx", "c", "org_", "com-", "coM", "ne", "exampl", "vn1"]
CURRENCY = list("£$€¥₫") + ["vnd", "vnđ", "dong", "đồng", "usd", "k", "tr", "trieu", "triệu", "ty", "tỷ", "pound",
                            "pounds", "p", "kk", "trx", "poundsx", "VND", "đ"]
LETTERS = list("abcdefghijklmnopqrstuvwxyz") + list("àáảãạăắđêếôơưữỳýÀĐÉ") + ["ß", "ǅ", "ı", "ﬁ", "ª", "²", "½", "Ⅻ"]
DIGITS = list("0123456789") * 6 + list("０１２３٠١٢٣४५๑²³¹①⑩") + ["𝟏", "𝟐", "𐒠", "𑁦"]
SEPS = [" ", "", ".", ",", "\n", "-", "/", "_", "*", "\t", "\u00a0", "\u3000", " ", " ", " ", ":", "(", ")", "!", "@"]
ODD = list("\u200b\u200c\u200d\u2060\ufeff\u00ad\u200e\u200f") + list("ﬁﬀ℡㎏ℌ①ǅǄÅK\u0301\u0323\u031b") + \
    list("😀𝐀𝐁ẞİΣς한국ไทยкирΩ") + list("£$€¥₫@$+-./*_ xX")
WORDS = ("free win prize claim call now txt text send to gui gửi sms tin nhan soan cta per msg min phut phút zalo "
         "tele telegram whatsapp ib inbox hello you the and vay tien nhanh lai suat khong the chap chuc mung quy "
         "khach trung thuong nhan qua ngay k ko dc j vs ng ck tk stk sdt lh nv qk tb xx xxx ** *** 1800 1900 "
         "đ được không tiền vay ngân hàng thông báo").split()


def _digits(r, lo, hi, ascii_only=0.8):
    pool = "0123456789" if r.random() < ascii_only else DIGITS
    return "".join(r.choice(pool) for _ in range(r.randint(lo, hi)))


def _label(r):
    return "".join(r.choice("abcdefghijklmnopqrstuvwxyz0123456789--") for _ in range(r.randint(1, 8))).strip("-") or "a"


def frag_url(r):
    scheme = r.choice(["http://", "https://", "www.", "", "", "", "HTTP://", "http:/", "https//", "wwww."])
    labels = [_label(r) for _ in range(r.randint(1, 3))]
    s = scheme + ".".join(labels) + "." + r.choice(TLDS)
    if r.random() < 0.5:
        s += r.choice(["/", "/abc", "/a?b=1&c=2", "/x-y/z", "//", "/ ", "/é"])
    return r.choice(["", "", "-", "x", "@", "é", "_", "."]) + s + r.choice(["", "", ".", ",", "_", "é", "!", "-x"])


def frag_money(r):
    amt = r.choice([_digits(r, 1, 3) + r.choice(".,") + _digits(r, 3, 3), _digits(r, 1, 7), _digits(r, 1, 2) + ",5"])
    cur, sp = r.choice(CURRENCY), r.choice(["", " ", "  ", "\u00a0"])
    s = cur + sp + amt if r.random() < 0.4 else amt + sp + cur
    return s + r.choice(["", "", " ", "x", "/tin", "/sms", "/msg", "!", "_", "ng", "ieu"])


def frag_phone(r):
    seps = r.choice([" ", ".", "-", "", " . ", "  "])
    groups = [_digits(r, 1, 4, 0.95) for _ in range(r.randint(1, 4))]
    return r.choice(["", "", "+", "+ ", "a", "(", "x"]) + seps.join(groups) + r.choice(["", "", ".", "-", " ", "a", "p"])


def frag_spaced(r):
    sep = r.choice([" ", ".", "*", "_", "-", "  ", ". "]) if r.random() < 0.8 else None
    n = r.randint(2, 7)
    out = ""
    for i in range(n):
        out += r.choice(LETTERS) if r.random() < 0.9 else r.choice(DIGITS)
        if i < n - 1:
            out += sep if sep is not None else r.choice(" .*_-")
    return r.choice(["", "", "x", "_", ".", "é"]) + out + r.choice(["", "", "x", "_", ".", "é", "1"])


def frag_leet(r):
    w = r.choice(["free", "viagra", "cash", "winner", "prize", "claim", "mobile", "sexy", "bonus", "lottery", "tien"])
    sub = {"o": "0", "i": "1", "e": "3", "a": "4@", "s": "5$", "t": "7"}
    w = "".join(r.choice(sub[c]) if c in sub and r.random() < 0.4 else c for c in w)
    if r.random() < 0.2:
        w += r.choice(["2", "9", "8", "66", "@", "$"])
    return r.choice(["", "", "@", "$", "_", "x", "é"]) + w + r.choice(["", "", "@", "$", "_", "é", ".", "X"])


def frag_shape(r):
    return r.choice([
        lambda: _digits(r, 2, 4) + r.choice([" ", ""]) + r.choice(["xx", "xxx", "**", "x*", "***", "x"]) + r.choice([" ", ""]) + _digits(r, 1, 4),
        lambda: r.choice(["xx", "xxx", "***", "*x*", "xxxx"]) + r.choice([" ", "", "  "]) + _digits(r, 1, 4),
        lambda: r.choice(["", "1", "a", " "]) + r.choice(["1800", "1900", "1700", "18000"]) + r.choice(["", " ", "."]) + _digits(r, 1, 6),
        lambda: r.choice(["gửi", "gui", "send", "to", "txt", "text", "sms", "photo", "GUI"]) + r.choice([" ", "  ", "\t", ""]) + _digits(r, 2, 6) + r.choice(["", " ", "x", "_", "é"]),
        lambda: r.choice(["/", "per ", "xper ", "/ "]) + r.choice(["msg", "sms", "tin", "min", "phut", "phút", "msgs"]) + r.choice(["", " ", "x", "_"]),
        lambda: _digits(r, 1, 3) + "p" + r.choice(["", " ", "x", "_", "."]),
        lambda: "@" + r.choice(["abc", "_x.y", "a", "ab", "a.", "é12", "A12", "_"]) + r.choice(["", " ", "."]),
        lambda: r.choice(["", " ", "(", "x", "_"]) + r.choice(["tele", "telegram", "zalo", "whatsapp", "ib", "inbox", "teleX", "ibx"]) + r.choice(["", " ", ")", "x", "_", "."]),
        # the keyword call to action, on the text as sent: case, long s, Unicode spaces and word edges
        lambda: r.choice(["", " ", "x", "_", "\u00e9", "(", "1"]) + r.choice(["reply", "Reply", "REPLY", "rEpLy", "send", "Send", "\u017fend", "SEND", "text", "Text", "txt", "TXT", "texts", "txtx", "replY"])
        + r.choice([" ", "  ", "\t", "", "\u00a0", "\u3000", "\u2028", "\u200b", " \n "])
        + r.choice(["END", "HORO", "E", "STOP", "A1", "1A", "HORO2", "ST_OP", "END\u00e9", "End", "\u00c9ND", "SPTV", "K\u212a", "ABC\u00b2"])
        + r.choice(["", " ", ".", "x", "_", "\u00e9", "1", "!", "\u0301"]),
        # a shouted word (4+ capitals between word edges) beside lower-case letters
        lambda: r.choice(["", " ", "x", "1", "_", "\u00e9", "(", "\u0301"]) + r.choice(["FREE", "PRIVATE", "WIN", "WINNER", "ABCD", "\u00c0BCD", "ABCD\u00c9", "AB1CD", "ABCDEFGHIJ"])
        + r.choice(["", " ", "!", "x", "_", "1", "\u00e9", "\u0301", "\u00b2"]) + r.choice(["", " now", " ok", "ab", " Yo", "\u00ffes", " hey"]),
    ])()


def frag_odd(r):
    return "".join(r.choice(ODD) for _ in range(r.randint(1, 4)))


def frag_word(r):
    w = r.choice(WORDS)
    return w.upper() if r.random() < 0.15 else w


FRAGS = [frag_url, frag_money, frag_phone, frag_spaced, frag_leet, frag_shape, frag_odd, frag_word, frag_word,
         lambda r: _digits(r, 1, 14, 0.9)]


def generated(r):
    parts = [r.choice(FRAGS)(r) for _ in range(r.randint(1, 10))]
    t = "".join(p + r.choice(SEPS) for p in parts)
    for _ in range(r.choice([0, 0, 1, 2, 3])):           # mutations
        i = r.randint(0, len(t))
        op = r.random()
        if op < 0.4:
            t = t[:i] + r.choice(ODD + DIGITS + LETTERS) + t[i:]
        elif op < 0.7:
            t = t[:i] + t[i + 1:]
        elif op < 0.85:
            t = t[:i] + t[i:i + 6].upper() + t[i + 6:]
        else:
            t = t[:i] + t[i:i + 8] + t[i:]
    return t


RANGES = [(0x20, 0x7f, 30), (0xa0, 0x250, 8), (0x1ea0, 0x1f00, 6), (0x300, 0x370, 2), (0x2000, 0x2070, 3),
          (0x660, 0x66a, 2), (0x6f0, 0x6fa, 1), (0x966, 0x970, 1), (0xff00, 0xff60, 3), (0x2150, 0x2190, 2),
          (0x2460, 0x24ff, 1), (0x4e00, 0x4e40, 1), (0x1d400, 0x1d800, 2), (0x1f600, 0x1f640, 1), (0x104a0, 0x104aa, 1),
          (0x11066, 0x11070, 1), (0xfb00, 0xfb07, 1), (0x3300, 0x3400, 1)]
_WEIGHTS = [w for *_, w in RANGES]


def random_codepoints(r):
    out = []
    for _ in range(r.randint(0, 40)):
        lo, hi, _w = r.choices(RANGES, _WEIGHTS)[0]
        out.append(chr(r.randrange(lo, hi)))
    return "".join(out)


def _fuzz(make, seed, n, seconds):
    r = random.Random(seed)
    deadline = time.monotonic() + seconds
    done, bad = 0, []
    while done < n and time.monotonic() < deadline:
        batch = [make(r) for _ in range(500)]
        bad += _differences(batch)
        done += len(batch)
        if bad:
            break
    return done, bad


def test_generated_texts_aimed_at_each_pass():
    done, bad = _fuzz(generated, 20261130, 60000, 40)
    assert not bad, "\n".join(bad)
    assert done >= 10000                 # the time box must not empty the test


def test_random_code_points():
    done, bad = _fuzz(random_codepoints, 7, 30000, 20)
    assert not bad, "\n".join(bad)
    assert done >= 5000


def test_scan_flags_cover_the_regex_flags_on_generated_texts():
    # normalise_py gates its passes with the compiled scan too, so the comparisons above cannot
    # see a scan that misses a pass: the regex twin _scan_py must never set a flag it lacks
    r = random.Random(11)
    for _ in range(20000):
        t = unicodedata.normalize("NFKC", generated(r).casefold())
        assert F._scan_py(t) & ~F._C.scan(t) == 0, repr(t)


def test_generated_texts_reach_every_branch():
    # the generator has teeth: every token and every rewrite appears in its output
    r = random.Random(3)
    out = " ".join(F._C.normalise(generated(r)) for _ in range(5000))
    for tok in ("_url_ ", "_urlhy_", "_urlpath_", "_urldig_", "_money_", "_phone", "_num4_", "_num12_", "_masked_",
                "_hotline_", "_cta_", "_permsg_", "_handle_", "_chat_", "_kwcta_", "_shout_", "viagra", "free"):
        assert tok in out, tok


@pytest.mark.parametrize("text,want", [
    ("Visit www.abc-xyz.com/nhanqua now", "visit  _url_ _urlhy_ _urlpath_ abc xyz  now"),
    ("x.comb y.com-z a.co.uk", "x.comb  _url_ y -z  _url_ a co "),
    # the domain's words: empty pieces and www left out, the last piece (the top-level domain) too
    ("http://www.a--b.c.d:80/x y", " _url_ _urlhy_ _urlpath_ _urldig_ a b c  y"),
    ("-abc.com ok", "-abc.com ok"),
    ("Gia 50.000 vnd, 5tr hoac 100k", "gia  _money_ ,  _money_  hoac  _money_ "),
    ("call +84 912 345 678.", "call  _phone11_ +84 912 345 678 ."),
    ("ma 12345678 x", "ma  _phone8_ 12345678  x"),        # a phone before a num
    ("f r e e  V.A.Y T*I*E*N a_b_c_d", "free  vaytienabcd"),    # ' ' separates letters too
    ("fr33 c@sh v1agra 1234a", "fr33 cash viagra  _num4_ 1234 a"),   # fr33: half digits stays
    ("0912 xxx 318 gui 8088 150p @abc zalo",
     " _num4_ 0912  xxx 318 gui  _num4_ 8088   _money_  aabc zalo _masked_ _cta_ _permsg_ _handle_ _chat_"),
    ("(ib) me", "(ib) me"),
    ("Ｔｅｘｔ １２３４ ﬁne\u200b", "text  _num4_ 1234  fine _cta_"),
    ("Reply END SPTV", "reply end sptv _kwcta_ _shout_"),  # a capitalised keyword after the verb
    ("\u017fend\u00a0STOP2!", "send stop2! _kwcta_"),      # long s and a no-break space, as re matches them
    ("texts END, reply ENDé, txt End, send E", "texts end, reply endé, txt end, send e"),
    ("PRIVATE! Your statement", "private! your statement _shout_"),   # capitals beside lower case
    ("MY NO. IN LUTON RING ME", "my no. in luton ring me"),             # all capitals: no shout
    ("WIN cash, FREEx, xFREE, \u00c0BCD now", "win cash, freex, xfree, \u00e0bcd now"),
])
def test_examples(text, want):
    assert F.normalise_py(text) == want
    assert F._C.normalise(text) == want


@pytest.mark.parametrize("text", [
    "a.b." * 300 + " x.com", "a.b." * 300 + "com_ x.com", "1," * 600, "1 " * 600 + "a", "a b " * 400 + "_",
    "x" * 70000 + " 0912 345 678 f r e e www.x.com", "a1" * 600, "http://" + "x" * 1000, "+" + "1-" * 600,
])
def test_long_and_backtracking_inputs(text):
    # re backtracks quadratically on some of these (a dotted run with no TLD before a URL, digit
    # and comma runs); the compiled passes stay linear and must still give the same string
    assert F._C.normalise(text) == F.normalise_py(text)


def test_scores_equal_with_either_normalise(monkeypatch):
    sc = load_scorer(default_model_dir())
    texts = read_labelled(DATA / "sms_spam_collection_train.tsv")[0][:1500] + read_labelled(DATA / "vi_sms_train.tsv")[0]
    got = np.array([sc._score(t) for t in texts])
    monkeypatch.setattr(F, "normalise", F.normalise_py)
    want = np.array([sc._score(t) for t in texts])
    assert np.array_equal(got, want)


def test_type_errors():
    with pytest.raises(TypeError):
        F._C.normalise(b"bytes")
    with pytest.raises(TypeError):
        F._C.normalise(None)
