"""Reproduce the bundled default model: `python -m engine.ml.build_default [--out DIR]`.

Trains with default settings on the data shipped in engine/ml/data/ (see its README for
provenance and citation): the SMS Spam Collection training part, the Vietnamese SMS training
set and our own Vietnamese and English examples; writes engine/ml/default_model/.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .data import read_labelled
from .model import default_model_dir
from .train import train

_D = Path(__file__).resolve().parent / "data"
DATA = [_D / "sms_spam_collection_train.tsv", _D / "vi_sms_train.tsv", _D / "vi_examples.jsonl", _D / "en_examples.jsonl"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default=str(default_model_dir()))
    ap.add_argument("--data", action="append", help="labelled file (repeatable; default: the shipped data)")
    a = ap.parse_args(argv)
    texts, labels, infos = [], [], []
    for path in a.data or DATA:
        t, lab, info, errors = read_labelled(path)
        if errors:
            print("\n".join(errors), file=sys.stderr)
            return 2
        info["path"] = Path(path).name
        texts += t
        labels += lab
        infos.append(info)
    card, _ = train(texts, labels, infos, Path(a.out), log=lambda m: print(m, file=sys.stderr))
    print(f"wrote {a.out} ({card['model_version']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
