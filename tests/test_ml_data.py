"""Labelled files as people write them: a byte-order mark, CRLF, columns in any order, a TSV written by a CSV
writer (a text with quotes is wrapped and its quotes doubled), tabs inside the last column's text, 1/0 labels,
U+2028 inside a JSON text; and the shared files read exactly as they are (their own quotes kept)."""
import csv
import io
import json

from engine.ml.data import read_dataset

ROWS = [("spam", "prize", 'Chuc mung "ban" da trung thuong, soan "NHAN" gui 8077'),
        ("ham", "personal", "Anh oi toi nay an com nha nhe"),
        ("spam", "loan", "Vay tien nhanh\tgiai ngan trong ngay")]


def _write(p, text, bom=False, crlf=False):
    if crlf:
        text = text.replace("\n", "\r\n")
    p.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode())
    return p


def _plain(order=("label", "kind", "text")):
    idx = {"label": 0, "kind": 1, "text": 2}
    # a TSV cannot escape a tab: only a text in the last column may hold one
    rows = ROWS if order[-1] == "text" else [(a, b, t.replace("\t", " ")) for a, b, t in ROWS]
    return "\t".join(order) + "\n" + "".join("\t".join(r[idx[c]] for c in order) + "\n" for r in rows)


def test_a_bom_crlf_and_any_column_order(tmp_path):
    for i, order in enumerate([("label", "kind", "text"), ("text", "label", "kind"), ("kind", "label", "text")]):
        ds = read_dataset(_write(tmp_path / f"h{i}.tsv", _plain(order), bom=True, crlf=True))
        assert ds.errors == [] and ds.labels == [1, 0, 1] and ds.kinds == ["prize", "personal", "loan"], order
        if order[-1] == "text":                   # the last column keeps its tabs
            assert ds.texts[2] == ROWS[2][2]
        assert ds.texts[0] == ROWS[0][2]


def test_a_tsv_written_by_a_csv_writer(tmp_path):
    buf = io.StringIO()
    w = csv.writer(buf, delimiter="\t", lineterminator="\n")
    w.writerow(["label", "kind", "text"])
    w.writerows(ROWS[:2])
    ds = read_dataset(_write(tmp_path / "w.tsv", buf.getvalue()))
    assert ds.errors == [] and ds.texts == [ROWS[0][2], ROWS[1][2]]


def test_numeric_labels_and_a_line_separator_inside_a_json_text(tmp_path):
    ds = read_dataset(_write(tmp_path / "n.tsv", "label\ttext\n1\tWin a prize now\n0\tsee you at 5\n"))
    assert ds.errors == [] and ds.labels == [1, 0]
    lines = [json.dumps({"label": "spam", "text": "WIN\u2028a prize"}, ensure_ascii=False),
             json.dumps({"label": "ham", "text": "ok"})]
    ds = read_dataset(_write(tmp_path / "u.jsonl", "\n".join(lines) + "\n", bom=True))
    assert ds.errors == [] and ds.texts == ["WIN\u2028a prize", "ok"]
    # JSON numbers 1 / 0, as the error message offers (found by a first trial: they were refused); not true/2
    ds = read_dataset(_write(tmp_path / "j.jsonl", '{"label": 1, "text": "WIN"}\n{"label": 0, "text": "ok"}\n'
                                                   '{"label": 2, "text": "x"}\n{"label": true, "text": "y"}\n'))
    assert ds.labels == [1, 0] and len(ds.errors) == 2


def test_texts_wrapped_in_their_own_quotes_are_kept(tmp_path):
    ds = read_dataset(_write(tmp_path / "q.tsv", 'label\ttext\nham\t"I;m reaching in another 2 stops."\n'))
    assert ds.texts == ['"I;m reaching in another 2 stops."']


