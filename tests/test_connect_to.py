"""--connect-to: parsing curl's HOST:PORT:CONNECT_HOST:CONNECT_PORT, and reaching the other server."""

from __future__ import annotations

import pytest

from fetchheads.connect_to import ConnectTo, connect_address, parse_connect_to
from fetchheads.errors import InputError


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("example.com:443:127.0.0.1:8443", ConnectTo("example.com", 443, "127.0.0.1", 8443)),
        ("Example.COM:443:origin.example:", ConnectTo("example.com", 443, "origin.example", None)),
        ("::127.0.0.1:", ConnectTo(None, None, "127.0.0.1", None)),
        (":80::8080", ConnectTo(None, 80, None, 8080)),
        ("[::1]:443:[::2]:8443", ConnectTo("::1", 443, "::2", 8443)),
        ("bücher.example:80:127.0.0.1:81", ConnectTo("xn--bcher-kva.example", 80, "127.0.0.1", 81)),
    ],
)
def test_rules_parse_with_empty_fields_meaning_any_or_same(text: str, rule: ConnectTo) -> None:
    assert parse_connect_to(text) == rule


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("example.com:443:127.0.0.1", "HOST:PORT:CONNECT_HOST:CONNECT_PORT"),
        ("a:1:b:2:c", "HOST:PORT:CONNECT_HOST:CONNECT_PORT"),
        ("example.com:https:127.0.0.1:1", "bad port 'https'"),
        ("example.com:443:127.0.0.1:70000", "bad port '70000'"),
        ("[::1:443:127.0.0.1:1", "unclosed"),
        ("[::1]x:443:127.0.0.1:1", "expected ':'"),
        ("exa mple.com:443:127.0.0.1:1", "bad host"),
    ],
)
def test_malformed_rules_are_refused(text: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        parse_connect_to(text)


def test_the_first_matching_rule_wins_and_others_connect_as_usual() -> None:
    rules = [
        parse_connect_to("a.example:443:10.0.0.1:8443"),
        parse_connect_to("a.example::10.0.0.2:"),
        parse_connect_to(":8080::9090"),
    ]
    assert connect_address(rules, "a.example", 443) == ("10.0.0.1", 8443)
    assert connect_address(rules, "a.example", 80) == ("10.0.0.2", 80)
    assert connect_address(rules, "b.example", 8080) == ("b.example", 9090)
    assert connect_address(rules, "b.example", 443) == ("b.example", 443)
