"""What a grown rule set costs: the shipped pack, then the pack plus N generated rules of each kind, in one run.

    python -m benchmarks.rules_scale [--sizes 50,200] [--kinds kw,rx,sender,host,counter] [--n 2000] [--seed 1]

A carrier's engineers add rules over the years; this generates them as they would (seeded): keyword rules of
10-200 words and phrases each, Vietnamese with and without diacritics (a few that the mix holds), `text_regex`
rules, sender lists of 10-200 numbers and names, link-host lists (`has_url` and a host alternation) and counters
over varied keys and windows. For each set, in this process: the load as a reload does it (`load_rules`, no full
lint; CPU seconds), the memory it holds (RSS), and the in-process judge's thread CPU per message (p50 / p99) on
the realistic mix of benchmarks/traffic.py with fresh state (the first 10% not counted). Prints one JSON object.
Bounded: the defaults take ~15 s on 2 cores (--sizes 1000: about a minute more).
"""
from __future__ import annotations

import argparse
import json
import random
import shutil
import time
from pathlib import Path

import numpy as np

from .util import positive, scratch_dir

PHRASES = ["khuyến mãi", "khuyen mai", "giảm giá", "giam gia", "trúng thưởng", "trung thuong", "vay tiền", "vay tien",
           "giải ngân", "giai ngan", "lãi suất", "lai suat", "ưu đãi", "uu dai", "miễn phí", "mien phi", "xác minh",
           "xac minh", "tài khoản", "tai khoan", "bị khóa", "bi khoa", "nhận thưởng", "nhan thuong", "cá cược",
           "ca cuoc", "nổ hũ", "no hu", "tài xỉu", "tai xiu", "hoàn tiền", "hoan tien", "thẻ cào", "the cao",
           "sim số đẹp", "sim so dep", "đất nền", "dat nen", "việc nhẹ lương cao", "viec nhe luong cao",
           "giai dac biet", "soan nhan", "lien he", "cccd", "win", "prize", "claim", "free entry", "urgent", "cash"]
SYL = ("ba be bi bo bu ca co cu da de di do du ga gi go ha he hi ho hu kha khe khi kho khu la le li lo lu ma me mi "
       "mo mu na ne ni no nu pha phi pho qua que ra re ri ro ru sa se si so su ta te ti to tu tha the thi tho thu tra "
       "tre tri tro tru va ve vi vo vu xa xe xi xo xu").split()
TONES = str.maketrans("aeiou", "àéìòù")
KINDS = ("kw", "rx", "sender", "host", "counter")


def _word(rng):
    w = " ".join(rng.choice(SYL) + rng.choice(["", "n", "ng", "t", "c", "m"]) for _ in range(rng.choice([1, 2, 2, 3])))
    return w.translate(TONES) if rng.random() < 0.5 else w


def _when(kind, i, rng) -> dict:
    if kind == "kw":
        words = set(rng.sample(PHRASES, rng.randint(0, 3)))
        n = rng.randint(10, 200)
        while len(words) < n:
            words.add(_word(rng))
        return {"keywords": sorted(words, key=lambda _: rng.random())}
    if kind == "rx":
        s = rng.choice(SYL)
        return {"text_regex": rng.choice([rf"\b{s}\w*\s+\d{{3,6}}\b", rf"(?:ma|code)\s*{s}{i}\d{{2}}", rf"\b{s}x{i}\b",
                                          rf"gui\s+\d{{4}}\s+{s}", rf"\b(?:{s}|{rng.choice(SYL)}){i}\b"])}
    if kind == "sender":
        return {"sender": [f"849{rng.randrange(10**8):08d}" for _ in range(rng.randint(10, 200))]
                + [f"BRAND{i}X{k}" for k in range(rng.randint(0, 5))]}
    if kind == "host":
        hosts = [f"{rng.choice(SYL)}{rng.choice(SYL)}{i}-{k}" for k in range(rng.randint(10, 50))]
        return {"has_url": True, "text_regex": r"(?<![\w.-])(?:" + "|".join(hosts) + r")\.(?:com|vn|net|example)\b"}
    key = rng.choice([["sender"], ["recipient"], ["sender", "recipient"], ["sender", "content"], ["template"]])
    return {"sender_kind": "number", "counter": {"key": key, "window": rng.choice(["1m", "5m", "1h", "24h", "7d"]),
                                                 "limit": rng.randint(3, 200)}}


