"""The compiled scorer gives the numpy reference's feature ids and decision values; the
normalisation's skip conditions are exact; the score cache is a bounded LRU."""
import json
import re
import subprocess
import sys

import numpy as np
import pytest

from engine.ml import features as F
from engine.ml.data import read_labelled
from engine.ml.model import default_model_dir, load_scorer, text_digest

from .conftest import ROOT, SHARED

TRAIN = ROOT / "engine" / "ml" / "data" / "sms_spam_collection_train.tsv"
VI = ROOT / "engine" / "ml" / "data" / "vi_examples.jsonl"
EDGE = [
    "", " ", "!!!", "f r e e  m o n e y", "v1agra fr3e c@sh", "__init__ x_ab1_y _url_abc _phone12_",
    "a b c d@", "ǅ Ǆ ǆ ɗ ĐỒNG Đ", "￥100 ١٢٣٤٥ ₫5000", "T.i.e.n V.A.Y 5tr0ng", "Ｆｕｌｌｗｉｄｔｈ ＷＩＮ",
    "😀 emoji 🎉 prize", "한국어 텍스트 가 각", "x" * 5000, "a " * 1500, "word_" * 600,
    "e\u0301 combining u\u031b\u0300", "tab\tnew\nline\r", "TIỀN VAY nhanh gọn 0912.345.678 www.vay-nhanh.vn/x",
    # lone surrogate halves (a JSON "\\ud83d" escape in a training or check line): the numpy path raised
    # UnicodeEncodeError on them where the compiled one scored (found by a probe of odd encodings)
    "Win \ud83d prize", "\ude00 claim now", "half \ud83d", "\udc80\udcff bytes", "a\ud800\udbff\udfffz",
    # teencode words written out (compared only with the words of their first character's low byte): ȑ (U+0211) and
    # đ (U+0111) share one, as ĸ (U+0138) and 8 do
    "ko dc đc ȑc sđt KHG hok ae ttin x ng nv j ĸo 8o k kk kg ck ckk lh mn qk stk tb tk vs hông hong",
]


def corpus():
    texts = read_labelled(TRAIN)[0] + read_labelled(VI)[0]
    vi = SHARED / "data" / "vi_sms" / "train.tsv"
    if vi.exists():
        texts += [ln.split("\t", 2)[2] for ln in vi.read_text(encoding="utf-8").splitlines()[1:] if ln.count("\t") >= 2]
    return texts + EDGE + ["Chúc mừng​ bạn­﻿ ‎‏ trúng", "⁠‍"]


