"""`python -m benchmarks.smpp_p99` removes its working directory (the seeded lists: ~20 MB at the default --dnc,
the verdict logs) however it ends. Before, only a run that finished removed it: one that failed (a proxy that did
not start) or was interrupted (Ctrl-C, SIGTERM) left /tmp/tf-p99-* behind (found by the bench probe). Nothing is
measured here."""
import pytest

import benchmarks.smpp_p99 as p99


def test_a_failed_run_leaves_no_working_directory(tmp_path, monkeypatch):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    monkeypatch.setattr(p99, "_wait_port", lambda port, timeout=30.0: False)       # "the responder did not start"

    def seed(d, n):
        raise KeyboardInterrupt         # interrupted while it seeds the lists
    import benchmarks.traffic
    monkeypatch.setattr(benchmarks.traffic, "seed_data", seed)
    with pytest.raises(KeyboardInterrupt):
        p99.main(["--dnc", "1000", "--seconds", "1", "--repeat", "1"])
    assert list(tmp_path.iterdir()) == []


def test_a_run_whose_responder_did_not_start_stops_what_it_started_and_leaves_no_directory(tmp_path, monkeypatch):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    monkeypatch.setattr(p99, "_wait_port", lambda port, timeout=30.0: False)
    started = []
    real_popen = p99.subprocess.Popen
    monkeypatch.setattr(p99.subprocess, "Popen", lambda *a, **k: started.append(real_popen(*a, **k)) or started[-1])
    with pytest.raises(RuntimeError, match="did not start"):
        p99.main(["--dnc", "1000", "--seconds", "1", "--repeat", "1"])
    assert started and all(p.poll() is not None for p in started)
    assert list(tmp_path.iterdir()) == []
