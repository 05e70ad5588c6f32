"""Look-alike letters of other scripts in a Latin text, read as the Latin letters they imitate (the classifier's
input, before features.normalise).

A spammer writes Cyrillic а, е, о, р, с, і or Greek Β, Ο into a Latin text ("Vіеttеl: TB cua QK bi khoa", "Саsino
оnline", 10 of the shared Vietnamese set's spam) so that its words are no longer the words a filter learnt: the
hashed n-grams of "Саsino" share nothing with those of "Casino". The rules read such letters as Latin already
(textnorm.fold, its table `textnorm.CONFUSABLE`, Unicode TR39's look-alikes); the classifier reads them here, and the
text gains a `_mixscript_` word, since writing a Latin text with them is itself a spammer's habit.

A genuine Cyrillic, Greek or Armenian text is left as it is: look-alikes are read as Latin throughout only when every
letter of those scripts in the text is a look-alike and the text has Latin letters (the text is Latin, disguised);
otherwise only inside a word that also has a Latin letter ("Приветcтвую" typed with a Latin c: a Russian word, but
the word is then mixed, and only it changes). Latin's own variants (dotless ı, script ɑ) are Latin letters and
left to the features (a Turkish "Kızım" is not disguised). Training, `ml eval` and the scorer call `latin()` on every text, so their inputs are the same by
construction; an ASCII text costs one `isascii()`.
"""
from __future__ import annotations

import re

from ..textnorm import CONFUSABLE as _ALL

# the look-alikes of those scripts only: Latin's own variants in textnorm's table (dotless ı, script ɑ, ɡ …) are
# Latin letters, left to the features
CONFUSABLE = {k: v for k, v in _ALL.items() if 0x370 <= k <= 0x58F}
MARK = " _mixscript_"
# the scripts whose look-alikes CONFUSABLE lists: Greek and Coptic, Cyrillic and its supplement, Armenian
_OTHER = re.compile("[\u0370-\u058f]")
_LETTER = re.compile(r"[^\W\d_]")
_LATIN = re.compile(r"[a-zA-Z\u00c0-\u024f\u1e00-\u1eff]")
_WORD = re.compile(r"[^\W_]+")


def latin(text: str) -> str:
    """`text` with look-alike letters read as Latin ones and `MARK` appended when it has any; else `text` itself."""
    if text.isascii() or _OTHER.search(text) is None:
        return text
    others = [c for c in _OTHER.findall(text) if _LETTER.match(c)]
    if not others:
        return text
    if all(ord(c) in CONFUSABLE for c in others) and _LATIN.search(text) is not None:
        out = text.translate(CONFUSABLE)
    else:
        out = _WORD.sub(_mixed_word, text)
    return out + MARK if out != text else text


def _mixed_word(m: re.Match) -> str:
    w = m.group(0)
    if _OTHER.search(w) is None:
        return w
    return w.translate(CONFUSABLE) if _LATIN.search(w) is not None else w   # one other script only: as written
