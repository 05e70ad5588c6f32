"""Seeded traffic generator for the benchmarks: a realistic mix whose shares are stated.

Shares (of SMS): ordinary person-to-person 55%, registered advertising 15% (some at night, some
to DNC numbers), spam from plain numbers 12%, phishing links 3%, bank/OTP from CSKH brandnames
10%, short-code MOs 1%, long UCS2 Vietnamese (concatenated on the wire) 4%.
"""
from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import numpy as np

SHARES = {"p2p": 0.55, "ad": 0.15, "spam": 0.12, "phish": 0.03, "cskh": 0.10, "mo": 0.01, "ucs2_long": 0.04}
HAM = ["Toi nay an com o nha nhe, me nau canh chua.", "Anh oi chieu nay 3h hop phong 402 nhe",
       "Hi, are we still on for lunch tomorrow at 12?", "Em den roi, dang dung o cong truong cho anh.",
       "Ok see you at the station in 10 minutes", "Mai di cafe khong? Cho quen o duong Tran Hung Dao nhe.",
       "Can you send me the report before Friday please", "Chuc mung sinh nhat ban, chuc ban tuoi moi that nhieu suc khoe!"]
SPAM = ["WINNER!! You have won a £1000 cash prize. Call 09061701461 to claim now. T&C apply",
        "Chuc mung quy khach trung giai dac biet 500 trieu. Soan NHAN gui 8x77 de nhan thuong ngay",
        "FREE entry to our weekly competition, text WIN to 80086 now! 18+ only",
        "Vay tien nhanh 50 trieu chi can CCCD, giai ngan 15 phut, lien he 0938111222",
        "URGENT! Your mobile number has been awarded a 2000 prize guaranteed. Call 09066362206"]
ADS = ["[QC] Giam 30% toan bo don hang cuoi tuan. Tu choi QC soan TC gui 5656",
       "QC: Mua 1 tang 1 tai Mega Mart tu nay den chu nhat. Huy: soan HUY gui 8xxx",
       "[QC] Uu dai thanh vien thang 12, tich diem x2"]
CSKH = ["Ma OTP cua quy khach la {n}. Khong chia se ma nay cho bat ky ai.",
        "So du TK cua quy khach tang 5.000.000 VND luc 10:15. SD: 12.350.000 VND."]
PHISH = "Tai khoan cua ban bi khoa. Xac minh ngay tai vnbank-xacminh.example/login?id={n}"
UCS2 = ("Chào chị Hoa, em gửi lại lịch họp tuần sau: thứ Hai 9 giờ họp giao ban, thứ Ba 14 giờ gặp khách hàng "
        "ở quận 1, thứ Tư cả ngày đào tạo nội bộ, thứ Năm nghỉ bù, thứ Sáu 10 giờ tổng kết dự án {n}.")
NAMES = ["Lan", "Minh", "Hoa", "Tuan", "Mai", "Nam", "Linh", "Duc", "Anna", "Tom", "Huong", "Khoa"]
OPENERS = ["Chao {n},", "Hi {n},", "{n} oi,", "Anh {n},", "Em {n} oi,", "Hey {n}!", "Chi {n},"]
BODIES = ["toi nay an com o nha nhe", "mai hop luc {h} gio nhe", "are we still on for lunch at {h}",
          "nho mua giup em it rau", "cho minh muon cuon sach hom truoc", "can you call me back after {h}",
          "con den truong roi", "the report is ready, check your email", "chieu nay di da bong khong",
          "meeting moved to room {r}", "em gui anh tai lieu roi do", "don't forget mum's birthday on {d}",
          "me nau canh chua cho ca nha", "xe bi hong, em den muon {h} phut", "see you at the station at {h}"]
CLOSERS = ["", " nhe.", " thanks!", " :)", " Ok?", " cam on nhieu.", " bye", " hen gap lai."]
BASE = datetime(2026, 11, 2, 1, 0, tzinfo=timezone.utc)      # 08:00 in Hanoi


def msisdn(rng) -> str:
    return "849" + f"{rng.randrange(10**8):08d}"


def messages(n: int, seed: int = 7, dnc_sample=None):
    """Yield n message records (the `check` JSONL shape). `dnc_sample`: numbers known to be on the DNC."""
    rng = random.Random(seed)
    kinds, weights = zip(*SHARES.items())
    for i in range(n):
        k = rng.choices(kinds, weights)[0]
        t = BASE + timedelta(seconds=i * 0.05 + rng.random())
        rec = {"id": i, "kind": "sms", "account": "bench", "direction": "mt", "recipient": msisdn(rng),
               "sender": msisdn(rng), "time": t.isoformat(), "mix": k}
        if k == "p2p":
            body = rng.choice(BODIES).format(h=rng.randrange(1, 12), r=rng.randrange(100, 600), d=rng.randrange(1, 29))
            extra = rng.choice(BODIES).format(h=rng.randrange(1, 12), r=rng.randrange(100, 600), d=rng.randrange(1, 29)) \
                if rng.random() < 0.5 else ""
            rec["text"] = f"{rng.choice(OPENERS).format(n=rng.choice(NAMES))} {body}{', ' + extra if extra else ''}{rng.choice(CLOSERS)}"
        elif k == "spam":
            rec["text"] = rng.choice(SPAM)
        elif k == "phish":
            rec["text"] = PHISH.format(n=rng.randrange(10**6))
        elif k == "cskh":
            rec["sender"], rec["text"] = "VNBANK", rng.choice(CSKH).format(n=rng.randrange(10**6))
        elif k == "ad":
            rec["sender"], rec["text"] = "SHOPABC", rng.choice(ADS)
            if rng.random() < 0.2:
                rec["time"] = (t + timedelta(hours=14)).isoformat()              # 22:00+ local
            if dnc_sample is not None and len(dnc_sample) and rng.random() < 0.3:
                rec["recipient"] = "+" + str(int(dnc_sample[rng.randrange(len(dnc_sample))]))
        elif k == "mo":
            rec.update(direction="mo", recipient="5656", text=rng.choice(["DK DNC", "HUY DNC S", "S 0909888777 spam"]))
        else:
            rec["text"] = UCS2.format(n=rng.randrange(1000))
        yield rec


def _sorted_unique(x: np.ndarray) -> np.ndarray:
    x.sort()
    keep = np.empty(len(x), bool)
    keep[:1] = True
    np.not_equal(x[1:], x[:-1], out=keep[1:])
    return x[keep]


def dnc_numbers(n: int, seed: int = 1) -> np.ndarray:
    """n distinct Vietnamese mobile numbers as E.164 ints (uint64), sorted."""
    rng = np.random.default_rng(seed)
    out = _sorted_unique(84_300_000_000 + rng.integers(0, 700_000_000, size=int(n * 1.03) + 16, dtype=np.uint64))
    while len(out) < n:
        more = 84_300_000_000 + rng.integers(0, 700_000_000, size=n // 10 + 16, dtype=np.uint64)
        out = _sorted_unique(np.concatenate([out, more]))
    if len(out) > n:
        out = np.delete(out, rng.choice(len(out), len(out) - n, replace=False))
    return out
