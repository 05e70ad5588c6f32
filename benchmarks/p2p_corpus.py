"""Seeded generators of ordinary person-to-person SMS and of spam campaigns, for the
SHARED_TEMPLATE precision simulation (tests/test_template_sim.py, scripts in the README).

Ordinary texts are built clause by clause from a grammar (greeting, subject, verb, object,
time, place, tail; statements, questions, requests, reports), in unaccented Vietnamese,
accented Vietnamese and English, with names and numbers where people put them. Every text
is distinct and two texts rarely share more than a phrase: they are not near-duplicates
of each other. A campaign is one template sent by many senders with the names, numbers,
amounts and links changed, with or without diacritics.
"""
from __future__ import annotations

import random

NAMES = ["Lan", "Minh", "Hoa", "Tuan", "Mai", "Nam", "Linh", "Duc", "Huong", "Khoa", "Trang", "Phuong", "Hung",
         "Thao", "Quang", "Ngoc", "Son", "Vy", "Binh", "Hai", "Anna", "Tom", "Jack", "Emma", "Long", "Dung"]
VI_SUBJ = ["em", "anh", "chi", "minh", "toi", "con", "me", "bo", "ba", "co", "chu", "bac", "ban", "tui",
           "bon minh", "ca nha", "vo anh", "chong em", "thang be", "con be", "nhom minh", "sep"]
VI_VERB = ["di", "ve", "an", "uong", "mua", "ban", "gui", "nhan", "goi", "hop", "lam", "hoc", "choi", "xem",
           "doc", "viet", "nau", "don", "dua", "cho", "muon", "tra", "sua", "dat", "huy", "doi", "gap", "tham",
           "tap", "giat", "rua", "tim", "hoi", "ke", "mo", "dong", "bat", "tat", "sac", "chuyen", "thanh toan",
           "dang ky", "in", "ky", "kiem tra", "chuan bi", "dat lich", "goi lai cho", "mang theo", "cat"]
VI_OBJ = ["com", "pho", "bun cha", "ca phe", "tra sua", "sach", "ao khoac", "giay", "xe may", "dien thoai",
          "may tinh", "tai lieu", "bao cao", "hop dong", "hoa don", "tien dien", "tien nha", "ve may bay",
          "ve tau", "thuoc", "rau", "thit bo", "ca", "trai cay", "banh mi", "qua sinh nhat", "hoa", "bai tap",
          "de cuong", "lich hop", "chia khoa", "vi", "the ngan hang", "bang lai", "ho so", "don xin nghi",
          "tu lanh", "may giat", "dieu hoa", "cua so", "vali", "o", "sua cho be", "ta", "do choi", "banh kem",
          "nuoc mam", "gao", "trung", "hoa qua", "cho", "meo", "quan ao", "chan", "goi", "man", "xe dap"]
VI_TIME = ["toi nay", "sang mai", "chieu nay", "trua nay", "cuoi tuan", "thu hai", "thu ba", "thu tu", "thu nam",
           "thu sau", "thu bay", "chu nhat", "tuan sau", "thang sau", "bay gio", "ti nua", "hom qua", "dem qua",
           "luc {h} gio", "{h}h{m}", "ngay {d}", "truoc {h} gio", "sau {h} gio", "nam phut nua", "sang nay"]
VI_PLACE = ["o nha", "o cong ty", "o truong", "o cho", "o sieu thi", "o quan {n}", "o benh vien", "o san bay",
            "o ga", "o cong vien", "o nha ba noi", "o nha ngoai", "o phong {r}", "o tang {f}", "ngoai duong",
            "o cua hang", "o ngan hang", "o buu dien", "o tiem thuoc", "o nha sach", "duoi sanh", "o bai xe"]
VI_TAIL = ["nhe", "nha", "a", "khong", "chua", "duoc khong", "nhe anh", "nhe em", "roi", "luon", "di", "day",
           "nhe me", "a chi", "ha", "the", "nhe ban", "nhe con", "", "", ""]
VI_OPEN = ["", "", "", "alo", "{n} oi", "anh oi", "em oi", "me oi", "bo oi", "chi oi", "Chao {n}", "a lo {n}",
           "ong xa oi", "vo oi", "con oi", "sep oi", "co oi"]
