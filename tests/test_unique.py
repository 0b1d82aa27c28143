"""--unique: one key per target however it is spelled, the same key --shard hashes."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from fetchheads.run.inputs import in_shard, to_item
from fetchheads.targets import FirstSeen, canonical_key
from tests.support.servers import ThreadedServer, reply
from tests.test_process import spawn


@pytest.mark.parametrize(
    "spellings",
    [
        [
            "example.com",
            "EXAMPLE.com",
            "http://example.com/",
            "HTTP://Example.COM:80",
            "example.com.",
        ],
        ["https://example.com", "example.com:443", "https://example.com:443/"],
        ["bücher.example", "xn--bcher-kva.example", "http://BÜCHER.example/"],
        ["[::1]:8080", "http://[0:0:0:0:0:0:0:1]:8080/"],
        ["example.com/a?b=1", "http://example.com:80/a?b=1", "example.com/a?b=1#frag"],
    ],
)
def test_every_spelling_of_one_target_has_one_key(spellings: list[str]) -> None:
    keys = {canonical_key(text) for text in spellings}
    assert len(keys) == 1, keys
    # ... and it is the key --shard hashes, so --unique and --shard agree on what a target is.
    for shards in (2, 3, 7):
        homes = {
            next(
                k
                for k in range(1, shards + 1)
                if in_shard(to_item(t, "http"), k, shards, default_scheme="http")
            )
            for t in spellings
        }
        assert len(homes) == 1


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("example.com", "https://example.com"),
        ("example.com", "example.com:8080"),
        ("example.com/A", "example.com/a"),  # paths keep their case
        ("example.com/?a=1", "example.com/?a=2"),
    ],
)
def test_different_targets_keep_different_keys(one: str, other: str) -> None:
    assert canonical_key(one) != canonical_key(other)


def test_the_default_scheme_decides_a_bare_host() -> None:
    assert canonical_key("example.com", default_scheme="https") == "https://example.com/"


def test_an_invalid_line_is_its_own_key() -> None:
    assert canonical_key("  http://exa mple.com ") == "http://exa mple.com"


def test_first_seen_says_yes_once_per_key() -> None:
    first_seen = FirstSeen()
    texts = ["a.example", "A.EXAMPLE", "b.example", "http://a.example/", "b.example."]
    assert [first_seen(canonical_key(t)) for t in texts] == [True, False, True, False, False]
    assert len(first_seen) == 2


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_a_line_the_supervisor_hands_on_is_in_the_shard_of_its_target(scheme: str) -> None:
    # The supervisor of --workers shards lines it has checked, not parsed (read_lines): each
    # lands where one process puts the target it becomes.
    lines = ["example.com", "Example.COM:443", "127.1/a", "[::1]:8080", "bücher.example/x?y"]
    for line in lines:
        for shards in (2, 3, 7):
            as_line = [
                in_shard(line, k, shards, default_scheme=scheme) for k in range(1, shards + 1)
            ]
            as_target = [
                in_shard(to_item(line, scheme), k, shards, default_scheme=scheme)
                for k in range(1, shards + 1)
            ]
            assert as_line == as_target
            assert as_line.count(True) == 1


@pytest.mark.parametrize("workers", ["1", "2"])
def test_shards_of_a_run_with_workers_split_the_list_and_unique_drops_repeats(
    workers: str, threaded_server: Callable[..., ThreadedServer], tmp_path: Path
) -> None:
    server = threaded_server(reply(b"HTTP/1.0 200 OK\r\n\r\n"))
    lines = []
    for n in range(40):  # each target spelled twice
        lines += [f"127.0.0.1:{server.port}/{n}", f"HTTP://127.0.0.1:{server.port}/{n}"]
    lines.append("bad line")
    source = tmp_path / "hosts.txt"
    source.write_text("\n".join(lines) + "\n")
    fetched: list[str] = []
    for shard in ("1/2", "2/2"):
        argv = ["--json", "--unique", "--shard", shard, "--workers", workers, "-c", "8"]
        stdout, _ = spawn(*argv, "-i", str(source)).communicate(timeout=60)
        records = [json.loads(line) for line in stdout.splitlines()]
        fetched += [r["url"] for r in records if r["status"] == 200]
        assert len(fetched) == len(set(fetched))  # each target once in its shard
    assert sorted(fetched) == sorted(f"http://127.0.0.1:{server.port}/{n}" for n in range(40))
