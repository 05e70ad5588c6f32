"""The analyst's loop end to end, against a real `telfilter serve` process: 5656 reports sent as
MOs from an SMSC simulator are stored by serve -> grouped into campaigns -> labelled -> exported
-> a model trained on the export -> compared with the served one -> promoted into the running
serve (the new version visible in `ctl stats`) -> rolled back (the old version visible again).

serve listens on 127.0.0.1 and a Unix socket in the test's tmp dir; both are stopped at the end."""
import json
import shutil
import subprocess
import sys

from engine.app import build
from engine.control_client import request
from engine.smpp_proxy.harness import ProxyHarness

from .conftest import CONFIG, ROOT
from .test_serve import free_port, wait_for

# three campaigns, each reported by several subscribers in its own wording (amounts, links, with
# and without diacritics), and personal or service texts that subscribers reported by mistake
CAMPAIGNS = [
    ["Ban da trung thuong 50.000.000d tu chuong trinh tri an, nhan thuong tai http://bit.ly/q{n} truoc 12h",
     "Bạn đã trúng thưởng 20.000.000đ từ chương trình tri ân, nhận thưởng tại http://tt.vn/{n} trước 12h",
     "Chuc mung ban da trung thuong 50.000.000d tu chuong trinh tri an, nhan thuong tai http://bit.ly/x{n} truoc 12h"],
    ["Vay tien nhanh khong can the chap, giai ngan trong 30 phut, lai suat 0% thang dau, goi 0901234{n:03d}",
     "Vay tien nhanh khong can the chap giai ngan trong 15 phut lai suat 0% thang dau LH 0912345{n:03d}"],
    ["Tai khoan ngan hang cua quy khach bi khoa, xac thuc ngay tai vcb-secure{n}.com de tranh mat tien",
     "TK ngan hang cua quy khach bi khoa, vui long xac thuc ngay tai vcb-verify{n}.com de tranh mat tien"],
]
HAM = ["Anh oi toi nay an com o nha nhe, em nau canh chua", "Con da den truong roi, chieu me don con luc 5h nhe",
       "Hop nhom luc 9h sang mai o phong 302, nho mang laptop", "Chuc mung sinh nhat ban than, cuoi tuan di cafe nhe",
       "Ma OTP cua ban la 482913, khong chia se ma nay cho bat ky ai", "Thu 7 nay ca lop di da ngoai, ai di thi bao minh",
       "Em gui anh file bao cao quy 3, anh xem giup em nhe", "Bo oi con het tien dien thoai, bo nap giup con 50k"]