VI_LINK = ["va", "roi", "xong", "sau do", "nhung", "vi", "nen", "con"]
VI_ACCENT = {"em": "em", "anh": "anh", "chi": "chị", "minh": "mình", "toi": "tôi", "con": "con", "me": "mẹ",
             "bo": "bố", "ba": "ba", "di": "đi", "ve": "về", "an": "ăn", "uong": "uống", "mua": "mua", "ban": "bạn",
             "gui": "gửi", "nhan": "nhận", "goi": "gọi", "hop": "họp", "lam": "làm", "hoc": "học", "choi": "chơi",
             "xem": "xem", "doc": "đọc", "nau": "nấu", "don": "đón", "dua": "đưa", "cho": "chợ", "muon": "mượn",
             "tra": "trả", "sua": "sửa", "dat": "đặt", "gap": "gặp", "tham": "thăm", "toi nay": "tối nay",
             "sang mai": "sáng mai", "chieu nay": "chiều nay", "cuoi tuan": "cuối tuần", "o nha": "ở nhà",
             "o cong ty": "ở công ty", "nhe": "nhé", "nha": "nha", "roi": "rồi", "khong": "không",
             "chua": "chưa", "com": "cơm", "pho": "phở", "ca phe": "cà phê", "sach": "sách", "tai lieu": "tài liệu",
             "bao cao": "báo cáo", "hop dong": "hợp đồng", "hoa don": "hóa đơn", "thuoc": "thuốc",
             "va": "và", "xong": "xong", "sau do": "sau đó", "nhung": "nhưng", "vi": "vì", "nen": "nên",
             "duoc khong": "được không", "bay gio": "bây giờ", "ti nua": "tí nữa", "hom qua": "hôm qua"}
EN_SUBJ = ["I", "we", "you", "they", "mum", "dad", "the kids", "my boss", "Sarah", "the team", "your brother"]
EN_VERB = ["pick up", "drop off", "bring", "call", "send", "buy", "check", "meet", "finish", "book", "cancel",
           "move", "fix", "print", "sign", "pay", "clean", "cook", "wash", "find", "return", "order", "water",
           "charge", "collect", "share", "review", "update", "feed", "walk"]
EN_OBJ = ["the car", "the keys", "dinner", "the report", "the tickets", "the kids", "groceries", "the parcel",
          "my laptop", "the slides", "the invoice", "the plants", "the dog", "the contract", "some milk", "bread",
          "the photos", "the booking", "your jacket", "the charger", "the rent", "the bills", "the cake", "a table"]
EN_TIME = ["tonight", "tomorrow morning", "at {h}", "after lunch", "on Monday", "on Friday", "next week",
           "before {h}pm", "this weekend", "in {m} minutes", "later today", "right now", "after work", "by noon"]
EN_TAIL = ["ok?", "thanks", "pls", "love you", "see you", "let me know", "no worries", "cheers", "xx", "", "", ""]
EN_FORMS = ["can you {v} {o} {t}", "{s} will {v} {o} {t}", "did {s} {v} {o}", "don't forget to {v} {o} {t}",
            "{s} need to {v} {o} {t}", "could {s} {v} {o} for me", "just {v} {o}, {s} can do the rest",
            "{s} already {v} {o}", "remind me to {v} {o} {t}", "who is going to {v} {o} {t}"]
VI_FORMS = ["{s} {v} {o} {t} {p}", "{s} da {v} {o} {p} roi", "{s} co {v} {o} {t} khong", "nho {v} {o} giup {s}",
            "{s} dang {v} {o} {p}", "{t} {s} {v} {o} {p}", "{s} chua {v} {o}", "{s} can {v} {o} {t}",
            "de {s} {v} {o} cho", "sao {s} khong {v} {o}", "{s} muon {v} {o} {t}", "{t} {s} se {v} {o}"]


def _fill(rng, s: str) -> str:
    return s.format(n=rng.choice(NAMES), h=rng.randrange(1, 12), m=rng.choice(("00", "15", "30", "45")),
                    d=rng.randrange(1, 29), r=rng.randrange(100, 900), f=rng.randrange(1, 20))


def _vi_clause(rng) -> str:
    form = rng.choice(VI_FORMS)
    return form.format(s=rng.choice(VI_SUBJ), v=rng.choice(VI_VERB), o=rng.choice(VI_OBJ),
                       t=_fill(rng, rng.choice(VI_TIME)), p=_fill(rng, rng.choice(VI_PLACE)))