def test_a_tampered_or_malformed_model_is_refused_not_a_traceback(tmp_path):
    import shutil

    import numpy as np
    import pytest

    from engine.ml.model import ModelError, default_model_dir, load_scorer
    src = default_model_dir()
    card = json.loads((src / "card.json").read_text())

    def variant(name, card_edit=None, weights_edit=None):
        d = tmp_path / name
        shutil.copytree(src, d)
        c = dict(card)
        if weights_edit:
            with np.load(d / "weights.npz", allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
            weights_edit(arrays)
            np.savez(d / "weights.npz", **arrays)
            import hashlib
            c["weights_sha256"] = hashlib.sha256((d / "weights.npz").read_bytes()).hexdigest()
        if card_edit:
            card_edit(c)
        (d / "card.json").write_text(json.dumps(c))
        return d
    cases = [variant("nosha", lambda c: c.pop("weights_sha256")),
             variant("nocheck", lambda c: c.__setitem__("selfcheck", [])),
             variant("badcheck", lambda c: c.__setitem__("selfcheck", 5)),
             variant("intercept2", weights_edit=lambda a: a.__setitem__("intercept", np.zeros(2))),
             variant("nan", weights_edit=lambda a: a.__setitem__("calib", np.array([np.nan, 0.0])))]
    for d in cases:
        with pytest.raises(ModelError):
            load_scorer(d)
    assert load_scorer(src).version                        # the shipped one loads


def test_a_share_outside_0_1_is_refused_by_ml_train_and_cv():
    """Found by a first trial: --target-blocked-ham 5 (or -1) was taken and wrote a model that drops everything."""
    from .conftest import run_cli
    for cmd, flag, v in (("train", "--target-blocked-ham", "5"), ("train", "--target-blocked-ham", "-1"),
                         ("cv", "--target-blocked-ham", "0"), ("cv", "--test-size", "1")):
        r = run_cli("ml", cmd, "--data", "x.tsv", flag, v)
        assert r.returncode == 2 and "must be a share between 0 and 1" in r.stderr and "Traceback" not in r.stderr


def test_lines_not_in_utf8_are_bad_lines_not_text_with_its_letters_replaced(tmp_path):
    # a file saved as Windows-1252/1258 was decoded with U+FFFD for every accented letter and trained on, silently
    from engine.ml.data import read_dataset
    rows = "".join(f"spam\tPromo {i} now\n" for i in range(3))
    for name, body, line, col in (("a.tsv", b"label\ttext\n" + rows.encode() + b"ham\tAt\xe9 j\xe1\n", 5, 7),
                                  ("a.csv", b"label,text\n" + rows.replace("\t", ",").encode() + b"ham,caf\xe9\n", 5, 8),
                                  ("a.jsonl", b'{"label": "ham", "text": "caf\xe9"}\n' + b'{"label": "spam", "text": "x"}\n',
                                   1, 30)):
        f = tmp_path / name
        f.write_bytes(body)
        ds = read_dataset(f)
        assert not any("\ufffd" in t for t in ds.texts), ds.texts
        assert any(e.startswith(f"{f}:{line}: not valid UTF-8: byte 0x") and f"at column {col}" in e
                   for e in ds.errors), ds.errors
        assert ds.info["bad_lines"] == 1


def test_a_verdict_log_given_as_data_says_it_keeps_no_text_whatever_its_name(tmp_path):
    """Found by an analyst pass: serve's `--log` given to `ml train`/`eval` printed, for each of its lines,
    "record has no `text` field" (named .jsonl) or "expected label<TAB>text" (named .log, as the README's
    `--log verdicts.log`), never why it is no use; `ml compare` said it. A TSV line is never a JSON object, so
    JSON lines are read as such whatever the name."""
    verdict = {"ts": "2026-12-04T13:04:37+00:00", "kind": "sms", "pdu": "DeliverSm MO", "sender": "84910000299",
               "recipient": "5656", "action": "allow", "score": 0.0, "hits": []}
    for name in ("verdicts.jsonl", "verdicts.log", "verdicts.log.1"):
        p = tmp_path / name
        p.write_text(json.dumps(verdict) + "\n" + json.dumps(verdict) + "\n")
        ds = read_dataset(p)
        assert not ds.texts and len(ds.errors) == 2, name
        assert ds.errors[0].startswith(f"{p}:1: a verdict log keeps no message text"), ds.errors
    # JSON lines named otherwise are read as labelled records, and a TSV still as a TSV
    p = tmp_path / "labelled.txt"
    p.write_text(json.dumps({"label": "spam", "text": "vay tien nhanh"}) + "\n")
    assert read_dataset(p).texts == ["vay tien nhanh"] and not read_dataset(p).errors
    p.write_text("label\ttext\nham\t{\"a\": 1}\n")
    ds = read_dataset(p)
    assert ds.texts == ['{"a": 1}'] and ds.labels == [0] and not ds.errors


def test_a_text_with_half_a_surrogate_pair_is_a_bad_line_not_a_failed_training(tmp_path):
    # a JSON "\ud83d" escape without its other half: json.loads makes a lone surrogate, no character. `ml train`
    # trained on it, then stopped on writing the card ("'utf-8' codec can't encode character '\ud83d'"; such a text
    # was a self-check text), no model written and no line named (found by a probe of odd encodings)
    from .conftest import run_cli
    rows = [json.dumps({"label": "spam" if i % 4 == 0 else "ham", "text": t}) for i, t in
            enumerate(f"{w} message number {i} {'WIN cash prize call now' if i % 4 == 0 else 'see you at lunch'}"
                      for i, w in enumerate(["hello", "hey", "ok", "so"] * 15))]
    f = tmp_path / "train.jsonl"
    f.write_text('{"label": "spam", "text": "WIN a prize \\ud83d claim now"}\n' + "\n".join(rows) + "\n")
    ds = read_dataset(f)
    assert ds.errors == [f"{f}:1: not valid Unicode: \\ud83d is half of a surrogate pair, without its other half"]
    assert len(ds.texts) == len(rows)
    r = run_cli("ml", "train", "--data", f, "--out", tmp_path / "m")
    assert r.returncode == 1 and "Traceback" not in r.stderr and (tmp_path / "m" / "card.json").exists(), r.stderr
    assert "train.jsonl:1: not valid Unicode" in r.stderr


def test_bad_lines_are_named_in_file_order(tmp_path):
    # lines that are not UTF-8 were named before every other bad line, wherever they were: `spam` alone on line 2
    # came after line 4's bad byte, and the first 1,000 shown were not the file's first 1,000
    p = tmp_path / "mixed.tsv"
    p.write_bytes(b"ham\thello\nspam\nham\tok\nspam\t\xff win\nspam\n")
    ds = read_dataset(p)
    assert [e[len(f"{p}:"):].split(":")[0] for e in ds.errors] == ["2", "4", "5"], ds.errors
