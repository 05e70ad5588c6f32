from pathlib import Path

from setuptools import Extension, find_packages, setup


TRAIN = ["scikit-learn>=1.4", "scipy>=1.11", "matplotlib>=3.8"]

setup(
    name="telfilter",
    version="0.1.0",
    description="Telecom-grade inline SMS (SMPP 3.4) and call (SIP) filtering engine",
    long_description=Path("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    # The shipped config/ is installed inside the package as engine/shipped_config, so it is found
    # beside the code whatever the install scheme (--user, a venv, a wheel, a container): as
    # data_files under <prefix>/share it was not, for `pip install --user` puts it under the user
    # base while the lookup used sys.prefix ("config directory does not exist").
    packages=find_packages(include=["engine", "engine.*", "benchmarks", "benchmarks.*"]) + ["engine.shipped_config"],
    package_dir={"engine.shipped_config": "config"},
    package_data={"engine.ml": ["default_model/*", "data/*"], "benchmarks": ["sipp/*.xml"],
                  "engine.shipped_config": ["*.toml", "rules/*", "sample/*"]},
    install_requires=[
        "numpy>=1.26",
        "pyroaring>=1.0",
        "msgpack>=1.0",
        "pyzmq>=25",
        "smpplib>=2.2",
        "tqdm>=4.66",
        "tzdata",
        "uvloop>=0.19; sys_platform != 'win32'",
        "prometheus_client>=0.17",
        "redis>=5.0",           # serve --state redis://… (shared counters, DNC change stream)
        "google-re2>=1.1,<2",   # rule regexes in linear time (engine/rules/linear.py; without it: re, with a warning)
    ],
    # a serve node needs none of the training stack (scikit-learn, scipy, matplotlib: ~230 MB);
    # `telfilter ml train|eval`, `report` plots and `bench` say which extra to install
    extras_require={"train": TRAIN, "analyst": ["textual>=0.80"],
                    "test": ["pytest>=8", "hypothesis>=6.100", "phonenumbers>=8.13", "textual>=0.80", "cryptography>=41", *TRAIN]},
    # Compiled ML feature scorer; optional: without a C compiler the numpy path is used.
    ext_modules=[Extension("engine.ml._fastfeat", ["engine/ml/_fastfeat.c"], optional=True,
                           depends=["engine/ml/_featids.h", "engine/ml/_fastnorm.h", "engine/ml/_normtext.h", "engine/ml/_normshapes.h",
                                    "engine/_blake2b.h"],
                           extra_compile_args=["-O2"]),
                 Extension("engine.sip_screen._sipfast", ["engine/sip_screen/_sipfast.c"], optional=True,
                           depends=["engine/sip_screen/_sipdialog.h", "engine/sip_screen/_sipfields.h",
                                    "engine/sip_screen/_sipvia.h", "engine/sip_screen/_sippump.h",
                                    "engine/sip_screen/_sipdatagram.h", "engine/sip_screen/_sipaddr.h",
                                    "engine/sip_screen/_siphead.h", "engine/sip_screen/_sipgrammar.h",
                                    "engine/sip_screen/_sipcheck.h", "engine/sip_screen/_sipmsg.h",
                                    "engine/sip_screen/_siprecent.h", "engine/sip_screen/_sipscan.h",
                                    "engine/_blake2b.h"],
                           extra_compile_args=["-O2"]),
                 # template_key's masking (textnorm.py keeps the pure-Python path)
                 Extension("engine._textnorm", ["engine/_textnorm.c"], optional=True,
                           depends=["engine/_textdigest.h", "engine/_blake2b.h"],
                           extra_compile_args=["-O2"]),
                 # a message datetime's POSIX time and second (stamps.py keeps the Python ones), a call's and an SMS's verdict
                 # line (verdictlog.py), a message id's crash-spool record (smpp_proxy/idspool.py)
                 Extension("engine._stamps", ["engine/_stamps.c"], optional=True,
                           depends=["engine/_callline.h", "engine/_smsline.h", "engine/_idrecord.h"],
                           extra_compile_args=["-O2"]),
                 # a bare-digit address read as an int (numbers.py keeps the Python one)
                 Extension("engine._numbers", ["engine/_numbers.c"], optional=True, extra_compile_args=["-O2"]),
                 # a submit_sm's lean view, its common case (codec/lean.py keeps the Python one)
                 Extension("engine.smpp_proxy.codec._leanview", ["engine/smpp_proxy/codec/_leanview.c"], optional=True,
                           extra_compile_args=["-O2"]),
                 # the state tables' hot paths (slots.py, counters.py, history.py keep the Python ones)
                 Extension("engine.rules._slotsfast", ["engine/rules/_slotsfast.c"], optional=True,
                           depends=["engine/rules/_slotobj.h", "engine/rules/_slottable.h", "engine/rules/_slotcounters.h", "engine/rules/_slothistory.h", "engine/rules/_slotat.h",
                                    "engine/rules/_planrun.h", "engine/rules/_rulefn.h"],
                           extra_compile_args=["-O2"])],
    entry_points={"console_scripts": ["telfilter=engine.cli:main"]},
)
