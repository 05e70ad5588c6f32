"""`reports list --json`'s `first` and `last` are a campaign's earliest and latest report in time: reports carry
their node's UTC offset, and the strings sorted as text put 05:00+00:00 after 10:00+07:00 (03:00 UTC), while
`--sort recent` (which compares instants) ordered the campaigns by another report."""
import json

from engine.analyst.store import Workspace

TEXT = "Ban da trung thuong 50.000.000d tu chuong trinh tri an, nhan thuong tai http://bit.ly/abc truoc 12h"


def test_first_and_last_are_by_instant_not_by_string(tmp_path):
    times = ["2026-12-05T10:00:00+07:00", "2026-12-05T05:00:00+00:00", "2026-12-05T04:00:00Z"]
    (tmp_path / "reports.jsonl").write_text("".join(
        json.dumps({"reporter": f"+849120000{i}", "reported": "+84987654321", "content": TEXT + f" {i}",
                    "time": t, "kind": "S", "label": None}) + "\n" for i, t in enumerate(times)))
    (c,) = Workspace(tmp_path).campaigns.values()
    s = c.summary()
    assert s["first"] == "2026-12-05T10:00:00+07:00" and s["last"] == "2026-12-05T05:00:00+00:00", s