def _accent(text: str) -> str:
    words = text.split(" ")
    out, i = [], 0
    while i < len(words):
        two = " ".join(words[i:i + 2])
        if two in VI_ACCENT:
            out.append(VI_ACCENT[two])
            i += 2
        else:
            out.append(VI_ACCENT.get(words[i], words[i]))
            i += 1
    return " ".join(out)


def p2p_text(rng) -> str:
    if rng.random() < 0.3:                                  # English
        parts = []
        for _ in range(rng.choice((1, 1, 2, 2, 3))):
            parts.append(rng.choice(EN_FORMS).format(s=rng.choice(EN_SUBJ), v=rng.choice(EN_VERB),
                                                     o=rng.choice(EN_OBJ), t=_fill(rng, rng.choice(EN_TIME))))
        lead = rng.choice(("", "", "Hi {n}, ", "Hey, ", "{n} - ", "Babe, "))
        text = _fill(rng, lead) + ". ".join(p[0].upper() + p[1:] for p in parts)
        tail = rng.choice(EN_TAIL)
        return " ".join(f"{text}{rng.choice(('', '.', '!', '?'))} {tail}".split())
    clauses = [_vi_clause(rng)]
    for _ in range(rng.choice((0, 0, 1, 1, 2))):
        clauses.append(rng.choice(VI_LINK) + " " + _vi_clause(rng))
    text = " ".join(clauses + [rng.choice(VI_TAIL)])
    if rng.random() < 0.35:
        text = _accent(text)
    opener = _fill(rng, rng.choice(VI_OPEN))
    if opener:
        text = opener + ", " + text
    text = " ".join(text.split())
    return text[0].upper() + text[1:] + rng.choice(("", "", ".", "!", "?", " :)"))


CAMPAIGNS = [
    "Chuc mung {n}! So dien thoai cua ban da trung thuong {a} trieu dong tu chuong trinh tri an khach hang. "
    "Lien he {p} de nhan giai truoc ngay {d}/{mo}.",
    "Vay tien nhanh chi can CCCD, giai ngan trong {m} phut, lai suat {r}%/thang. Goi ngay {p} gap {n} de duoc ho tro.",
    "Tai khoan cua quy khach {n} da bi tam khoa do dang nhap bat thuong. Vui long xac thuc tai {l} trong {m} gio.",
    "Kinh gui anh chi {n}, chung toi co can ho {m}m2 gia chi {a} ty tai quan {d}, so hong rieng. LH {p} xem nha.",
    "Hi {n}, earn ${a} a day working from home with just your phone. Reply YES or visit {l} now to start",
    "Ban {n} oi, minh dang co ma giam gia {r}% cho don hang dau tien tai {l}, nhap ma {c} truoc {h}h hom nay nhe",
    "Your parcel {c} could not be delivered. Please confirm your address at {l} within {m} hours or it will be returned",
    "Tuyen cong tac vien ban hang online, thu nhap {a} trieu moi thang, khong can kinh nghiem. Inbox {n} qua so {p}",
]


def campaign_text(rng, template: str) -> str:
    t = template.format(n=rng.choice(NAMES), a=rng.randrange(5, 900), p="09" + f"{rng.randrange(10**8):08d}",
                        d=rng.randrange(1, 29), mo=rng.randrange(1, 13), m=rng.randrange(2, 60),
                        r=rng.randrange(1, 50), h=rng.randrange(8, 23), c=f"{rng.randrange(10**6):06d}",
                        l=f"{rng.choice(('bit.ly', 'tinyurl.com', 'qr.vn', 'shorturl.at'))}/"
                          f"{''.join(rng.choice('abcdefghijkmnpqrstuvwxyz') for _ in range(6))}")
    if rng.random() < 0.4:
        t = _accent(t)                                      # typed with diacritics
    return t


def p2p_corpus(n: int, seed: int = 1) -> list[str]:
    """n distinct ordinary texts."""
    rng = random.Random(seed)
    seen: set = set()
    out = []
    while len(out) < n:
        t = p2p_text(rng)
        if t not in seen:
            seen.add(t)
            out.append(t)
    return out
