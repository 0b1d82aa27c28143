"""The aiohttp peer: one task per URL, a connector limited to -c, one connection per URL
(``force_close``, as fetchheads and ``curl --http1.0`` do), headers read and the body never.

Usage: python benchmarks/peer_aiohttp.py URLS_FILE CONCURRENCY > heads.txt
"""

from __future__ import annotations

import asyncio
import sys

import aiohttp


async def head(session: aiohttp.ClientSession, url: str, out: list[str]) -> None:
    try:
        async with session.get(url, allow_redirects=False) as response:
            lines = [f"HTTP/{response.version.major}.{response.version.minor} {response.status}"]
            lines += [f"{name}: {value}" for name, value in response.headers.items()]
            out.append("\n".join(lines) + "\n\n")
    except (aiohttp.ClientError, TimeoutError) as exc:
        out.append(f"{url} error {exc}\n")


async def main(urls: list[str], concurrency: int) -> None:
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=True)
    # Per connect and per read, as the others: a total would count the wait for a free slot.
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=10)
    out: list[str] = []
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.gather(*(head(session, url, out) for url in urls))
    sys.stdout.write("".join(out))


def read_urls(path: str) -> list[str]:
    with open(path) as f:
        return [line.strip() for line in f if line.strip()]


if __name__ == "__main__":
    asyncio.run(main(read_urls(sys.argv[1]), int(sys.argv[2])))
