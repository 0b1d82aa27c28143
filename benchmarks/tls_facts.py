"""The CPU an https target spends on its TLS facts: ``connection.tls_info``, the record's ``tls``.

    python benchmarks/tls_facts.py                      the installed checkout
    PYTHONPATH=OTHER/src python benchmarks/tls_facts.py another one (the peer: main)

One in-memory handshake (``ssl.MemoryBIO``, no socket) with a trustme certificate, verified and
with verification off (``-k``); then ``tls_info(ssl_object).to_record()`` is timed on it, best of
7 repeats, in µs per target. Every target of a real run does exactly this once after its
handshake, so the figure compares directly between two checkouts on one machine.
"""

from __future__ import annotations

import contextlib
import ssl
import timeit
from pathlib import Path

import trustme

from fetchheads.fetch import connection

PER_REPEAT = 20_000
REPEATS = 7


def handshake(client: ssl.SSLContext, server: ssl.SSLContext) -> ssl.SSLObject:
    """A completed client-side handshake with ``server``, over memory buffers."""
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    ours = client.wrap_bio(c_in, c_out, server_hostname="localhost")
    theirs = server.wrap_bio(s_in, s_out, server_side=True)
    for _ in range(10):
        for side, out, peer_in in ((ours, c_out, s_in), (theirs, s_out, c_in)):
            with contextlib.suppress(ssl.SSLWantReadError):  # until the peer has answered
                side.do_handshake()
            if data := out.read():
                peer_in.write(data)
    ours.do_handshake()  # raises if it did not complete
    return ours


def main() -> None:
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(server)
    verified = ssl.create_default_context()
    ca.configure_trust(verified)
    insecure = ssl.create_default_context()
    insecure.check_hostname = False
    insecure.verify_mode = ssl.CERT_NONE
    print(f"fetchheads from {Path(connection.__file__).parent}")
    for name, client in (("verified", verified), ("-k", insecure)):
        ssl_object = handshake(client, server)

        def one(ssl_object: ssl.SSLObject = ssl_object) -> None:
            connection.tls_info(ssl_object).to_record()

        one()  # the first decode (and cryptography's import) is not what a target pays
        best = min(timeit.repeat(one, number=PER_REPEAT, repeat=REPEATS)) / PER_REPEAT
        print(f"{name:9s} tls_info + to_record: {best * 1e6:6.1f} µs a target")


if __name__ == "__main__":
    main()
