"""The realistic mix for the capacity benchmarks: seeded, stated shares, fresh content, state that grows.

Theory of operation: a carrier's SMS stream is mostly person-to-person texts from plain numbers
(each sender sends few messages, each text different), registered brandname traffic (QC
advertising, some of it to DNC numbers; CSKH bank OTPs) and spam campaigns: one template with
names, numbers and amounts varied, sent from many plain-number senders at once, a new campaign
starting as an old one ends. Person-to-person texts come from a word-bigram Markov chain over
the ham messages of the shipped training data (plus Vietnamese clauses), so they are natural,
distinct and not near-duplicates of one another; that matters, because a replayed or
template-like p2p stream would measure SHARED_TEMPLATE/FLOOD policy instead of the engine.
Every distinct sender, recipient and template adds counter state, which is what the long-run
step watches grow.

`records(n, seed)` yields `check --jsonl` records; `submit_sm(rec)` encodes one as an SMPP
submit_sm with our own few lines of struct (the load generator does not use the engine's codec).
`seed_data(dir, dnc_n)` writes the lists the mix refers to (registry, blacklist, DNC).
"""
from __future__ import annotations

import bisect
import json
import random
import struct
from collections import defaultdict, deque
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

from .p2p_corpus import _accent as accent, _vi_clause as vi_clause, p2p_text as grammar_text

from .gen import NAMES, dnc_numbers

SHARES = {"p2p": 0.52, "p2p_ucs2": 0.05, "ad": 0.10, "ad_dnc": 0.03, "cskh": 0.10, "campaign": 0.17, "phish": 0.03}
QC_BRANDS = ["SHOPABC", "MEGAMART", "FASHIONX", "DIENMAYPRO", "TRAVELVN"]
CSKH_BRANDS = ["VNBANK", "TECHBANK", "EVNHCM"]
PHISH_DOMAIN = "vnbank-xacminh.example"
SENDERS_CSV = ("sender,owner,category,valid_from,valid_to,accounts\n"
               + "".join(f"{b},{b.title()} Co,QC,2020-01-01,,\n" for b in QC_BRANDS)
               + "".join(f"{b},{b.title()} Co,CSKH,,,\n" for b in CSKH_BRANDS)).encode()
BLACKLIST_CSV = f"kind,value\ndomain,{PHISH_DOMAIN}\nnumber,0987000666\n".encode()
ADS = ["[QC] {b}: giam {p}% toan bo don hang cuoi tuan, ma {c}. Tu choi QC soan TC gui 5656",
       "[QC] {b} uu dai thanh vien thang {m}: tich diem x{k}, qua tang {p}0.000d. Huy: soan HUY gui 5656",
       "[QC] {b} mo ban dot {m}, tra gop 0%, giam them {p}% voi ma {c}. Tu choi: TC gui 5656"]
CSKH = ["Ma OTP cua quy khach la {n}. Khong chia se ma nay cho bat ky ai. {b}",
        "{b}: So du TK {a} tang {p}.000.000 VND luc {h}:{mi}. SD: {q}.350.000 VND.",
        "{b} thong bao: hoa don thang {m} cua quy khach la {q}{p}.000d, han thanh toan {d}/{m}."]
# campaign frames: {x} filler words make every campaign its own template; the rest varies per message
FRAMES = ["Chuc mung {name}! So {phone} da trung {amt} trieu {x}. Soan NHAN {code} gui 8x{k}{k} truoc {h}h",
          "Vay tien {x} nhanh {amt} trieu chi can CCCD, giai ngan {k} phut, lien he {phone} gap {name}",
          "{name} oi, viec lam them {x} tai nha {amt}0k/ngay, khong can kinh nghiem. Zalo {phone} ma {code}",
          "URGENT {name}! Your number {phone} has won a {amt}00 prize {x}. Call now, claim code {code}",
          "Khuyen mai {x}: nap the {amt}0.000d tang {k}0%, chi hom nay. Goi {phone}, ma {code}",
          "Tai khoan {name} bi tam khoa {x}. Goi ngay {phone} de xac minh, ma ho so {code}"]