def _normalise_all_passes(text):
    """normalise() without its skip conditions: every pass runs."""
    import unicodedata
    t = text.casefold()
    if not t.isascii():
        # the reference removes zero-width/bidi marks with a translate table (features.py scans with a regex)
        t = unicodedata.normalize("NFKC", t).translate(dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad\u200e\u200f")))
    if "." in t or "/" in t:
        t = F._URLS.sub(F._url, t)
    # every shape regex runs (normalise() skips those whose guard fails)
    extra = "".join(f" _{n}_" for n, r in (("masked", F._MASKED), ("hotline", F._HOTLINE), ("cta", F._CTA),
                                           ("permsg", re.compile(F._PERMSG.pattern + r"|\dp\b")), ("handle", F._HANDLE),
                                           ("chat", F._CHAT))
                    if r.search(t))
    extra += " _kwcta_" if F._KWCTA.search(text) else ""      # on the text as sent, no guard
    extra += " _shout_" if F._SHOUT.search(text) and F._LOWER3.search(text) else ""
    t = F._NUMS.sub(F._tok, t)
    t = F._SPACED.sub(F._unspace, t)
    return F._LEETWORD.sub(F._unleet, t) + extra


def test_skip_conditions_are_exact():
    for t in corpus():
        assert F.normalise(t) == _normalise_all_passes(t), t


needs_c = pytest.mark.skipif(F._C is None, reason="compiled accelerator not built (python setup.py build_ext --inplace)")


@needs_c
def test_compiled_ids_equal_numpy_reference():
    for t in corpus():
        # (feature_ids reads look-alike letters as Latin first, scripts.latin; the reference takes the text so read)
        a, b = np.sort(F.feature_ids(t)), np.sort(F.feature_ids_numpy(F.latin(t)))
        assert np.array_equal(a, b), t


@needs_c
def test_compiled_scan_flags_cover_python_flags():
    # a compiled flag may be set where the regex finds nothing (it only has to be a necessary
    # condition), never the other way round
    for t in corpus():
        c = t.casefold()
        assert F._scan_py(c) & ~F._C.scan(c) == 0, t


@needs_c
def test_compiled_decision_equals_numpy_decision():
    sc = load_scorer(default_model_dir())
    texts = corpus()
    got = np.array([sc.decision(t) for t in texts])
    # the whole reference path: numpy ids of the regex normalisation
    (C, F._C), (norm, F.normalise) = (F._C, None), (F.normalise, F.normalise_py)
    try:
        want = np.array([sc.decision(t) for t in texts])
    finally:
        F._C, F.normalise = C, norm
    assert np.max(np.abs(got - want)) < 1e-9


@needs_c
def test_compiled_language_equals_python_language():
    for t in corpus():
        assert F._C.language(t, F.normalise(t)) == F.language(t), t


def test_language_detection_on_the_shipped_sets():
    en = read_labelled(TRAIN)[0]
    vi = read_labelled(ROOT / "engine" / "ml" / "data" / "vi_sms_train.tsv")[0]
    assert sum(F.language(t) == "vi" for t in en) < 0.03 * len(en)
    assert sum(F.language(t) == "en" for t in vi) < 0.03 * len(vi)


def test_short_english_chat_is_not_vietnamese():
    # words such as "you", "i", "am", "in", "to" are well-formed Vietnamese syllables too;
    # they must not make short English chat Vietnamese (it would get the Vietnamese threshold)
    for t in ("I am in your office na.", "You want to go?", "Hey u still at the gym?", "Lol no. U can trust me."):
        assert F.language(t) == "en", t
    for t in ("Em oi anh den roi", "Chuc mung ban trung thuong", "ko dc dau ban oi"):
        assert F.language(t) == "vi", t


def test_pure_python_path_loads_the_bundled_model():
    """TELFILTER_ML_PURE=1 forces the numpy path; the model's self-check must pass there too."""
    code = ("import engine.ml.features as F, engine.ml.model as M; assert F._C is None and F.normalise is F.normalise_py; "
            "s = M.load_scorer(M.default_model_dir()); print(s.score('WINNER!! claim your prize now'))")
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                       env={"TELFILTER_ML_PURE": "1", "PATH": "/usr/bin:/bin"})
    assert p.returncode == 0, p.stderr
    assert abs(float(p.stdout) - load_scorer(default_model_dir()).score("WINNER!! claim your prize now")) < 1e-9


def test_score_cache_is_bounded_lru():
    sc = load_scorer(default_model_dir())
    sc._cache.clear()
    sc.cache_size = 4
    for t in ("one two", "three four", "five six", "seven eight"):
        sc.score(t)
    sc.score("one two")                   # used again: now the most recent
    sc.score("nine ten")                  # evicts the least recently used: "three four"
    assert list(sc._cache) == [text_digest(t) for t in ("five six", "seven eight", "one two", "nine ten")]
    for i in range(1000):
        sc.score(f"message number {i} here")
    assert len(sc._cache) == 4
    long = "x " * 400
    sc.score(long)
    assert text_digest(long) not in sc._cache and len(sc._cache) == 4   # over CACHE_MAX_CHARS: scored, not kept
    assert sc.score("one two") == sc._score("one two")


def test_header_rows_and_extra_columns(tmp_path):
    from engine.ml.data import read_dataset
    tsv = tmp_path / "a.tsv"
    tsv.write_text("id\ttext\tkind\tlabel\n1\tvay tien nhanh\tloan\tspam\n2\tdi an com\tpersonal\tham\n3\tx\ty\tmaybe\n",
                   encoding="utf-8")
    ds = read_dataset(tsv)
    assert ds.texts == ["vay tien nhanh", "di an com"] and ds.labels == [1, 0] and ds.kinds == ["loan", "personal"]
    assert ds.errors == [f"{tsv}:4: label must be spam or ham (or 1 / 0), got 'maybe'"]
    csvf = tmp_path / "b.csv"
    csvf.write_text("Label,Text,lang\nham,\"hello, there\",en\n", encoding="utf-8")
    ds = read_dataset(csvf)
    assert ds.texts == ["hello, there"] and ds.langs == ["en"]
    legacy = tmp_path / "c.tsv"
    legacy.write_text("spam\tfree\tprize\nham\tok\n", encoding="utf-8")
    assert read_dataset(legacy).texts == ["free\tprize", "ok"]


