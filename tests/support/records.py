"""The JSON record's keys as docs/output.md gives them, in the order records carry them."""

from __future__ import annotations

RECORD_KEYS = (
    "target",
    "url",
    "ok",
    "status",
    "reason",
    "http_version",
    "headers",
    "error",
    "address",
    "timing",
    "tls",
    "redirects",
    "fetched_at",
)