FILLER = ("sieu hot doc quyen mien phi dac biet lan cuoi tri an khach vip ngay vang bat ngo gap "
          "cuc lon hom nay cuoi tuan thang nay tet sale gia soc uy tin chinh hang toan quoc").split()
VI_CLAUSES = [
    "toi nay {n} ve muon", "mai {n} qua don em luc {h} gio", "nho mua giup {n} it trai cay",
    "{n} da gui tai lieu qua email roi", "cuoi tuan nay ca nha ve que", "em dang o cho {n}",
    "chieu nay hop luc {h} gio o phong {r}", "anh {n} goi lai cho em nhe", "con hoc xong chua",
    "xe bi hong nen den muon {h} phut", "tien dien thang nay {r} nghin", "me dan {n} mang ao am"]
UCS2_CLAUSES = ["chào {n}", "tối nay {h} giờ cả nhà ăn cơm ở nhà nhé", "em gửi {n} lịch họp thứ {h} phòng {r}",
                "{n} ơi mai đi cà phê ở đường {r} không", "con đến trường rồi", "chiều {h} giờ đón con nhé",
                "mẹ nấu canh chua rồi", "anh nhớ mua sữa cho bé", "xe hỏng nên em đến muộn {r} phút",
                "cuối tuần này về quê thăm ông bà", "tiền điện tháng này {r} nghìn", "chị {n} gọi lại cho em với",
                "hôm nay trời mưa to quá", "họp lớp dời sang thứ {h}", "nhớ mang áo ấm nha {n}", "cảm ơn {n} nhiều"]
BASE = datetime(2026, 11, 2, 3, 0, tzinfo=timezone.utc)      # 10:00 in Hanoi: advertising hours

_CHAIN = None


def _chain():
    """Word-bigram successors over the ham of the shipped training data (read once)."""
    global _CHAIN
    if _CHAIN is None:
        d = Path(__file__).resolve().parent.parent / "engine" / "ml" / "data"
        texts = []
        with open(d / "sms_spam_collection_train.tsv", encoding="utf-8") as f:
            for line in f:
                label, _, text = line.rstrip("\n").partition("\t")
                if label == "ham":
                    texts.append(text.strip('"'))
        nxt = defaultdict(list)
        for t in texts:
            w = t.split()
            for a, b in zip(["^"] + w, w + ["$"]):
                nxt[a].append(b)
        _CHAIN = {k: tuple(v) for k, v in nxt.items()}
    return _CHAIN


def p2p_text(rng: random.Random) -> str:
    """One person-to-person text: 30% from the clause grammar of tests/p2p_corpus.py (Vietnamese with
    and without diacritics, English; names, times, places), the rest from the Markov chain."""
    if rng.random() < 0.3:
        return grammar_text(rng)[:160]
    ch, rnd = _chain(), rng.random
    out, w = [], "^"
    while len(out) < 30:
        nxt = ch[w]
        w = nxt[int(rnd() * len(nxt))]
        if w == "$":
            if len(out) >= 4:
                break
            w = "^"
            continue
        out.append(w)
    return " ".join(out)[:160]


def ucs2_text(rng: random.Random) -> str:
    """A text with Vietnamese diacritics (sent as UCS2): a short clause and a grammar clause."""
    first = rng.choice(UCS2_CLAUSES).format(n=rng.choice(NAMES), h=rng.randrange(2, 12), r=rng.randrange(1, 99))
    return f"{first}, {accent(vi_clause(rng))}".capitalize()[:70]


class Distinct:
    """Redraws a text already sent among the last `keep` (a bounded memory, oldest forgotten
    first): the p2p stream is distinct texts, as the issue's acceptance replay is, so that what
    SHARED_TEMPLATE finds in it is the engine's false matches and not the generator's repeats."""

    def __init__(self, keep: int = 500_000):
        self.keep, self.seen, self.order = keep, set(), deque()

    def __call__(self, make, rng) -> str:
        for _ in range(50):
            t = make(rng)
            if t not in self.seen:
                break
        self.seen.add(t)
        self.order.append(t)
        if len(self.order) > self.keep:
            self.seen.discard(self.order.popleft())
        return t