def _toml(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml(x) for x in v) + "]"
    return "{ " + ", ".join(f"{k} = {_toml(x)}" for k, x in v.items()) + " }"


def shipped_rules() -> Path:
    # as the engine finds its shipped config: `config/` beside this package exists in a checkout only; installed
    # (`pip install .`), the pack is engine/shipped_config/rules and the run stopped "rules directory does not exist"
    from engine.config import shipped_config_dir
    return shipped_config_dir() / "rules"


def generate(out: Path, n: int, kinds=KINDS, seed: int = 1, shipped: Path | None = None) -> Path:
    """The shipped rules plus n generated rules of each kind, one file per kind (each under the 4 MiB file cap)."""
    shutil.copytree(shipped or shipped_rules(), out)
    rng = random.Random(seed)
    for kind in kinds:
        chunk, lines = 0, []
        for i in range(n):
            lines.append(f'[[rule]]\nsymbol = "GEN_{kind.upper()}_{i}"\napplies_to = ["sms-mt"]\n'
                         f'score = {rng.choice([0.5, 1.0, 2.0])}\n[rule.when]\n'
                         + "".join(f"{k} = {_toml(v)}\n" for k, v in _when(kind, i, rng).items()) + "\n")
            if len(lines) == 250 or i == n - 1:
                (out / f"90-gen-{kind}-{chunk:03d}.toml").write_text("".join(lines), encoding="utf-8")
                chunk, lines = chunk + 1, []
    return out


def measure(rules_dir: Path, objs, data_dir: Path) -> dict:
    from engine.app import build
    from engine.pipeline import EngineState
    from engine.rules.loader import load_rules

    def rss_mb():
        with open("/proc/self/status") as f:
            return next(int(x.split()[1]) / 1024 for x in f if x.startswith("VmRSS"))
    pipe = build(data_dir=data_dir, persist=False)
    r0 = rss_mb()
    t = time.process_time()
    pipe.rules = load_rules(rules_dir, full_lint=False)
    load_s = time.process_time() - t
    held = rss_mb() - r0
    pipe.state = EngineState()
    cpu = []
    tc = time.thread_time_ns
    for m in objs:
        a = tc()
        pipe.judge(m)
        cpu.append((tc() - a) / 1e3)
    cpu = np.array(cpu[len(cpu) // 10:])
    return {"rules": len(pipe.rules.rules), "load_cpu_s": round(load_s, 3), "rss_mb": round(held, 1),
            "judge_cpu_p50_us": round(float(np.percentile(cpu, 50)), 1),
            "judge_cpu_p99_us": round(float(np.percentile(cpu, 99)), 1)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.rules_scale", description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="50,200", help="generated rules of each kind per set (default 50,200)")
    ap.add_argument("--kinds", default=",".join(KINDS), help=f"of {', '.join(KINDS)} (default all)")
    ap.add_argument("--n", type=positive(), default=2000, help="messages judged per set (default 2000)")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args(argv)
    from engine.records import parse_record
    from .traffic import records, seed_data
    kinds = [k for k in a.kinds.split(",") if k]
    bad = [k for k in kinds if k not in KINDS]
    if bad:
        ap.error(f"unknown kind(s) {', '.join(bad)}: use {', '.join(KINDS)}")
    try:
        sizes = [positive()(x) for x in a.sizes.split(",")]
    except argparse.ArgumentTypeError as e:
        ap.error(f"--sizes {a.sizes!r}: {e}")
    with scratch_dir() as td:
        td = Path(td)
        nums = seed_data(td / "data", 20_000)
        recs = list(records(a.n, dnc_sample=nums[:: max(1, len(nums) // 10_000)]))
        for r in recs:
            r.pop("mix")
        objs = [parse_record(r) for r in recs]
        sets = [("shipped", 0, None)] + [(f"+{n} each", n, k) for n in sizes for k in [kinds]]
        out = []
        for name, n, ks in sets:
            d = generate(td / f"rules{n}", n, ks, a.seed) if n else shipped_rules()
            out.append({"set": name, **measure(d, objs, td / "data")})
    print(json.dumps({"n": a.n, "kinds": kinds, "sets": out}, indent=1))
    return 0


if __name__ == "__main__":
    from .util import exit_on_sigterm
    exit_on_sigterm()       # its TemporaryDirectory is removed on SIGTERM (timeout(1), util.child) too
    raise SystemExit(main())
