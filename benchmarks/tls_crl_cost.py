"""Server CPU per client-certificate TLS handshake with a `tls_client_crl` of N entries, against none, in one run.

    python -m benchmarks.tls_crl_cost [--sizes 1,10000,100000] [--n 300] [--rounds 2]

In process, memory BIOs (no sockets, no loop): the listener's own context (tls.server_context) with and without
the CRL, TLS 1.3, ECDSA P-256 certificates and a throwaway CA, the client presenting a certificate the CRL does not
list (a revoked one fails the same check, at the same cost). The figure is the thread CPU time spent in the
server's do_handshake calls, per handshake; each round measures every size in turn, the baseline (no CRL) first,
so the sizes share the machine's noise. Also the load at a reload: check_crl (tls_crl.py, the config check) and
the context, wall ms, once per size. Needs `cryptography` (the [test] extra) to make the CA and CRLs.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import ssl
import sys
import time
from pathlib import Path


def _pki(d: Path, sizes: list[int]) -> dict:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    now = dt.datetime.now(dt.timezone.utc)

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def issue(cn, key, ca_key, ca=False):
        b = (x509.CertificateBuilder().subject_name(name(cn)).issuer_name(name("bench CA")).public_key(key.public_key())
             .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
             .not_valid_after(now + dt.timedelta(days=7))
             .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        return b.sign(ca_key, hashes.SHA256())

    def write(stem, cert, key):
        (d / f"{stem}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (d / f"{stem}.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                          serialization.NoEncryption()))
    ca_key = ec.generate_private_key(ec.SECP256R1())
    write("ca", issue("bench CA", ca_key, ca_key, ca=True), ca_key)
    for stem in ("server", "client"):
        k = ec.generate_private_key(ec.SECP256R1())
        write(stem, issue(stem, k, ca_key), k)
    crls = {}
    for n in sizes:
        b = (x509.CertificateRevocationListBuilder().issuer_name(name("bench CA")).last_update(now)
             .next_update(now + dt.timedelta(days=7)))
        for i in range(n):          # serials the client's (random, 159 bits) is not among
            b = b.add_revoked_certificate(x509.RevokedCertificateBuilder().serial_number(10**20 + i * 7919)
                                          .revocation_date(now).build())
        crls[n] = d / f"crl_{n}.pem"
        crls[n].write_bytes(b.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))
    return crls


def _handshake_cpu_ms(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, n: int) -> float:
    cpu = 0.0
    for _ in range(n):
        si, so, ci, co = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
        s, c = server_ctx.wrap_bio(si, so, server_side=True), client_ctx.wrap_bio(ci, co)
        s_done = c_done = False
        while not (s_done and c_done):
            if not c_done:
                try:
                    c.do_handshake()
                    c_done = True
                except ssl.SSLWantReadError:
                    pass
            si.write(co.read())
            if not s_done:
                t = time.thread_time()
                try:
                    s.do_handshake()
                    s_done = True
                except ssl.SSLWantReadError:
                    pass
                cpu += time.thread_time() - t
            ci.write(so.read())
    return cpu / n * 1e3


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.tls_crl_cost", description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1,10000,100000", help="CRL entries, comma-separated (default 1,10000,100000)")
    ap.add_argument("--n", type=int, default=300, help="handshakes per size per round (default 300)")
    ap.add_argument("--rounds", type=int, default=2, help="rounds, every size in each (default 2)")
    a = ap.parse_args(argv)
    try:
        sizes = [int(s) for s in a.sizes.split(",") if s.strip()]
    except ValueError:
        ap.error(f"--sizes {a.sizes!r}: expected numbers separated by commas")
    try:
        import cryptography  # noqa: F401
    except ImportError:
        print("python -m benchmarks.tls_crl_cost needs the cryptography package (pip install '.[test]')",
              file=sys.stderr)
        return 2
    from engine.smpp_proxy.tls import server_context
    from engine.smpp_proxy.tls_crl import check_crl
    from .util import scratch_dir
    with scratch_dir() as tmp:
        d = Path(tmp)
        crls = _pki(d, sizes)
        client = ssl.create_default_context(cafile=str(d / "ca.pem"))
        client.check_hostname = False
        client.load_cert_chain(d / "client.pem", d / "client.key")
        cert, key, ca = str(d / "server.pem"), str(d / "server.key"), str(d / "ca.pem")
        ctxs, load = {0: server_context(cert, key, ca)}, {}
        for n, path in crls.items():
            t = time.perf_counter()
            why, _, _ = check_crl(str(path), ca, time.time())
            t1 = time.perf_counter()
            ctxs[n] = server_context(cert, key, ca, str(path))
            load[n] = {"bytes": path.stat().st_size, "check_crl_ms": round((t1 - t) * 1e3, 1),
                       "context_ms": round((time.perf_counter() - t1) * 1e3, 1), "refused": why}
        rounds = []
        for _ in range(a.rounds):
            row = {}
            for n, ctx in ctxs.items():
                _handshake_cpu_ms(ctx, client, 10)          # warm-up
                row[n] = round(_handshake_cpu_ms(ctx, client, a.n), 3)
            rounds.append(row)
    print(json.dumps({"server_cpu_ms_per_handshake": [{"no_crl" if k == 0 else f"crl_{k}": v for k, v in r.items()}
                                                      for r in rounds],
                      "ratio_to_no_crl": [{f"crl_{k}": round(v / r[0], 2) for k, v in r.items() if k}
                                          for r in rounds],
                      "load": {f"crl_{k}": v for k, v in load.items()}, "n": a.n}, indent=1))
    return 0


if __name__ == "__main__":
    from .util import exit_on_sigterm
    exit_on_sigterm()       # its TemporaryDirectory is removed on SIGTERM (timeout(1), util.child) too
    sys.exit(main())