def msisdn(rng) -> str:
    return f"849{int(rng.random() * 1e8):08d}"


class _Campaign:
    __slots__ = ("frame", "x", "senders", "left")

    def __init__(self, rng):
        self.frame = rng.choice(FRAMES)
        self.x = " ".join(rng.sample(FILLER, 2))
        self.senders = [msisdn(rng) for _ in range(rng.randrange(15, 300))]
        self.left = rng.randrange(300, 3000)        # messages before the campaign ends

    def text(self, rng):
        return self.frame.format(name=rng.choice(NAMES), phone="09" + f"{rng.randrange(10**8):08d}",
                                 amt=rng.randrange(5, 900), code=f"{rng.randrange(36**5):05X}",
                                 k=rng.randrange(1, 10), h=rng.randrange(8, 23), x=self.x)


def campaign_heavy(share: float) -> dict:
    """SHARES with spam campaigns at `share` of the messages, the other kinds scaled down in proportion."""
    rest = {k: v for k, v in SHARES.items() if k != "campaign"}
    scale = (1.0 - share) / sum(rest.values())
    return {**{k: v * scale for k, v in rest.items()}, "campaign": share}


def records(n: int, seed: int = 11, dnc_sample=None, t0: datetime | None = BASE, rate: float = 2000.0, campaigns: int = 6,
            shares: dict | None = None):
    """n records of the mix (`shares`, default SHARES), `rate` messages per second of traffic time from `t0`
    (no `time` when t0 is None: the SMPP proxy judges by its own clock)."""
    rng = random.Random(seed)
    kinds, weights = zip(*(shares or SHARES).items())
    cum = list(np.cumsum(weights) / sum(weights))
    active = [_Campaign(rng) for _ in range(campaigns)]
    step = 1.0 / rate
    distinct = Distinct()
    for i in range(n):
        u = rng.random()
        k = kinds[min(bisect.bisect_right(cum, u), len(kinds) - 1)]
        rec = {"id": i, "kind": "sms", "account": "bench", "direction": "mt", "recipient": msisdn(rng), "mix": k}
        if t0 is not None:
            rec["time"] = (t0 + timedelta(seconds=i * step)).isoformat()
        if k == "p2p":
            rec["sender"], rec["text"] = msisdn(rng), distinct(p2p_text, rng)
        elif k == "p2p_ucs2":
            rec["sender"] = msisdn(rng)
            rec["text"] = distinct(ucs2_text, rng)
        elif k in ("ad", "ad_dnc"):
            b = rng.choice(QC_BRANDS)
            rec["sender"] = b
            rec["text"] = rng.choice(ADS).format(b=b, p=rng.randrange(5, 60), c=f"{rng.randrange(10**4):04d}",
                                                 m=rng.randrange(1, 13), k=rng.randrange(2, 5))
            if k == "ad_dnc" and dnc_sample is not None and len(dnc_sample):
                rec["recipient"] = "+" + str(int(dnc_sample[rng.randrange(len(dnc_sample))]))
        elif k == "cskh":
            b = rng.choice(CSKH_BRANDS)
            rec["sender"] = b
            rec["text"] = rng.choice(CSKH).format(b=b, n=f"{rng.randrange(10**6):06d}", a=f"x{rng.randrange(10**4):04d}",
                                                  p=rng.randrange(1, 99), q=rng.randrange(1, 99), h=rng.randrange(24),
                                                  mi=f"{rng.randrange(60):02d}", m=rng.randrange(1, 13), d=rng.randrange(1, 29))
        elif k == "campaign":
            c = active[rng.randrange(len(active))]
            rec["sender"], rec["text"] = rng.choice(c.senders), c.text(rng)
            c.left -= 1
            if c.left <= 0:
                active[active.index(c)] = _Campaign(rng)
        else:
            rec["sender"] = msisdn(rng)
            rec["text"] = f"Tai khoan cua ban bi khoa. Xac minh ngay tai {PHISH_DOMAIN}/login?id={rng.randrange(10**6)}"
        yield rec


