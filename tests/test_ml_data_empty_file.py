"""A --data file with no labelled message in it (empty, a header row alone: an export made before anything was
labelled) is named when it is read beside others, in `ml train`, `ml eval` and `ml cv`, never dropped without a
word; `ml cv` says what each file left out, and its first 1,000 bad lines then a count, as train and eval do."""
import json
import subprocess
import sys

from engine.ml.data import read_all, read_dataset

from .conftest import ROOT

SPAM = ["WINNER!! You have won a 1000 cash prize. Call 09061701461 to claim",
        "Vay tien nhanh khong can the chap, giai ngan trong 30 phut, goi 0901234567",
        "Nha cai uy tin so 1, nap lan dau tang 200%, dang ky ngay tai bong88.example",
        "Free entry in 2 a wkly comp to win FA Cup final tkts, text FA to 87121"]
HAM = ["Anh oi toi nay an com o nha nhe, em nau canh chua", "Hop nhom luc 9h sang mai o phong 302",
       "Ok lar, see you at the cinema at 8", "Con da den truong roi, chieu me don con luc 5h nhe",
       "Sorry I'll call you later, in a meeting", "Em gui anh file bao cao quy 3, anh xem giup em nhe"]


def _good(tmp_path):
    p = tmp_path / "good.tsv"
    p.write_text("".join(f"spam\t{t}\n" for t in SPAM) + "".join(f"ham\t{t}\n" for t in HAM), encoding="utf-8")
    return p


def _cv_data(tmp_path):
    """good.tsv: 20 spam and 40 ham of the shipped English set, enough for one `ml cv` split."""
    ds = read_dataset(ROOT / "engine" / "ml" / "data" / "sms_spam_collection_train.tsv")
    rows = [(y, t) for y, t in zip(ds.labels, ds.texts) if y][:20] + [(y, t) for y, t in zip(ds.labels, ds.texts)
                                                                       if not y][:40]
    p = tmp_path / "good.tsv"
    p.write_text("".join(f"{y}\t{t}\n" for y, t in rows), encoding="utf-8")
    return p


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "engine.cli", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)


def test_an_empty_file_and_a_header_alone_are_named_beside_a_good_file(tmp_path):
    good, empty, header = _good(tmp_path), tmp_path / "empty.tsv", tmp_path / "header.tsv"
    empty.write_bytes(b"")
    header.write_text("label\ttext\n", encoding="utf-8")
    ds, _ = read_all([good, empty, header])
    assert len(ds.texts) == len(SPAM) + len(HAM)
    assert ds.notes == [f"{empty}: no labelled messages in it", f"{header}: no labelled messages in it"]


def test_ml_eval_names_the_empty_file(tmp_path):
    good, empty = _good(tmp_path), tmp_path / "labelled.tsv"
    empty.write_bytes(b"")
    p = _cli("ml", "eval", "--data-dir", tmp_path / "dd", "--data", good, "--data", empty)
    assert p.returncode == 0, p.stderr
    assert f"{empty}: no labelled messages in it" in p.stderr
    assert json.loads(p.stdout)["n"] == len(SPAM) + len(HAM)


def test_ml_cv_says_what_a_file_left_out(tmp_path):
    good, header = _cv_data(tmp_path), tmp_path / "header.tsv"
    header.write_text("label\ttext\n", encoding="utf-8")
    p = _cli("ml", "cv", "--data-dir", tmp_path / "dd", "--data", good, "--extra", header, "--splits", "1",
             "--no-progress")
    assert p.returncode == 0, p.stderr
    assert f"telfilter ml cv: {header}: no labelled messages in it" in p.stderr


def test_ml_cv_shows_the_first_1000_bad_lines_as_train_and_eval_do(tmp_path):
    good, log = _cv_data(tmp_path), tmp_path / "verdicts.jsonl"
    log.write_text("".join(json.dumps({"action": "allow", "n": i}) + "\n" for i in range(1200)), encoding="utf-8")
    p = _cli("ml", "cv", "--data-dir", tmp_path / "dd", "--data", good, "--extra", log, "--splits", "1",
             "--no-progress")
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stderr.count("skipped bad line") == 1000
    assert "... and 200 more bad lines skipped (1200 in all)" in p.stderr
    assert f"{log}: no labelled messages in it" in p.stderr
