"""What `podman build -f contrib/Containerfile .` sends from a developer's tree: its `COPY . /src` took everything."""
from tests.conftest import ROOT


def test_the_container_build_leaves_out_build_leftovers_and_the_history():
    # a tree where `setup.py build_ext --inplace` or the tests had run sent build/ and the in-place .so (setuptools
    # found build/ up to date and installed the host's compiled extensions, not ones built in the image), the whole
    # .git and benchmark results into /src, kept in the image's layers
    ignore = ROOT / ".dockerignore"           # podman reads it too (without a .containerignore)
    assert ignore.is_file(), "no .dockerignore beside contrib/Containerfile's build context"
    patterns = {line.strip() for line in ignore.read_text().splitlines() if line.strip() and not line.startswith("#")}
    for want in (".git", "build", "dist", "*.egg-info", "**/*.so", "**/__pycache__", "benchmarks/results",
                 ".hypothesis", ".pytest_cache"):
        assert want in patterns, want


def test_the_compiler_is_installed_and_purged_in_one_layer():
    # installed in one RUN and purged in the next, gcc and libc6-dev stayed in the image's first layer
    text = (ROOT / "contrib" / "Containerfile").read_text()
    runs = [r for r in text.replace("\\\n", " ").split("\nRUN ")[1:] if "gcc" in r]
    assert len(runs) == 1 and "install" in runs[0] and "purge" in runs[0], runs
