"""``-w`` templates, compared with what curl itself prints for the same server."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import sys
import time

import pytest

from fetchheads.render.writeout import compile_write_out
from tests.support.results import (
    BARE,
    HEAD,
    fetch_following,
    fetch_head,
    fetch_refused,
    input_error,
)
from tests.support.servers import LoopbackServer, reply, silent
from tests.support.spec import refusal

CURL = shutil.which("curl")
if CURL is None:  # installed on every machine the project runs on; say so rather than skip
    raise RuntimeError("curl is needed for tests/test_writeout.py")

SAME = (
    "[%{url}] [%{url_effective}] [%{http_code}] [%{response_code}] [%{http_version}] "
    "[%{remote_ip}] [%{remote_port}] [%{num_headers}] [%{num_redirects}] [%{errormsg}] "
    "[%{exitcode}] [%{content_type}] [%header{server}] [%header{X-MULTI}] [%header{set-cookie}] "
    "[%header{missing}] 100%% \\t|\\\\|\\q|%foo|\\n"
)
TIMES = "%{time_namelookup} %{time_connect} %{time_appconnect} %{time_starttransfer} %{time_total}"
CLEAN_HEAD = HEAD.replace(b"X-Evil: a\x1b]52;c;cHduZWQ=\x07b\x1b[2Jc\r\n", b"")
# (curl prints control bytes raw; that difference is tested on its own below)


async def curl(template: str, url: str) -> str:
    """What ``curl -w template url`` prints (an HTTP/1.0 request, as fetchheads sends)."""
    process = await asyncio.create_subprocess_exec(
        CURL,  # type: ignore[arg-type]
        *("-s", "--http1.0", "-o", "/dev/null", "-w", template, url),
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await process.communicate()
    return out.decode()


async def curl_and_fetchheads(data: bytes, template: str) -> tuple[str, str]:
    """curl's -w output and ours, for the same answer from the same kind of loopback server.
    The two servers listen on different ports: in both outputs the port reads ``PORT``. Both
    are given the URL spelt as ``fetch_head`` spells it, without a scheme (``%{url}`` prints it
    so; ``%{url_effective}`` completes it)."""
    async with LoopbackServer(reply(data)) as server:
        port = str(server.port)
        url = f"127.0.0.1:{port}/"
        out = await curl(template, url)
    result = await fetch_head(data)
    ours = compile_write_out(template).render(result)
    assert result.url is not None
    our_port = result.url.rsplit(":", 1)[1].rstrip("/")
    return out.replace(port, "PORT"), ours.replace(our_port, "PORT")


@pytest.mark.parametrize("data", [CLEAN_HEAD, BARE], ids=["full", "http10-404"])
async def test_curls_variables_print_exactly_as_curl_prints_them(data: bytes) -> None:
    curl, ours = await curl_and_fetchheads(data, SAME)
    assert "[PORT]" in curl  # %{remote_port}
    assert ours == curl


async def test_times_have_curls_format_and_order() -> None:
    curl, ours = await curl_and_fetchheads(CLEAN_HEAD, TIMES)
    pattern = re.compile(r"\d+\.\d{6}( \d+\.\d{6}){4}")
    assert pattern.fullmatch(curl)
    assert pattern.fullmatch(ours)
    _dns, connect, appconnect, start, total = map(float, ours.split())
    assert appconnect == 0.0  # no TLS: curl prints 0.000000 too
    assert connect <= start <= total


async def test_header_json_matches_curls_layout() -> None:
    curl, ours = await curl_and_fetchheads(CLEAN_HEAD, "%{header_json}")
    assert ours == curl
    assert json.loads(ours)["set-cookie"] == [
        "id=1; Expires=Wed, 21 Oct 2026 07:28:00 GMT",
        "theme=dark",
    ]


async def test_json_has_curls_keys_values_and_number_format() -> None:
    curl, ours = await curl_and_fetchheads(BARE, "%{json}")
    theirs, mine = json.loads(curl.replace("PORT", "0")), json.loads(ours.replace("PORT", "0"))
    assert set(mine) <= set(theirs)
    for key in mine:
        if key.startswith("time_"):
            assert re.search(rf'"{key}":\d+\.\d{{6}}[,}}]', ours), key
        else:
            assert mine[key] == theirs[key], key


async def test_a_failure_prints_curls_zeros_and_the_onerror_part(refused_port: int) -> None:
    template = "%{http_code} %{http_version} %{exitcode} %{num_headers} %{time_connect}%{onerror} ERR %{errormsg}"
    out = await curl(template, f"http://127.0.0.1:{refused_port}/")
    ours = compile_write_out(template).render(await fetch_refused(refused_port))
    curl_head, _curl_error = out.split(" ERR ")
    our_head, our_error = ours.split(" ERR ")
    assert our_head == curl_head == "000 0 7 0 0.000000"
    assert "refused" in our_error
    ok = compile_write_out(template).render(await fetch_head(BARE))
    assert ok.startswith("404 1 0 1 ")
    assert "ERR" not in ok  # %{onerror}: the rest only for failures, as in curl


async def test_server_text_is_escaped_but_the_templates_own_text_is_not() -> None:
    result = await fetch_head(HEAD)
    out = compile_write_out("%header{x-evil}\\t%{header:x-evil}\\n%{header_json}%{json}").render(
        result
    )
    assert "\x1b" not in out
    assert "\x07" not in out
    assert out.startswith("a\\x1b]52;c;cHduZWQ=\\x07b\\x1b[2Jc\ta\\x1b]52")
    assert json.loads(out[out.index("\n") + 1 : out.index("}{") + 1])["x-evil"] == [
        "a\x1b]52;c;cHduZWQ=\x07b\x1b[2Jc"
    ]


async def test_every_field_is_a_variable_and_curls_names_win() -> None:
    result = await fetch_head(HEAD)
    template = (
        "%{status} %{http_version} %{header:x-multi}|%{header:set-cookie}|%{ok} %{time.tls}|"
        "%{cert.days_left}|%{error.kind}"
    )
    assert compile_write_out(template).render(result) == (
        "200 1.1 a, b|id=1; Expires=Wed, 21 Oct 2026 07:28:00 GMT | theme=dark|true ||"
    )
    bad = compile_write_out("%{target} %{error.kind} %{url}").render(input_error("a b"))
    assert bad == "a b input a b"  # %{url} is the URL as given, as in curl


@pytest.mark.parametrize(
    ("template", "says"),
    [
        ("%{http_cod}", "unknown write-out variable %{http_cod} (did you mean %{http_code} or"),
        ("%{zzz.qqq}", "unknown write-out variable %{zzz.qqq}; docs/fields.md lists every"),
        ("%{time_total", "unclosed { in write-out template at '%{time_total'"),
        ("a %header{x", "unclosed { in write-out template at '%header{x'"),
        ("%header{}", "empty header name"),
        ("%{header:a b}", "invalid header name"),
        ("%output{x}", "%output{} is not supported in -w (of %word{}, only %header{NAME} is)"),
        ("%time{%H}", "%time{} is not supported"),
        (
            "%{ssl_verify_result}",
            "curl's %{ssl_verify_result} is not supported by fetchheads' -w; docs/fields.md",
        ),
        ("%{url.host}", "curl's %{url.host} is not supported"),
    ],
)
def test_bad_templates_are_refused_before_the_run(template: str, says: str) -> None:
    assert says in refusal(lambda: compile_write_out(template))


def test_onerror_is_matched_whatever_its_case_as_curls_names_are() -> None:
    assert compile_write_out("a%{OnError}b").on_error == ("b",)


def test_onerror_given_twice_starts_the_error_part_once() -> None:
    compiled = compile_write_out("a%{onerror}b%{onerror}c")
    assert compiled.parts == ("a",)
    assert compiled.on_error == ("b", "c")


@pytest.mark.parametrize(
    ("name", "data", "template"),
    [
        ("an empty reply", b"", "%{http_code} %{exitcode}"),
        # Only blank lines: a reply, not nothing (curl: HTTP/0.9, exit code 1), never 52.
        ("blank lines", b"\r\n\r\n", "%{http_code}"),
        (
            "two Content-Types",
            b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Type: text/plain\r\n\r\n",
            "%{http_code} %{content_type} %{exitcode}",
        ),
        ("a head cut short", b"HTTP/1.1 200 OK\r\nServer: x\r\n", "%{http_code}"),
        # Not HTTP/1.x: curl reads it as HTTP/0.9 and refuses it (1, unsupported protocol).
        ("not HTTP", b"SSH-2.0-OpenSSH_9.2\r\n", "%{http_code} %{exitcode}"),
        ("a bad status code", b"HTTP/1.1 abc OK\r\n\r\n", "%{exitcode}"),
        ("a status code below 100", b"HTTP/1.1 099 Low\r\n\r\n", "%{exitcode}"),
        ("blank lines: exit code", b"\r\n\r\n", "%{exitcode}"),
        ("an interim head, then nothing", b"HTTP/1.1 100 Continue\r\n\r\n", "%{exitcode}"),
        # A status line cut short is no header line to curl: "Empty reply from server", 52.
        ("a status line cut short", b"HTTP/1.1 20", "%{http_code} %{exitcode}"),
        (
            "an interim head, then a status line cut short",
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 2",
            "%{exitcode}",
        ),
        # Escapes: curl takes the character after a backslash or a % with it.
        ("escapes", CLEAN_HEAD, "\\\\n|%\\n|\\\\t|\\\\|\\q|%x|100%%|\\"),
        ("curl's names in capitals", CLEAN_HEAD, "%{HTTP_CODE} %{Num_Headers}"),
    ],
)
async def test_the_edges_of_an_answer_print_as_curl_prints_them(
    name: str, data: bytes, template: str
) -> None:
    curl_out, ours = await curl_and_fetchheads(data, template)
    assert ours == curl_out, name


async def test_only_blank_lines_are_a_protocol_error_not_an_empty_reply() -> None:
    result = await fetch_head(b"\r\n\r\n")
    assert compile_write_out("%{exitcode}").render(result) == "1"
    assert compile_write_out("%{exitcode}").render(await fetch_head(b"")) == "52"


async def _exitcodes(*args: str) -> tuple[str, str]:
    """``-w '%{http_code} %{exitcode}'`` from curl and from fetchheads, given the same ``args``
    (with curl's ``-x`` spelt ``--proxy`` for fetchheads)."""
    return await _write_outs("%{http_code} %{exitcode}", *args)


async def _write_outs(template: str, *args: str) -> tuple[str, str]:
    """``-w template`` from curl and from fetchheads, given the same ``args`` (with curl's
    ``-x`` spelt ``--proxy`` for fetchheads)."""
    theirs = await asyncio.create_subprocess_exec(
        CURL,  # type: ignore[arg-type]
        *("-s", "--http1.0", "-o", "/dev/null", "-w", template, *args),
        stdout=asyncio.subprocess.PIPE,
    )
    ours = await asyncio.create_subprocess_exec(
        sys.executable,
        *(
            "-m",
            "fetchheads",
            "-t",
            "5",
            "-w",
            template,
            *("--proxy" if arg == "-x" else arg for arg in args),
        ),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    (curl_out, _), (our_out, _) = await asyncio.gather(theirs.communicate(), ours.communicate())
    return curl_out.decode(), our_out.decode()


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 403 Forbidden\r\n\r\n",
        b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n",
        b"",  # closed without a word
        b"<html>\r\n\r\n",  # not HTTP
        b"HTTP/1.1 200 " + b"x" * 70_000 + b"\r\n\r\n",  # a status line beyond our limit
    ],
    ids=["403", "407", "closed", "not-http", "too-long"],
)
async def test_a_proxy_that_does_not_open_the_tunnel_is_curls_exit_code(answer: bytes) -> None:
    """curl's 56 (CURLE_RECV_ERROR) whatever the proxy answered instead of opening the tunnel."""
    async with LoopbackServer(reply(answer)) as proxy:
        # The origin is never reached: the proxy answers CONNECT itself.
        curl_out, ours = await _exitcodes(
            "-x", f"http://127.0.0.1:{proxy.port}", "https://127.0.0.1:1/"
        )
    assert curl_out == "000 56"
    assert ours == curl_out


