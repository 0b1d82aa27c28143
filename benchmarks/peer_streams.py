"""The naive peer: one asyncio task per URL, asyncio streams, a semaphore of -c.

What a Python programmer writes first. Reads URLs (http://host:port/path) from a file, prints each
response head (up to the blank line) to stdout. Used by benchmarks/run.py as a reference point.
"""

from __future__ import annotations

import asyncio
import sys
from urllib.parse import urlsplit


async def head(url: str, limit: asyncio.Semaphore, out: list[bytes]) -> None:
    parts = urlsplit(url)
    async with limit:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(parts.hostname, parts.port or 80), 10
            )
        except (OSError, TimeoutError) as exc:
            out.append(f"{url} error {exc}\n".encode())
            return
        try:
            path = parts.path or "/"
            if parts.query:
                path += "?" + parts.query
            writer.write(f"GET {path} HTTP/1.0\r\nHost: {parts.netloc}\r\n\r\n".encode())
            data = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            out.append(data)
        except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
            out.append(f"{url} error {exc}\n".encode())
        finally:
            writer.close()


async def main(urls: list[str], concurrency: int) -> None:
    limit = asyncio.Semaphore(concurrency)
    out: list[bytes] = []
    await asyncio.gather(*(head(url, limit, out) for url in urls))
    sys.stdout.buffer.write(b"".join(out))


def read_urls(path: str) -> list[str]:
    with open(path) as f:
        return [line.strip() for line in f if line.strip()]


if __name__ == "__main__":
    loop_name = sys.argv[3] if len(sys.argv) > 3 else "asyncio"
    if loop_name == "uvloop":
        import uvloop

        uvloop.run(main(read_urls(sys.argv[1]), int(sys.argv[2])))
    else:
        asyncio.run(main(read_urls(sys.argv[1]), int(sys.argv[2])))