def _cli(*args, cwd=ROOT, timeout=600):
    return subprocess.run([sys.executable, "-m", "engine.cli", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)


def _stats_version(sock):
    return request(sock, {"cmd": "stats"})["model"]["version"]


def test_reports_to_promoted_model_and_back(tmp_path):
    data, cfg, served = tmp_path / "data", tmp_path / "config", tmp_path / "served_model"
    shutil.copytree(CONFIG, cfg)
    toml = (cfg / "telfilter.toml").read_text()
    (cfg / "telfilter.toml").write_text(toml.replace('model = ""', f'model = "{served}"'))
    # the bundled model is the first one served: promoted with no serve running (installed only)
    r = _cli("ml", "promote", ROOT / "engine/ml/default_model", "--config", cfg, "--data-dir", data)
    assert r.returncode == 0, r.stderr
    first = json.loads(r.stdout)
    assert first["serve"]["serve"] == "none" and "serve loads it when it starts" in r.stderr

    sim = ProxyHarness(build(data_dir=tmp_path / "simdata"), with_proxy=False).start()
    port, ready, sock = free_port(), tmp_path / "ready", data / "control.sock"
    err = open(tmp_path / "serve.err", "w")
    p = subprocess.Popen([sys.executable, "-m", "engine.cli", "serve", "--config", cfg, "--data-dir", data,
                          "--smpp-listen", f"127.0.0.1:{port}", "--smsc", f"127.0.0.1:{sim.port}",
                          "--esme-account", "t:pw", "--sip-listen", "off", "--log", tmp_path / "verdicts.jsonl",
                          "--ready-file", ready], cwd=ROOT, stderr=err, stdout=subprocess.DEVNULL)
    try:
        assert wait_for(ready.exists, 60), (tmp_path / "serve.err").read_text()
        assert wait_for(lambda: any(s.bound for s in sim.sim.sessions), 30)
        assert _stats_version(sock) == first["model_version"]

        # subscribers report: S <number> <content> to 5656, each MO through serve's pipeline
        mos, n = [], 0
        for c, variants in enumerate(CAMPAIGNS):
            for k in range(4):
                n += 1
                mos.append((f"8491{n:07d}", f"S 098765432{c} " + variants[k % len(variants)].format(n=n)))
        for h in HAM:
            n += 1
            mos.append((f"8491{n:07d}", f"S 0977000{n:03d} {h}"))
        for src, text in mos:
            assert sim.run(sim.sim.send_mo, src, "5656", text)
        store = data / "reports.jsonl"
        assert wait_for(lambda: store.exists() and len(store.read_text().splitlines()) == len(mos), 30)
        before = store.read_bytes()

        # grouped: each campaign's reports together, each mistaken report alone
        r = _cli("reports", "list", "--json", "--data-dir", data, "--config", cfg)
        assert r.returncode == 0, r.stderr
        camps = [json.loads(x) for x in r.stdout.splitlines()]
        assert [c["reports"] for c in camps] == [4, 4, 4] + [1] * len(HAM)
        assert all(c["label"] == "unlabelled" for c in camps)

        # labelled: the three campaigns as spam in one go, the single reports as ham
        r = _cli("reports", "label", "spam", *[c["campaign"] for c in camps[:3]], "--data-dir", data)
        assert r.returncode == 0 and json.loads(r.stdout)["labelled"] == 12, r.stderr
        r = _cli("reports", "label", "ham", *[c["campaign"] for c in camps[3:]], "--data-dir", data)
        assert r.returncode == 0 and json.loads(r.stdout)["labelled"] == len(HAM), r.stderr
        r = _cli("reports", "list", "--json", "--label", "spam", "--data-dir", data)
        assert len(r.stdout.splitlines()) == 3

        # exported for training; the store serve appends to is untouched
        export = tmp_path / "labelled.tsv"
        r = _cli("reports", "export", "--out", export, "--data-dir", data)
        assert r.returncode == 0, r.stderr
        summary = json.loads(r.stdout)
        assert summary["spam"] == 12 and summary["ham"] == len(HAM)
        assert store.read_bytes() == before
        assert (data / "labels.jsonl").exists()

        # trained on the export alone (small, so the test stays quick)
        cand = tmp_path / "candidate"
        r = _cli("ml", "train", "--data", export,
                 "--out", cand, "--no-progress")
        assert r.returncode == 0, r.stderr
        cand_version = json.loads(r.stdout)["model_version"]
        assert cand_version != first["model_version"]

        # compared with the served model on the export: metrics for both, changed verdicts listed
        changes = tmp_path / "changes.jsonl"
        r = _cli("ml", "compare", "--model", cand, "--data", export, "--changes", changes, "--config", cfg)
        assert r.returncode == 0, r.stderr
        cmp_ = json.loads(r.stdout)
        assert [m["model_version"] for m in cmp_["models"]] == [first["model_version"], cand_version]
        assert cmp_["labelled"] and all("mcc" in m["metrics"] and "by_language" in m for m in cmp_["models"])
        assert cmp_["models"][1]["metrics"]["n"] == 20
        assert len(changes.read_text().splitlines()) == cmp_["changed"]

        # promoted into the running serve: the new version is what serve reports
        r = _cli("ml", "promote", cand, "--config", cfg, "--data-dir", data)
        assert r.returncode == 0, r.stderr
        out = json.loads(r.stdout)
        assert out["serve"]["reloaded"] and out["serve"]["model_version"] == cand_version
        assert out["previous_version"] == first["model_version"]
        assert _stats_version(sock) == cand_version
        r = _cli("ctl", "stats", "--data-dir", data)
        assert json.loads(r.stdout)["model"]["version"] == cand_version

        # rolled back: the bundled model serves again; a second rollback goes forward
        r = _cli("ml", "rollback", "--config", cfg, "--data-dir", data)
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["serve"]["model_version"] == first["model_version"]
        assert _stats_version(sock) == first["model_version"]
        r = _cli("ml", "rollback", "--config", cfg, "--data-dir", data)
        assert r.returncode == 0 and _stats_version(sock) == cand_version, r.stderr
        assert store.read_bytes() == before
    finally:
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
        sim.stop()
        err.close()
