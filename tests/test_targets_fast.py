"""parse_target's one-match path for the common spellings agrees with the full validator, and
check_target (the supervisor's check of a line it hands to a worker) with parse_target."""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import example, given
from hypothesis import strategies as st

from fetchheads.errors import InputError
from fetchheads.models import Target
from fetchheads.targets import check_target, parse_target, parse_target_full

schemes = st.sampled_from(["", "http://", "https://", "HTTP://", "ftp://", "http:/"])
labels = st.text(alphabet="abcXYZ019-_é", min_size=0, max_size=8)
hosts = st.one_of(
    st.lists(labels, min_size=1, max_size=4).map(".".join),
    st.tuples(*[st.integers(0, 300)] * 4).map(lambda parts: ".".join(map(str, parts))),
    st.sampled_from(["127.0.0.1", "01.2.3.4", "a" * 63 + ".com", "a" * 64 + ".com", "[::1]"]),
)
ports = st.one_of(st.just(""), st.integers(0, 99999).map(lambda n: f":{n}"), st.just(":"))
paths = st.one_of(
    st.just(""), st.text(alphabet="/?#%az:@ é\x00~", max_size=10).map(lambda p: "/" + p)
)
spellings = st.one_of(
    st.tuples(schemes, hosts, ports, paths).map("".join),
    st.text(max_size=30),
)


def outcome(parse: Callable[..., Target | str], text: str, scheme: str) -> Target | str:
    try:
        return parse(text, default_scheme=scheme)
    except InputError as exc:
        return f"InputError: {exc}"


@given(spellings, st.sampled_from(["http", "https"]))
@example("example.com", "http")
@example("127.0.0.1:8080/health?full=1", "http")
@example("host:443", "http")
@example("http://host:443/", "https")
@example("x.com:0", "http")
@example("x.com:65536", "http")
@example("Example.COM", "http")
@example(" example.com ", "http")
@example("example.com.", "http")
@example("example.com?q", "http")
def test_the_fast_path_gives_what_the_full_validator_gives(text: str, scheme: str) -> None:
    assert outcome(parse_target, text, scheme) == outcome(parse_target_full, text, scheme)


@given(spellings, st.sampled_from(["http", "https"]))
@example("example.com:65535", "http")
@example("example.com:65536", "http")
@example("example.com:0", "http")
@example("http://user:pw@example.com/", "http")
@example("1.2.3.999", "http")
@example("a" * 254, "http")
@example("  example.com/a  ", "http")
@example("http://example.com/" + "é" * 2100, "http")
def test_check_target_takes_what_parse_target_takes_and_refuses_alike(
    text: str, scheme: str
) -> None:
    parsed = outcome(parse_target, text, scheme)
    checked = outcome(check_target, text, scheme)
    if isinstance(parsed, Target):
        assert checked == text.strip()  # the line as given, stripped, for the worker to parse
        assert outcome(parse_target, checked, scheme) == parsed
    else:
        assert checked == parsed  # the same error


def test_a_long_or_unusual_target_still_parses() -> None:
    long_path = "http://example.com/" + "a" * 300
    assert parse_target(long_path).path == "/" + "a" * 300
    assert parse_target("HTTP://Example.com./").host == "example.com"
