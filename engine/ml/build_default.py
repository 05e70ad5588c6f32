"""Reproduce the bundled default model: `python -m engine.ml.build_default [--out DIR]`.

Trains with default settings on the SMS Spam Collection training part shipped in
engine/ml/data/ (see its README for the citation) and writes engine/ml/default_model/.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .data import read_labelled
from .model import default_model_dir
from .train import train

DATA = Path(__file__).resolve().parent / "data" / "sms_spam_collection_train.tsv"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default=str(default_model_dir()))
    ap.add_argument("--data", default=str(DATA))
    a = ap.parse_args(argv)
    texts, labels, info, errors = read_labelled(a.data)
    if errors:
        print("\n".join(errors), file=sys.stderr)
        return 2
    info["path"] = Path(a.data).name
    card, _ = train(texts, labels, [info], Path(a.out), log=lambda m: print(m, file=sys.stderr))
    print(f"wrote {a.out} ({card['model_version']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