async def test_connect_timeout_is_curls_timeout_exit_code() -> None:
    """A TLS handshake the server never answers, under --connect-timeout: curl's 28."""
    async with LoopbackServer(silent()) as server:
        curl_out, ours = await _exitcodes(
            "--connect-timeout", "1", f"https://127.0.0.1:{server.port}/"
        )
    assert curl_out == "000 28"
    assert ours == curl_out


async def test_a_minor_version_curl_refuses_is_named_not_printed_as_no_answer() -> None:
    """``HTTP/1.2 200`` is an answer (RFC 9112 §2.3: read as 1.1); curl refuses it, so there is
    nothing to copy, but ``0`` (no answer) beside the ``200`` would contradict it."""
    result = await fetch_head(b"HTTP/1.2 200 OK\r\n\r\n")
    out = compile_write_out("%{http_code} %{http_version} %{json}").render(result)
    code, version, as_json = out.split(" ", 2)
    assert (code, version) == ("200", "1.2")
    assert json.loads(as_json)["http_version"] == "1.2"


async def test_under_L_the_times_add_up_the_hops_as_curls_do() -> None:
    """A first hop that answers its redirect after 0.3 s and a quick second one: curl's
    time_starttransfer and time_total count the wait (it adds every hop's times up), so a slow
    redirect shows in them; the last hop's own times alone would say about a millisecond."""
    template = "%{num_redirects} %{time_starttransfer} %{time_total}"
    async with LoopbackServer(reply(b"HTTP/1.1 200 OK\r\n\r\n")) as final:
        moved = b"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:%d/\r\n\r\n" % final.port
        async with LoopbackServer(reply(moved, delay=0.3)) as first:
            curl_out, ours = await _write_outs(template, "-L", f"http://127.0.0.1:{first.port}/")
    for out in (curl_out, ours):
        hops, start, total = out.split()
        assert hops == "1", out
        assert 0.3 <= float(start) <= float(total) < 3, out


