"""Cyrillic and Greek look-alikes written into a Latin text to break its words ("Vіеttеl", "Саsino оnline") are read
by the classifier as the Latin letters they imitate, with a `_mixscript_` mark (engine/ml/scripts.py); genuine
Cyrillic and Greek texts are left as written. Before, a scam with three letters disguised scored as unseen words:
the probe's "Vietcombank thong bao ... vcb-xacminh.top" went from dropped to allowed."""
from datetime import datetime, timezone

import numpy as np
import pytest

from engine.app import build
from engine.ml import features as F
from engine.ml.model import default_model_dir, load_scorer
from engine.ml.scripts import MARK, latin
from engine.verdict import Action, Message

T = datetime(2026, 11, 28, 4, 0, tzinfo=timezone.utc)          # 11:00 in Hanoi
# Cyrillic а е о р с у х і and Greek Β/Ο in place of Latin letters
DISGUISE = str.maketrans({"a": "а", "e": "е", "o": "о", "p": "р", "c": "с", "y": "у", "x": "х", "i": "і",
                          "B": "Β", "O": "Ο"})
SCAM = "Vietcombank thong bao: tai khoan cua quy khach bi khoa. Truy cap vcb-xacminh.top de mo khoa ngay"
BET = "Nhà cái uy tín tặng 100k khi đăng ký, nạp rút siêu tốc tại 88bet.club"


@pytest.mark.parametrize("plain", [SCAM, BET, "BIDV: Quy khach chua cap nhat sinh trac hoc", "Casino online"])
def test_a_disguised_latin_text_reads_as_the_plain_one_marked(plain):
    disguised = plain.translate(DISGUISE)
    assert disguised != plain
    assert latin(disguised) == plain + MARK
    assert latin(latin(disguised)) == latin(disguised)            # idempotent


@pytest.mark.parametrize("text", [
    "Привет, как дела? Встретимся в 5",                             # Russian (т, к, в, л, д: not look-alikes)
    "Привет Maria, see you at Café tomorrow",                      # Russian words beside Latin ones
    "Καλημέρα Nam, hẹn gặp lúc 5 giờ",                             # Greek beside Vietnamese
    "Kızım nasılsın, akşam görüşürüz",                             # Turkish dotless ı is a Latin letter
    "Ăn cơm chưa, tối nay đi xem phim không",
    "see you at 5",
])
def test_genuine_texts_are_left_as_written(text):
    assert latin(text) == text


def test_latin_variants_stay_when_look_alikes_are_read():
    # textnorm's table also maps Latin's own variants (ı, ɑ, ɡ) for the rules; the classifier reads only other
    # scripts' look-alikes: a Turkish text with one Cyrillic а keeps its dotless ı
    assert latin("Kızım nasılsın, аkşam") == "Kızım nasılsın, akşam" + MARK


def test_ascii_text_is_the_same_object():
    t = "Meet me at 5 near the station"
    assert latin(t) is t


def test_a_mixed_word_in_a_foreign_text_is_read_alone():
    # a Russian text with one Latin c typed in a word: only that word is mixed script
    assert latin("Приветcтвую вас, друзья") == "Пpивeтcтвyю вас, друзья" + MARK


@pytest.mark.parametrize("plain", [SCAM, BET])
def test_features_language_and_score_see_the_plain_text_marked(plain):
    disguised = plain.translate(DISGUISE)
    assert np.array_equal(np.sort(F.feature_ids(disguised)), np.sort(F.feature_ids(plain + MARK)))
    assert np.array_equal(np.sort(F.feature_ids_numpy(latin(disguised))), np.sort(F.feature_ids(plain + MARK)))
    assert F.language(disguised) == F.language(plain)
    sc = load_scorer(default_model_dir())
    assert sc.score(disguised) == sc.score(plain + MARK)
    assert sc.decision(disguised) == pytest.approx(sc.decision(plain + MARK), abs=1e-12)


def test_the_pure_python_scorer_reads_them_too():
    sc = load_scorer(default_model_dir())
    disguised = SCAM.translate(DISGUISE)
    C, norm = F._C, F.normalise
    F._C, F.normalise = None, F.normalise_py
    try:
        d = sc.decision(disguised)
        want = sc.decision(SCAM + MARK)
    finally:
        F._C, F.normalise = C, norm
    assert d == pytest.approx(want, abs=1e-9)


def test_the_pipeline_drops_the_disguised_scam_as_it_drops_the_plain_one(tmp_path):
    pipe = build(data_dir=tmp_path, persist=False, with_model=True)
    plain = pipe.judge(Message("0987654321", "0912345678", SCAM, T))
    disguised = pipe.judge(Message("0987654321", "0912345677", SCAM.translate(DISGUISE), T))
    assert plain.action is Action.DROP and [h.symbol for h in plain.hits] == ["ML_SPAM"]
    assert disguised.action is Action.DROP and [h.symbol for h in disguised.hits] == ["ML_SPAM"]