def seed_data(data_dir: Path, dnc_n: int) -> np.ndarray:
    """Registry, blacklist and a DNC of dnc_n numbers (S; every other one also V) in data_dir."""
    from pyroaring import BitMap64
    from engine.lists import ListStore
    store = ListStore(Path(data_dir))
    store.import_csv("senders", SENDERS_CSV)
    store.import_csv("blacklist", BLACKLIST_CSV)
    L = store.load()
    nums = dnc_numbers(dnc_n)
    L.dnc_s, L.dnc_v = BitMap64(nums), BitMap64(nums[::2])
    store.save(L, ("dnc",))
    return nums


# ------------------------------------------------------------------ SMPP encoding (no engine codec)
_HDR = struct.Struct(">IIII")


def _cstr(s: str) -> bytes:
    return s.encode("ascii") + b"\0"


# GSM 03.38 default alphabet, unpacked as SMPP carries it with data_coding 0: ASCII letters, digits and most
# punctuation keep their codes; these do not, and the brackets of "[QC]" need the extension table (escape 0x1B)
_GSM = {**{c: bytes([c]) for c in range(0x20, 0x7B) if chr(c).isalnum() or chr(c) in " !\"#%&'()*+,-./:;<=>?"},
        ord("\n"): b"\n", ord("@"): b"\x00", ord("£"): b"\x01", ord("$"): b"\x02", ord("_"): b"\x11",
        ord("^"): b"\x1b\x14", ord("{"): b"\x1b\x28", ord("}"): b"\x1b\x29", ord("\\"): b"\x1b\x2f",
        ord("["): b"\x1b\x3c", ord("~"): b"\x1b\x3d", ord("]"): b"\x1b\x3e", ord("|"): b"\x1b\x40",
        ord("€"): b"\x1b\x65"}


def gsm_unpacked(text: str) -> bytes | None:
    """GSM 03.38 septets one per octet, or None when the text needs UCS2."""
    try:
        return b"".join([_GSM[ord(ch)] for ch in text])
    except KeyError:
        return None


def submit_sm(rec: dict) -> bytes:
    """SMPP 3.4 §4.4.1 submit_sm, sequence_number 0 (the generator sets it per send)."""
    s = rec["sender"]
    # SMPP 3.4 §5.2.5: TON 5 = alphanumeric (brandnames), 1 = international (MSISDNs)
    ston, snpi = (5, 0) if not s.lstrip("+").isdigit() else (1, 1)
    text = rec["text"]
    sm, dcs = gsm_unpacked(text), 0                 # SMPP 3.4 §5.2.19: 0 = SMSC default alphabet (GSM here)
    if sm is None:
        sm, dcs = text.encode("utf-16-be"), 8      # UCS2
    if len(sm) > 254:
        sm = sm[:254] if dcs == 0 else sm[:140]
    body = (_cstr("") + bytes([ston, snpi]) + _cstr(s.lstrip("+")) + bytes([1, 1]) + _cstr(rec["recipient"].lstrip("+"))
            + bytes([0, 0, 0]) + _cstr("") + _cstr("") + bytes([0, 0, dcs, 0, len(sm)]) + sm)
    return _HDR.pack(16 + len(body), 0x00000004, 0, 0) + body


def pdus(n: int, seed: int, dnc_sample=None, shares: dict | None = None) -> list[bytes]:
    return [submit_sm(r) for r in records(n, seed, dnc_sample, t0=None, shares=shares)]


if __name__ == "__main__":      # print a few records: python -m benchmarks.traffic N
    import argparse
    from .util import positive
    ap = argparse.ArgumentParser(prog="python -m benchmarks.traffic",
                                 description="Print N records of the realistic SMPP mix, one JSON object a line.")
    ap.add_argument("n", nargs="?", type=positive(), default=10, help="records (default 10)")
    for r in records(ap.parse_args().n):
        print(json.dumps(r, ensure_ascii=False))
