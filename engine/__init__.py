"""telfilter: inline SMS (SMPP 3.4) and call (SIP) filtering engine.

The decision core is `engine.pipeline.Pipeline`; every path (CLI `check`, SMPP proxy,
SIP screen) builds a `Message` or `Call` and gets back one `Verdict`.
"""
__version__ = "0.1.0"