@pytest.mark.parametrize(
    "location",
    ["http://127.0.0.1:{refused}/", "gopher://127.0.0.1/x", "http://[::1"],
    ids=["next-hop-refused", "another-scheme", "not-a-url"],
)
async def test_under_L_a_chain_that_ends_without_an_answer_prints_as_curls(
    location: str, refused_port: int
) -> None:
    """The redirect's status, version and header count, as curl keeps them when the next hop
    gets no answer, and curl's exit code for it: 7 refused, 1 another scheme, 3 not a URL."""
    template = "%{http_code} %{http_version} %{num_headers} %{exitcode}"
    moved = (
        b"HTTP/1.1 301 Moved\r\nLocation: %s\r\n\r\n"
        % location.format(refused=refused_port).encode()
    )
    async with LoopbackServer(reply(moved)) as server:
        curl_out, ours = await _write_outs(template, "-L", f"http://127.0.0.1:{server.port}/")
    assert curl_out.startswith("301 1.1 1 ")
    assert ours == curl_out


async def test_under_L_a_loop_is_not_timed_twice() -> None:
    """A page that redirects to itself after 0.3 s: one request, which the chain lists as its
    redirect and keeps as its answer. Its times are counted once: adding them up as two hops
    said 0.6 s for a run that took 0.3."""
    template = "%{num_redirects} %{time_starttransfer} %{time_total}"
    async with LoopbackServer(
        reply(b"HTTP/1.1 301 Moved\r\nLocation: /\r\n\r\n", delay=0.3)
    ) as server:
        started = time.monotonic()
        result = await fetch_following(f"http://127.0.0.1:{server.port}/")
        took = time.monotonic() - started
    assert result.error is not None
    assert result.error.message.startswith("redirect loop")
    hops, start, total = compile_write_out(template).render(result).split()
    assert hops == "1"
    assert 0.3 <= float(start) <= float(total) <= took


async def test_under_L_a_chain_that_ends_without_an_answer_keeps_the_redirects_content_type(
    refused_port: int,
) -> None:
    """curl prints the redirect's Content-Type when the next hop is refused, beside its status:
    an empty one beside 301 said the redirect had none."""
    moved = (
        b"HTTP/1.1 301 Moved\r\nContent-Type: text/html\r\nLocation: http://127.0.0.1:%d/\r\n\r\n"
        % refused_port
    )
    async with LoopbackServer(reply(moved)) as server:
        curl_out, ours = await _write_outs(
            "%{http_code} %{content_type}", "-L", f"http://127.0.0.1:{server.port}/"
        )
    assert curl_out == "301 text/html"
    assert ours == curl_out
