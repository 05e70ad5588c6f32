"""`rules test --corpus -` reads the corpus from standard input, as `check --jsonl -` (and `ml predict --jsonl -`)
read theirs: it was opened as a file named `-` ("telfilter: error: -: No such file or directory", exit 2), so a
corpus could not be piped in (`zcat corpus.jsonl.gz | telfilter rules test --corpus -`)."""
import json

from .conftest import CONFIG, run_cli


def test_the_corpus_from_standard_input(data_dir):
    corpus = (CONFIG / "sample" / "messages.jsonl").read_text(encoding="utf-8")
    p = run_cli("rules", "test", "--corpus", "-", "--data-dir", data_dir, input=corpus + "nope\n")
    assert p.returncode == 0, p.stderr
    report = json.loads(p.stdout)
    assert report["corpus"] == "-" and report["skipped_lines"] == 1
    assert report["messages"] == sum(1 for x in corpus.splitlines() if x.strip())
    assert "-:%d: skipped: not JSON" % (len(corpus.splitlines()) + 1) in p.stderr
