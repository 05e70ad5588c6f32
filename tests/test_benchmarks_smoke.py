"""The benchmark steps that run in process, on a few messages: their figures are measured in
benchmarks/ (never asserted here), but a step that no longer runs against today's engine (a model
format change, a renamed field) must fail here rather than in the next capacity planner's run."""
from benchmarks.pipeline_bench import run


def test_pipeline_step_runs_on_the_mix_with_its_scikit_learn_baseline():
    out = run(400, 1000)
    assert out["n"] == 400
    assert out["ml_sklearn_us_per_msg"] and out["ml_sklearn_us_per_msg"] > 0
    assert set(out["verdicts_by_mix"]) and all(sum(v.values()) for v in out["verdicts_by_mix"].values())
