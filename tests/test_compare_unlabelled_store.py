"""`ml compare --data reports.jsonl` on a store nobody has labelled yet reads each report's `content` as unlabelled
text; found by an analyst pass, V (call) reports were scored with them, their content ("goi dien xung la cong an")
counted in every model's actions and listed among the changed messages, though the labelled store, `ml train` and
`reports export` leave them out: their content describes a call."""
import json
import subprocess
import sys

from .conftest import ROOT

BUNDLED = ROOT / "engine/ml/default_model"


def test_call_reports_are_left_out_of_an_unlabelled_store_and_counted(tmp_path):
    lines = [("S", "Ban da trung thuong 50.000.000d, nhan thuong tai http://bit.ly/abc truoc 12h"),
             ("S", "Anh oi toi nay an com o nha nhe"),
             ("V", "goi dien tu xung la cong an yeu cau chuyen tien"),
             ("FW", "[QC] Sieu sale 12.12 giam den 50% tai Shop ABC. Tu choi QC soan TC gui 5656")]
    store = tmp_path / "reports.jsonl"
    store.write_text("".join(json.dumps({"reporter": f"+8491200000{i}", "reported": "+84987654321", "content": t,
                                         "time": "2026-12-01T10:00:00+07:00", "kind": k, "label": None}) + "\n"
                             for i, (k, t) in enumerate(lines)))
    r = subprocess.run([sys.executable, "-m", "engine.cli", "ml", "compare", "--model", BUNDLED, "--model", BUNDLED,
                        "--data", store], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["messages"] == 3 and not out["labelled"]
    assert sum(out["models"][0]["actions"].values()) == 3
    assert f"{store}: 1 V (call) reports skipped: their content describes a call" in r.stderr
