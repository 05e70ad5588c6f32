from pathlib import Path

from setuptools import Extension, find_packages, setup

config_files = [str(p) for p in Path("config").rglob("*") if p.is_file()]
data_files = {}
for f in config_files:
    data_files.setdefault(str(Path("share/telfilter") / Path(f).parent), []).append(f)

setup(
    name="telfilter",
    version="0.1.0",
    description="Telecom-grade inline SMS (SMPP 3.4) and call (SIP) filtering engine",
    long_description=Path("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=find_packages(include=["engine", "engine.*", "benchmarks", "benchmarks.*"]),
    package_data={"engine.ml": ["default_model/*", "data/*"], "benchmarks": ["sipp/*.xml"]},
    data_files=sorted(data_files.items()),
    install_requires=[
        "numpy>=1.26",
        "scikit-learn>=1.4",
        "scipy>=1.11",
        "pyroaring>=1.0",
        "msgpack>=1.0",
        "pyzmq>=25",
        "smpplib>=2.2",
        "tqdm>=4.66",
        "matplotlib>=3.8",
        "tzdata",
        "uvloop>=0.19; sys_platform != 'win32'",
        "prometheus_client>=0.17",
    ],
    extras_require={"test": ["pytest>=8", "hypothesis>=6.100", "phonenumbers>=8.13"]},
    # Compiled ML feature scorer; optional: without a C compiler the numpy path is used.
    ext_modules=[Extension("engine.ml._fastfeat", ["engine/ml/_fastfeat.c"], optional=True,
                           extra_compile_args=["-O2"])],
    entry_points={"console_scripts": ["telfilter=engine.cli:main"]},
)
