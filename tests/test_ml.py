"""Classifier: scorer parity with scikit-learn over the whole training set, model files as data,
Vietnamese normalisation, and the 5656 reports -> labelled store -> retrain loop."""
import json
import shutil

import numpy as np
import pytest

from engine.ml import features as F
from engine.ml.data import read_labelled
from engine.ml.model import ModelError, load_scorer
from engine.ml.train import train

from .conftest import ROOT, jsonl, run_cli

TRAIN = ROOT / "engine" / "ml" / "data" / "sms_spam_collection_train.tsv"
VI = ROOT / "engine" / "ml" / "data" / "vi_examples.jsonl"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("model")
    texts, labels, info, errs = read_labelled(TRAIN)
    assert not errs and len(texts) == 3878
    card, (model, cal, shifts) = train(texts, labels, [info], out, progress=False, c_grid=(3.0,), log=lambda m: None)
    return out, texts, (model, cal, shifts), card


def test_fast_scorer_equals_sklearn_on_whole_training_set(trained):
    out, texts, (model, cal, shifts), _ = trained
    sc = load_scorer(out)
    X = F.matrix(texts)
    # Platt on the decision values of the two scikit-learn LinearSVCs (train.Pair), then the
    # card's per-language logit shift
    t = cal.decision_function(model.decision_function(X).reshape(-1, 1))
    t = t + np.array([shifts.get(F.language(x), 0.0) for x in texts])
    want = 1.0 / (1.0 + np.exp(-t))
    got = np.array([sc.score(t) for t in texts])
    # the scorer reads its weights as float32 (model.Scorer._quads): ~4e-9 off scikit-learn's float64 here
    assert np.max(np.abs(got - want)) < 1e-7


def test_members_are_scaled_by_their_out_of_fold_margin_spread(trained):
    # train() divides each member's margin by the sd of its OUT-OF-FOLD margins (what it gives
    # unseen text), not by the sd on its own training rows: recompute both from the same steps
    from engine.ml import train as T
    out, texts, (model, _, _), card = trained
    t, y, lang = T.dedup(texts, [int(x) for x in read_labelled(TRAIN)[1]])
    lg = T.language_groups(y, lang)
    sw = T.language_weights(lg)
    strata = np.char.add(lg.astype(str), np.where(y, ":spam", ":ham"))
    X = F.matrix(t)

    class _Quiet:
        def update(self, n=1): ...
    oof = T.margin_sd(T.oof_margins(X, y, 3.0, 43, _Quiet(), sw, strata))
    insample = np.std(model.margins(X), axis=0)
    got = [m["margin_sd"] for m in card["classifier"]["members"]]
    # liblinear's coordinate descent visits rows in a random order: refits agree to ~1e-6
    assert np.allclose(got, oof, rtol=1e-4) and np.allclose(model.sd, got, rtol=1e-12)
    assert not np.allclose(got, insample, rtol=1e-2)


def test_training_is_reproducible_whatever_numpy_global_state(trained, tmp_path):
    """The same data and seed give the same model bit for bit (liblinear's example order is
    seeded, not drawn from numpy's global generator), so the bundled model can be rebuilt exactly."""
    out, texts, _, card = trained
    labels = read_labelled(TRAIN)[1]
    np.random.seed(12345)                      # another global state than the fixture's training saw
    again, _ = train(texts, labels, [], tmp_path / "m", progress=False, c_grid=(3.0,), log=lambda m: None)
    a, b = np.load(out / "weights.npz"), np.load(tmp_path / "m" / "weights.npz")
    assert sorted(a.files) == sorted(b.files)
    for k in a.files:
        assert np.array_equal(a[k], b[k]), k
    assert again["thresholds"] == card["thresholds"]


def test_card_contents(trained):
    out, _, _, card = trained
    c = json.loads((out / "card.json").read_text())
    for k in ("model_version", "created", "training_data", "metrics", "thresholds", "feature_config", "calibration"):
        assert k in c
    assert c["training_data"][0]["sha256"] and c["training_data"][0]["rows"] == 3878
    assert 0 < c["thresholds"]["tag"] <= c["thresholds"]["drop"] < 1
    v = c["metrics"]["validation"]
    assert v["mcc"] > 0.85 and v["blocked_ham_rate"] <= 0.01
    assert not list(out.glob("*.pkl")) and not list(out.glob("*.joblib"))


