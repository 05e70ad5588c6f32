"""The in-process long run (benchmarks/longrun.py) measures judge() as serve runs it: serve lets each verdict go
once it is logged, so the run must not keep them either. Keeping a chunk's 5,000 verdicts until its end made the
cyclic collector run inside judge() every ~700 messages (serve: every ~15,000), and those collections were in the
reported judge p99 and GC pauses."""
import gc

from engine.pipeline import Pipeline


def test_the_long_run_keeps_no_verdicts_that_make_the_collector_run_inside_judge(monkeypatch):
    from benchmarks.longrun import judge_run
    inside, during = [False], [0]
    judge = Pipeline.judge

    def timed(self, msg, commit=True):
        inside[0] = True
        try:
            return judge(self, msg, commit)
        finally:
            inside[0] = False

    def cb(phase, info):
        if phase == "start" and inside[0]:
            during[0] += 1
    monkeypatch.setattr(Pipeline, "judge", timed)
    thresholds = gc.get_threshold()
    gc.callbacks.append(cb)
    try:
        res = judge_run(12_000, 120, dnc_n=10_000)
    finally:
        gc.callbacks.remove(cb)
        gc.unfreeze()
        gc.set_threshold(*thresholds)      # (judge_run sets the collector up as serve does)
    assert res["n"] == 12_000
    assert during[0] <= 4, during[0]        # (kept verdicts: ~16 in 12,000 messages)
