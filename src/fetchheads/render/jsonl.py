"""JSON Lines: one object per target, every key always present (DESIGN.md "Outputs")."""

from __future__ import annotations

import json
from typing import Any

from fetchheads.models import Result
from fetchheads.render.safe import json_safe

_encoder = json.JSONEncoder(ensure_ascii=False, separators=(", ", ": "))


def format_record(record: dict[str, Any]) -> str:
    return json_safe(_encoder.encode(record)) + "\n"


def format_jsonl(result: Result) -> str:
    return format_record(result.to_record())