def test_refuses_unsupported_feature_config_and_corrupt_weights(trained, tmp_path):
    out = trained[0]
    bad = tmp_path / "bad"
    shutil.copytree(out, bad)
    c = json.loads((bad / "card.json").read_text())
    c["feature_config"]["char_ngrams"] = [2, 3]
    (bad / "card.json").write_text(json.dumps(c))
    with pytest.raises(ModelError, match="feature configuration"):
        load_scorer(bad)
    shutil.rmtree(bad)
    shutil.copytree(out, bad)
    w = bytearray((bad / "weights.npz").read_bytes())
    w[len(w) // 2] ^= 0xFF
    (bad / "weights.npz").write_bytes(bytes(w))
    with pytest.raises(ModelError, match="checksum"):
        load_scorer(bad)
    with pytest.raises(ModelError):
        load_scorer(tmp_path / "nothing")


@pytest.mark.parametrize("edit,why", [
    # NaN shift: every message of the language scored NaN, never tagged or dropped; self-check NaN != p passed
    (lambda c: c["calibration"].update(language_shift={"en": float("nan")}), "language_shift"),
    # +inf shift: every Vietnamese message scored 1.0 and dropped (the self-check texts are English)
    (lambda c: c["calibration"].update(language_shift={"vi": float("inf")}), "language_shift"),
    (lambda c: c["calibration"].update(language_shift={"en": True}), "language_shift"),
    # a NaN expected score made the self-check pass whatever the model scored
    (lambda c: [i.update(p=float("nan")) for i in c["selfcheck"]], "self-check"),
    (lambda c: [i.update(p="0.5") for i in c["selfcheck"]], "self-check"),
])
def test_refuses_card_with_non_finite_shift_or_self_check(trained, tmp_path, edit, why):
    # found by an analyst pass: `ml promote` of such a card installed it and the running serve hot-swapped to it
    bad = tmp_path / "bad"
    shutil.copytree(trained[0], bad)
    c = json.loads((bad / "card.json").read_text())
    edit(c)
    (bad / "card.json").write_text(json.dumps(c))       # json writes NaN / Infinity, and json.loads reads them
    with pytest.raises(ModelError, match=why):
        load_scorer(bad)


def test_pipeline_hot_swap_refuses_bad_model(trained, tmp_path):
    from engine.app import build
    p = build(data_dir=tmp_path / "d")
    old = p.model
    with pytest.raises(ModelError):
        p.swap_model(load_scorer(tmp_path / "nothing"))
    assert p.model is old


@pytest.mark.parametrize("raw,want", [
    ("KHUYẾN MÃI", "khuyến mãi"),
    ("f r e e  m o n e y", "free money"),
    ("v1agra fr3e", "viagra free"),
    ("vi\u200bsit\u200c now", "visit now"),
    ("goi 0912.345.678 ngay", "goi _phone10_ 0912.345.678 ngay"),
    ("tang 500k", "tang _money_"),
    ("vao https://x.vn/a?b=1 nhe", "vao _url_ _urlpath_ x nhe"),
    ("xac nhan tai vtb-baove.example ngay", "xac nhan tai _url_ _urlhy_ vtb baove ngay"),
    ("ma 482913", "ma _num6_ 482913"),
    # shape tokens go at the end, from the text before numbers become tokens
    ("TK 0912 xxx 318 LH 1900 545413", "tk _num4_ 0912 xxx 318 lh _phone10_ 1900 545413 _masked_ _hotline_"),
    ("Soan NHAN gui 8799 (15.000d/sms) ib tele @abc_1", "soan nhan gui _num4_ 8799 (15.000d/sms) ib tele @abc_1 _cta_ _permsg_ _handle_ _chat_ _shout_"),
    ("Love me xxx, see you in a min", "love me xxx, see you in a min"),
])
def test_normalisation(raw, want):
    assert " ".join(F.normalise(raw).split()) == want


def test_raw_char_ngrams_keep_case_that_the_canonical_text_folds():
    """FREE and free give the same canonical text; the raw-text char n-grams tell them apart."""
    up, low = "CALL FREE NOW", "call free now"     # all capitals: no _shout_ token either
    assert F._canonical(up) == F._canonical(low)
    a, b = set(F.features(up)[0]), set(F.features(low)[0])
    # every raw 3-, 4- and 5-gram holding a capital is a feature of its own
    assert len(a - b) >= 21


def test_diacritics_are_extra_features_not_replacement():
    a, _ = F.features("khuyến mãi lớn")
    b, _ = F.features("khuyen mai lon")
    shared = len(set(a) & set(b))
    assert shared > 0 and set(a) != set(b)


def test_eval_and_predict_cli(trained, tmp_path):
    out = trained[0]
    p = run_cli("ml", "eval", "--model", out, "--data", TRAIN, "--report", tmp_path / "rep", check=True)
    m = json.loads(p.stdout)
    for k in ("precision", "recall", "f1", "mcc", "accuracy", "blocked_ham_rate", "spam_caught_rate", "roc_auc", "confusion"):
        assert k in m
    for f in ("precision_recall.png", "roc.png", "score_histogram.png", "summary.md"):
        assert (tmp_path / "rep" / f).stat().st_size > 0
    p = run_cli("ml", "predict", "--model", out, "--text", "WINNER!! claim your £1000 prize now, call 09061701461", check=True)
    assert json.loads(p.stdout)["action"] in ("tag", "drop")
    p = run_cli("ml", "predict", "--model", out, "--jsonl", "-", input='{"id": 1, "text": "see you at 5"}\nnope\n', check=True)
    lines = [json.loads(l) for l in p.stdout.splitlines()]
    assert lines[0]["id"] == 1 and lines[0]["action"] == "allow" and lines[1]["line"] == 2
    assert lines[0]["model_version"] == json.loads((out / "card.json").read_text())["model_version"]


def test_reports_to_retrain_loop_improves_vietnamese_scores(trained, tmp_path, data_dir):
    """5656 reports -> analysts label the store -> ml train -> better scores on those patterns."""
    # the first 24 lines are the loop's demonstration set (12 scams, 12 ordinary messages); the rest are
    # harder stories written for the bundled model, beyond what 16 labelled reports can teach
    vi = [json.loads(l) for l in VI.read_text(encoding="utf-8").splitlines()][:24]
    spam = [x["text"] for x in vi if x["label"] == "spam"]
    ham = [x["text"] for x in vi if x["label"] == "ham"]
    # subscribers report the first half of the scam texts to 5656
    mos = [dict(id=i, kind="sms", sender=f"09120000{i:02d}", recipient="5656", direction="mo",
                text=f"S 0909000{i:03d} {t}", time="2026-03-02T10:00:00+07:00") for i, t in enumerate(spam[:8])]
    run_cli("check", "--jsonl", "-", "--data-dir", data_dir, input=jsonl(mos), check=True)
    store = data_dir / "reports.jsonl"
    recs = [json.loads(l) for l in store.read_text(encoding="utf-8").splitlines()]
    assert len(recs) == 8 and all(r["label"] is None for r in recs)
    for r in recs:                                  # the analysts' labelling step
        r["label"] = "spam"
    store.write_text(jsonl(recs), encoding="utf-8")
    hamfile = tmp_path / "ham.jsonl"
    hamfile.write_text(jsonl([{"label": "ham", "text": t} for t in ham[:8]]), encoding="utf-8")
    before = load_scorer(trained[0])
    out = tmp_path / "m2"
    p = run_cli("ml", "train", "--data", TRAIN, "--data", store, "--data", hamfile, "--out", out, "--no-progress")
    assert p.returncode == 0, p.stderr
    after = load_scorer(out)
    unseen_spam = spam[8:]
    # in logits: the English-only model may already score these near 1, where probabilities saturate
    def logit(sc, t):
        p = sc.score(t)
        return np.log(p) - np.log1p(-p)
    gain = np.mean([logit(after, t) for t in unseen_spam]) - np.mean([logit(before, t) for t in unseen_spam])
    assert gain > 0.5, gain
    assert max(after.score(t) for t in ham[8:]) < after.drop_threshold


def test_train_without_out_writes_a_named_candidate_in_the_data_dir(tmp_path, data_dir):
    """`ml train --data F` (the analyst's short form): a complete candidate under DATA_DIR/models/<version>,
    its path printed, nothing half-written left behind, and `ml eval --model` reads it."""
    small = tmp_path / "small.tsv"
    small.write_text("".join(TRAIN.read_text(encoding="utf-8").splitlines(keepends=True)[:900]), encoding="utf-8")
    p = run_cli("ml", "train", "--data", small, "--data", VI, "--data-dir", data_dir, "--no-progress")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    models = data_dir / "models"
    assert [d.name for d in models.iterdir()] == [out["model_version"]]
    assert out["model"] == str(models / out["model_version"]) and out["model"] in p.stderr
    assert load_scorer(models / out["model_version"]).version == out["model_version"]
    e = run_cli("ml", "eval", "--model", out["model"], "--data", VI, check=True)
    assert 0 <= json.loads(e.stdout)["mcc"] <= 1


def test_threshold_lets_one_more_ham_through_only_for_a_large_share_of_spam():
    from engine.ml.train import threshold_for
    # 100 ham, 2%: 1 may be blocked ((1 + 1) / 101 <= 2%); the 2nd-highest ham (0.98) sits above 10 of the 100 spam
    ham = [0.1] * 97 + [0.5, 0.98, 0.99]
    spam = [0.95] * 10 + [0.995] * 90
    p, y = np.array(ham + spam), np.array([False] * 100 + [True] * 100)
    t = threshold_for(p, y, 0.02)
    assert 0.5 < t < 0.95                     # one more ham (0.98) blocked for 10% more spam
    assert sum(p[~y] >= t) == 2 and sum(p[y] >= t) == 100
    assert 0.98 < threshold_for(p, y, 0.02, extra_gain=0.11) <= 0.99   # a gain under the bar: k ham only
    spam = [0.95] * 4 + [0.995] * 96                                      # 4% gain: not worth a ham
    p = np.array(ham + spam)
    assert 0.98 < threshold_for(p, y, 0.02) <= 0.99


def test_threshold_expects_the_target_on_unseen_ham():
    """k ham above the threshold of n block (k + 1) / (n + 1) of unseen ham on average: k is the largest
    that keeps this within the rate (3,387 English ham at 0.1%: 2, not floor(3.387) = 3)."""
    from engine.ml.train import language_targets, threshold_for
    rng = np.random.default_rng(0)
    for n, rate, k in ((3387, 0.001, 2), (2540, 0.001, 1), (3999, 0.001, 3), (100, 0.01, 0), (100, 0.02, 1)):
        ham = rng.random(n) * 0.9
        p, y = np.concatenate([ham, np.ones(5)]), np.array([False] * n + [True] * 5)
        t = threshold_for(p, y, rate, extra_gain=0)
        assert int(np.sum(ham >= t)) == k, (n, rate)
    # a language too small for the rate: MIN_BLOCKED_HAM (0) of its ham, i.e. 1 / (n + 1) of unseen ham, the
    # nearest to the rate it can come (it was 1 ham, 2 / (n + 1): a 120-ham hold-out meets 1% only with one blocked)
    y = np.array([False] * 440 + [True] * 440 + [False] * 3387)
    g = np.array(["vi"] * 880 + ["en"] * 3387)
    assert language_targets(y, g, 0.001) == {"en": 0.001, "vi": 1 / 441}
    ham = np.random.default_rng(2).random(440) * 0.9
    p, yy = np.concatenate([ham, np.ones(5)]), np.array([False] * 440 + [True] * 5)
    assert int(np.sum(ham >= threshold_for(p, yy, 1 / 441, extra_gain=0))) == 0
    # the tag threshold: three times the rate, a small language 3 of its ham (TAG_MIN_BLOCKED_HAM; not 5)
    from engine.ml.train import tag_targets
    assert tag_targets(y, g, 0.001) == {"en": 0.003, "vi": 4 / 441}
    ham = np.random.default_rng(1).random(440) * 0.9
    p, yy = np.concatenate([ham, np.ones(5)]), np.array([False] * 440 + [True] * 5)
    assert int(np.sum(ham >= threshold_for(p, yy, 4 / 441, extra_gain=0))) == 3


def test_predict_jsonl_reads_as_check_does(tmp_path):
    # a byte that is not UTF-8 stopped `ml predict --jsonl` with a UnicodeDecodeError traceback (exit 1),
    # and a BOM cost line 1
    f = tmp_path / "in.jsonl"
    f.write_bytes(b'\xef\xbb\xbf{"id": "a", "text": "ok"}\n{"text": "caf\xe9"}\n' + b"[" * 100_000 + b"\n")
    import subprocess
    import sys
    from tests.conftest import ROOT
    for src in (f, "-"):
        r = subprocess.run([sys.executable, "-m", "engine.cli", "ml", "predict", "--model", "engine/ml/default_model",
                            "--jsonl", str(src), "--data-dir", str(tmp_path / "d")], input=f.read_bytes(),
                           capture_output=True, cwd=ROOT)
        assert r.returncode == 0 and b"Traceback" not in r.stderr, r.stderr
        out = [json.loads(line) for line in r.stdout.decode().splitlines()]
        assert out[0]["id"] == "a" and "probability" in out[0]
        assert out[1] == {"line": 2, "error": "not valid UTF-8: byte 0xe9 at column 14"}
        assert out[2]["line"] == 3 and "nested too deeply" in out[2]["error"]


def test_eval_summary_of_a_ham_only_file_shows_dashes_and_links_only_its_plots(tmp_path):
    """Found by analyst2 evaluating a model on ham alone (does it block any?): summary.md gave MCC, precision,
    recall and F1 as 0.0000 (read: catches no spam, though there was none to catch) while its per-language rows
    showed dashes, and it linked precision_recall.png and roc.png, which are not written without both classes."""
    import re
    ham = tmp_path / "ham.tsv"
    ham.write_text("label\ttext\nham\tsee you at 5 at the station\nham\tAnh oi toi nay an com o nha nhe\n")
    run_cli("ml", "eval", "--model", ROOT / "engine/ml/default_model", "--data", ham, "--report", tmp_path / "rep",
            check=True)
    md = (tmp_path / "rep" / "summary.md").read_text()
    for row in ("MCC", "precision", "recall (spam caught)", "F1", "ROC AUC"):
        assert f"| {row} | — |" in md, md
    assert "| blocked ham rate | 0.0000% |" in md
    for img in re.findall(r"\]\(([^)]+\.png)\)", md):
        assert (tmp_path / "rep" / img).exists(), img


def test_a_model_of_another_feature_configuration_is_refused_naming_what_differs(tmp_path):
    """Found by analyst2 promoting a model of a newer build: the refusal printed both whole feature
    configurations (~900 characters) and left the reader to find the one key that differed."""
    d = tmp_path / "m"
    shutil.copytree(ROOT / "engine/ml/default_model", d)
    c = json.loads((d / "card.json").read_text())
    ours = c["feature_config"]["name"]
    c["feature_config"]["name"] = ours + "-future"
    (d / "card.json").write_text(json.dumps(c))
    with pytest.raises(ModelError) as e:
        load_scorer(d)
    msg = str(e.value)
    assert f"name: '{ours}-future' in the card, '{ours}' in this build" in msg and "char_ngrams" not in msg, msg
    assert len(msg) < 400
    # an upgrade's first start refused on the model trained before it: the way to serve at once is named too
    assert "ml train" in msg and '[ml] model = ""' in msg, msg


def test_bundled_model_does_not_block_vietnamese_ham_for_a_full_phone_number():
    """Found by an independent Vietnamese hold-out: appending " Có gì gọi mình 0905 318 247 nhé." to each of its 220
    ham blocked 56 (the number masked: 1). vi_sms_train.tsv has full mobile numbers in 173 of 440 spam and 0 of 439 ham,
    so the bundled model had learned "a full number is spam"; 59 genuine Vietnamese examples with full numbers fixed it.
    These texts are in no training file; the model before the fix blocked 4 of the 8."""
    sc = load_scorer(ROOT / "engine/ml/default_model")
    ham = ["Chị ơi đây là số anh thợ sơn nhà em thuê năm ngoái, anh Bảo 0942 715 368, chị gọi hỏi anh ấy còn nhận việc "
           "không nhé.",
           "Tuần sau anh đi công tác, hàng về thì em gọi thủ kho Nghĩa 0915 206 843 ra nhận giúp anh.",
           "Me oi con den ky tuc xa roi, ban cung phong con ten Trang, so ban ay 0338 652 074, khi nao con ko nghe may "
           "thi me goi ban nhe.",
           "Mai tớ nghỉ ốm, có gì về bài tập nhóm cậu gọi Hưng 0869 413 257, tớ gửi hết tài liệu cho Hưng rồi.",
           "Chú xe ôm hay chở bà đi khám là chú Lực, số chú 0986 240 731, con lưu vào máy bà giúp mẹ nhé.",
           "Em hỏi rồi, bên cho thuê váy cưới là chị Diệp 0707 925 318, chị ấy hẹn mình thử váy 3h chiều thứ 7.",
           "a ơi e gửi số quán sửa đt gần nhà: 0392 847 605, a gọi trc xem họ còn màn hình iphone 11 ko",
           "Bac oi chau la hang xom tang 4, nha bac bi ro nuoc xuong tran nha chau, bac goi chau 0964 318 502 khi ve nhe."]
    assert all(F.language(t) == "vi" for t in ham)
    blocked = [t for t in ham if sc.score(t) >= sc.drop_threshold]
    assert blocked == []