def test_eval_without_model_uses_the_serving_model_and_breaks_down(tmp_path):
    from .conftest import run_cli
    f = tmp_path / "d.tsv"
    f.write_text("label\tkind\ttext\nspam\tloan\tVay tien nhanh 50 trieu khong the chap, lh 0912 345 678\n"
                 "ham\tpersonal\tToi nay em ve muon, anh an com truoc nhe\n"
                 "ham\tpersonal\tThanks for yesterday, the meeting notes are attached, call me tomorrow\n", encoding="utf-8")
    p = run_cli("ml", "eval", "--data", f, check=True)
    m = json.loads(p.stdout)
    assert m["model"] == str(default_model_dir()) and m["n"] == 3
    assert set(m["by_kind"]) == {"loan", "personal"} and m["by_kind"]["personal"]["ham"] == 2
    assert set(m["by_language"]) == {"vi", "en"} and m["by_language"]["en"]["n"] == 1


def test_compiled_decision_reads_its_arguments_as_before():
    """decision(text, normalised, weights, intercept) takes what "UUy*d" took (an int intercept, any C-contiguous
    buffer of the weights) and refuses the rest with a TypeError; its answer is (float, 0 or 1)."""
    if F._C is None:
        pytest.skip("the compiled scorer is not in use (not built, or TELFILTER_ML_PURE=1)")
    sc = load_scorer(default_model_dir())
    text = "Chúc mừng bạn trúng thưởng 0912345678"
    d, vi = F._C.decision(text, F.normalise(text), sc._quads, sc.intercept)
    assert type(d) is float and vi in (0, 1) and type(vi) is int
    assert F._C.decision(text, F.normalise(text), memoryview(sc._quads).cast("B"), 0) == \
        F._C.decision(text, F.normalise(text), sc._quads.tobytes(), 0.0)
    for bad in ((b"x", F.normalise(text), sc._quads, 0.0), (text, None, sc._quads, 0.0),
                (text, text, "weights", 0.0), (text, text, sc._quads, "0"), (text, text, sc._quads)):
        with pytest.raises(TypeError):
            F._C.decision(*bad)
    with pytest.raises(ValueError):
        F._C.decision(text, text, b"\0" * 64, 0.0)


def test_score_cache_holds_a_digest_not_the_text():
    """A cached score costs the same whatever the text: ~130 B, not the text's 480-1,920 bytes (480 emoji characters
    took ~2,100 B an entry when the text was the key). The 4,096 entries' whole cost is traced, table included."""
    import tracemalloc
    sc = load_scorer(default_model_dir())
    sc._cache.clear()
    sc.cache_size = 4096
    calls = []
    sc._score = lambda t: calls.append(len(t)) or 0.25      # the text itself not kept
    text = "{:08d}" + "x" * 471 + "😀"          # each text made while traced and dropped after, as a message's is
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(4096):
            sc.score(text.format(i))
        calls.clear()
        used = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(sc._cache) == 4096
    assert used / 4096 < 400, used / 4096
    assert sc.score(text.format(0)) == 0.25 and not calls               # a hit: not scored again
    assert sc.score(text.format(0)[:-1] + "😁") == 0.25 and len(calls) == 1   # one character differs: a miss


def test_text_digest_compiled_matches_hashlib():
    import hashlib
    import random
    from engine.ml import model as M
    if M.text_digest is M.text_digest_py:
        pytest.skip("compiled scorer not built")
    rnd = random.Random(7)
    alphabet = "aZ09 \t\n~ßéệĐ€😀\ud83d\udc80\x00\x7f\x80\xff\u0800\uffff"
    texts = EDGE + ["x" * n for n in (0, 1, 127, 128, 129, 255, 256, 257, 480)]
    texts += ["".join(rnd.choice(alphabet) for _ in range(rnd.randrange(0, 600))) for _ in range(2000)]
    for t in texts:
        want = hashlib.blake2b(t.encode("utf-8", "surrogatepass"), digest_size=16).digest()
        assert M.text_digest(t) == want == M.text_digest_py(t), repr(t)
    with pytest.raises(TypeError):
        M.text_digest(b"bytes")
