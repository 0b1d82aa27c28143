"""A real nginx on loopback: fetchheads must report the same head curl reports for the same URL.

``curl -0`` sends HTTP/1.0 as fetchheads does, so nginx answers both the same way; only ``Date``
may differ, when the second ticks between the two requests.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from fetchheads.cli import cli
from tests.support.nginx import Nginx

pytestmark = pytest.mark.integration

PATHS = ["/", "/redirect", "/teapot", "/cookies", "/no-such-page"]
EXPECTED_STATUS = {
    "/": 200,
    "/redirect": 301,
    "/teapot": 418,
    "/cookies": 204,
    "/no-such-page": 404,
}

Head = tuple[str, list[list[str]]]  # status line, headers in wire order


def curl_head(url: str, *extra: str) -> Head:
    done = subprocess.run(
        ["curl", "-0", "-sS", "-D-", "-o", "/dev/null", "--max-time", "10", *extra, url],
        capture_output=True,
        check=True,
        timeout=30,
    )
    lines = done.stdout.decode("latin-1").split("\r\n")
    status_line = lines[0].rstrip(" ")  # nginx ends "HTTP/1.1 418 " with a space; so do we not
    headers = [line.split(": ", 1) for line in lines[1:] if line]
    return status_line, headers


def fetchheads_heads(urls: list[str], *extra: str) -> dict[str, Head]:
    result = CliRunner().invoke(cli, ["--json", *extra, *urls], catch_exceptions=False)
    heads = {}
    for line in result.stdout.splitlines():
        record = json.loads(line)
        assert record["error"] is None, record
        status_line = f"{record['http_version']} {record['status']} {record['reason']}".rstrip()
        heads[record["url"]] = (status_line, record["headers"])
    return heads


def without_date(head: Head) -> Head:
    status_line, headers = head
    return status_line, [[n, "(date)" if n.lower() == "date" else v] for n, v in headers]


def assert_same_heads(ours: dict[str, Head], urls: list[str], *curl_args: str) -> None:
    for url in urls:
        theirs = curl_head(url, *curl_args)
        mine = ours[url]
        if mine != theirs:  # only a tick of the clock may separate them
            assert without_date(mine) == without_date(theirs), url
        path = "/" + url.split("/", 3)[3]
        assert mine[0].split(" ")[1] == str(EXPECTED_STATUS[path])


def test_http_heads_match_curl(nginx: Nginx) -> None:
    urls = [nginx.url(path) for path in PATHS]
    ours = fetchheads_heads(urls)
    assert sorted(ours) == sorted(urls)
    assert_same_heads(ours, urls)
    cookies = ours[nginx.url("/cookies")][1]
    assert [v for n, v in cookies if n == "Set-Cookie"] == ["a=1", "b=2"]
    assert ["Location", f"http://127.0.0.1:{nginx.port}/"] in ours[nginx.url("/redirect")][1]


def test_https_heads_match_curl(nginx: Nginx, ca_file: Path) -> None:
    urls = [nginx.url(path, tls=True) for path in PATHS]
    ours = fetchheads_heads(urls, "--cacert", str(ca_file))
    assert sorted(ours) == sorted(urls)
    assert_same_heads(ours, urls, "--cacert", str(ca_file))


def test_head_method_matches_curl_head(nginx: Nginx) -> None:
    url = nginx.url("/")
    ours = fetchheads_heads([url], "-X", "HEAD")
    theirs = curl_head(url, "-I")
    assert without_date(ours[url]) == without_date(theirs)


def test_plain_output_against_nginx_is_the_seed_format(nginx: Nginx) -> None:
    url = nginx.url("/teapot")
    result = CliRunner().invoke(cli, ["--format", "plain", url], catch_exceptions=False)
    assert result.exit_code == 0  # a 418 is a response head: not a failure
    lines = result.stdout.splitlines()
    assert lines[0] == f"{url} header > HTTP/1.1 418"  # nginx has no phrase for 418
    assert f"{url} header > X-Teapot: yes" in lines
    assert all(line.startswith(f"{url} header > ") for line in lines)
