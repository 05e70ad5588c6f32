"""A line of labels.jsonl that is not UTF-8, or whose JSON has a `\\ud83d` escape without its pair, is a bad line
said as the report store's are (README: "Bad lines in either file ..."): it was said in the codec's words
("'utf-8' codec can't decode byte 0xe9 in position 33"), a line starting 0xFF 0xFE read as UTF-16, and an id holding
a lone surrogate taken as a label."""
import json

from engine.analyst.store import LabelLog


def test_label_lines_not_utf8_or_with_a_lone_surrogate_are_bad_lines_said_as_the_stores(tmp_path):
    p = tmp_path / "labels.jsonl"
    p.write_bytes(b'{"id": "r1", "label": "h\xe9m"}\n'
                  b'{"id": "r\\ud83d", "label": "spam"}\n'
                  b'\xff\xfe{}\n'
                  + json.dumps({"id": "r2", "label": "ham"}).encode() + b"\n")
    labels, errors = LabelLog(tmp_path).load()
    assert labels == {"r2": "ham"}
    assert errors == [f"{p}:1: not valid UTF-8: byte 0xe9 at column 25",
                      f"{p}:2: not valid Unicode: \\ud83d is half of a surrogate pair, without its other half",
                      f"{p}:3: not valid UTF-8: byte 0xff at column 1"], errors
