"""What the source distribution holds: a distribution packager builds and tests from it, and packages contrib/."""
import subprocess
import sys
import tarfile

from tests.conftest import ROOT


def test_the_sdist_holds_contrib_and_what_its_tests_import_and_no_build_leftovers(tmp_path):
    # it held tests/test_*.py (setuptools' default) but not conftest.py, the helpers or the vectors they import, so
    # pytest in the unpacked sdist failed to collect; and not contrib/ (the systemd unit, logrotate, Containerfile)
    subprocess.run([sys.executable, "setup.py", "-q", "sdist", "--dist-dir", str(tmp_path)], cwd=ROOT, check=True,
                   capture_output=True, timeout=120)
    (sdist,) = tmp_path.glob("telfilter-*.tar.gz")
    with tarfile.open(sdist) as t:
        names = {n.split("/", 1)[1] for n in t.getnames() if "/" in n}
    for want in ("contrib/telfilter.service", "contrib/logrotate.conf", "contrib/Containerfile", "contrib/acceptance.py",
                 ".dockerignore", "tests/conftest.py", "tests/__init__.py", "tests/sip_helpers.py", "engine/ml/_fastfeat.c",
                 "engine/_blake2b.h", "engine/ml/default_model/weights.npz", "config/rules/20-advertising-sms.toml"):
        assert want in names, want
    assert any(n.startswith("tests/vectors/") for n in names)
    assert not [n for n in names if n.endswith((".so", ".pyc")) or "__pycache__" in n]
