"""``--format prometheus``: a node_exporter textfile with blackbox_exporter's metric names. Pure.

A textfile is one whole exposition: each metric family's ``# HELP`` and ``# TYPE`` once, then its
samples for every target. So this is an accumulator, not a per-line format: ``add(result)`` per
target keeps a few numbers (no headers, no text but the target), ``render()`` writes the file at the
end. The CLI writes it to a temporary file and renames it, so the collector never reads half.

Names, types and help texts are blackbox_exporter's HTTP prober's (``prober/http.go``,
``prober/handler.go``), so dashboards and alerts written for it work unchanged, with one label
more: ``target``, the target as the user wrote it (blackbox gets it from the scrape instead). A
target given twice is one series (the later result): a textfile with a repeated series is
rejected whole by node_exporter. No header value is ever a label (unbounded cardinality, and
server-controlled).

* ``probe_success``: 1 when a head came back with a 2xx status (blackbox's default ``http_2xx``
  module; without ``-L`` a redirect is a failure, as blackbox with ``no_follow_redirects``).
  ``success=`` takes another predicate (the CLI may pass the ``--match-status`` selector).
* ``probe_duration_seconds``: the whole fetch.
* ``probe_http_duration_seconds{phase}``: ``resolve``, ``connect``, ``tls``, ``processing``,
  ``transfer``, split as blackbox splits them: its ``tls`` runs from the end of DNS to the end of
  the handshake (so it includes the TCP connect), ``processing`` from the connection being ready
  to the first byte, ``transfer`` from there to the end (here: of the head). 0 for a phase that
  did not happen, as blackbox; under ``-L`` each phase of every hop added up, as blackbox does
  (and ``probe_duration_seconds`` is the whole chain's).
* ``probe_http_status_code`` (0 without a response), ``probe_http_version`` (1.1, or 1.2 for
  ``HTTP/1.2``; 0 without),
  ``probe_http_redirects``, ``probe_http_ssl`` (1 when the final hop used TLS),
  ``probe_http_content_length`` (only when the head has a valid ``Content-Length``: blackbox
  says -1 for unknown, a value to filter out of every graph),
* under ``--audit``, two families of fetchheads' own (blackbox has no audit):
  ``fetchheads_audit_score`` (the Observatory score, 0 and up; only for a graded head) and
  ``fetchheads_audit_grade_info{grade="B"}`` 1 (the letter as a label: 13 values at most, none of
  them server text).
* for https targets: ``probe_ssl_earliest_cert_expiry`` (Unix time of the leaf's ``notAfter``,
  never an intermediate's: docs/certificates.md on ``chain_earliest_expiry``) and
  ``probe_tls_version_info{version="TLS 1.3"}`` 1.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable

from fetchheads.models import ResponseHead, Result, Timing
from fetchheads.targets import undecodable_escaped

Success = Callable[[Result], bool]


def status_2xx(result: Result) -> bool:
    """blackbox_exporter's default: a response with a 2xx status."""
    return result.ok and result.head is not None and 200 <= result.head.status < 300


@dataclasses.dataclass(frozen=True, slots=True)
class _Family:
    name: str
    help: str
    label: str | None = None  # the extra label besides ``target``, if any


# In the order client_golang writes them (sorted by name), so the file reads like blackbox's.
_FAMILIES = (
    _Family("fetchheads_audit_grade_info", "The security header grade (--audit)", "grade"),
    _Family("fetchheads_audit_score", "The security header score (--audit)"),
    _Family("probe_duration_seconds", "Returns how long the probe took to complete in seconds"),
    _Family("probe_http_content_length", "Length of http content response"),
    _Family(
        "probe_http_duration_seconds",
        "Duration of http request by phase, summed over all redirects",
        "phase",
    ),
    _Family("probe_http_redirects", "The number of redirects"),
    _Family("probe_http_ssl", "Indicates if SSL was used for the final redirect"),
    _Family("probe_http_status_code", "Response HTTP status code"),
    _Family("probe_http_version", "Returns the version of HTTP of the probe response"),
    _Family("probe_ssl_earliest_cert_expiry", "Returns earliest SSL cert expiry in unixtime"),
    _Family("probe_success", "Displays whether or not the probe was a success"),
    _Family("probe_tls_version_info", "Contains the TLS version used", "version"),
)
PHASES = ("resolve", "connect", "tls", "processing", "transfer")

_TLS_VERSIONS = {
    "TLSv1": "TLS 1.0",
    "TLSv1.1": "TLS 1.1",
    "TLSv1.2": "TLS 1.2",
    "TLSv1.3": "TLS 1.3",
}


@dataclasses.dataclass(frozen=True, slots=True)
class _Probe:
    """What one target contributes: numbers only (a few hundred bytes a target)."""

    success: int
    duration: float
    phases: tuple[float, float, float, float, float]
    status: int
    version: float
    redirects: int
    ssl: int
    content_length: int | None
    cert_expiry: float | None
    tls_version: str | None
    audit_score: int | None = None
    audit_grade: str | None = None


class PrometheusTextfile:
    """``add(result)`` for each target, ``render()`` once: the text of the whole file."""

    def __init__(self, success: Success = status_2xx) -> None:
        self._success = success
        self._probes: dict[str, _Probe] = {}

    def __len__(self) -> int:
        return len(self._probes)

    def add(self, result: Result) -> None:
        # A target with a byte that was not UTF-8 (an input error) is labelled with the byte as
        # \xE9, not U+FFFD: two such targets are two series, as they are two records.
        target = result.target if result.given is None else undecodable_escaped(result.given)
        self._probes[target] = _probe(result, self._success(result))

    def render(self) -> str:
        lines: list[str] = []
        probes = [(_label_value(target), probe) for target, probe in self._probes.items()]
        for family in _FAMILIES:
            samples = _samples(family.name, probes)
            if not samples:
                continue
            lines.append(f"# HELP {family.name} {family.help}")
            lines.append(f"# TYPE {family.name} gauge")
            lines.extend(samples)
        return "".join(line + "\n" for line in lines)


def _samples(name: str, probes: list[tuple[str, _Probe]]) -> list[str]:
    out: list[str] = []
    for target, probe in probes:
        labels = f'target="{target}"'
        if name == "probe_http_duration_seconds":
            out.extend(
                f'{name}{{{labels},phase="{phase}"}} {_number(seconds)}'
                for phase, seconds in zip(PHASES, probe.phases, strict=True)
            )
            continue
        if name == "fetchheads_audit_grade_info":
            if probe.audit_grade is not None:
                out.append(f'{name}{{{labels},grade="{_label_value(probe.audit_grade)}"}} 1')
            continue
        if name == "probe_tls_version_info":
            if probe.tls_version is not None:
                out.append(f'{name}{{{labels},version="{_label_value(probe.tls_version)}"}} 1')
            continue
        value = _VALUES[name](probe)
        if value is not None:
            out.append(f"{name}{{{labels}}} {_number(value)}")
    return out


_VALUES: dict[str, Callable[[_Probe], float | int | None]] = {
    "fetchheads_audit_score": lambda p: p.audit_score,
    "probe_duration_seconds": lambda p: p.duration,
    "probe_http_content_length": lambda p: p.content_length,
    "probe_http_redirects": lambda p: p.redirects,
    "probe_http_ssl": lambda p: p.ssl,
    "probe_http_status_code": lambda p: p.status,
    "probe_http_version": lambda p: p.version,
    "probe_ssl_earliest_cert_expiry": lambda p: p.cert_expiry,
    "probe_success": lambda p: p.success,
}


def _phases(timing: Timing) -> tuple[float, float, float, float, float]:
    dns = timing.dns or 0.0  # an IP literal is not resolved
    connect = timing.connect
    handshake = timing.tls
    ready = handshake if handshake is not None else connect  # blackbox's "got connection"
    ttfb = timing.ttfb
    return (
        dns,
        connect - dns if connect is not None else 0.0,
        handshake - dns if handshake is not None else 0.0,
        ttfb - ready if ttfb is not None and ready is not None else 0.0,
        timing.total - ttfb if timing.total is not None and ttfb is not None else 0.0,
    )


def _probe(result: Result, success: bool) -> _Probe:
    head = result.head if result.error is None else None
    # Under -L blackbox adds every hop's phases up, and its probe lasts the whole chain.
    timings = result.chain_timings
    resolve, connect, handshake, processing, transfer = zip(*map(_phases, timings), strict=True)
    phases = (sum(resolve), sum(connect), sum(handshake), sum(processing), sum(transfer))
    duration = sum(timing.total or 0.0 for timing in timings)
    tls = result.tls
    audit = result.audit
    graded = audit is not None and audit.graded
    return _Probe(
        success=int(success),
        duration=duration,
        phases=phases,
        status=head.status if head is not None else 0,
        version=_http_version(head) if head is not None else 0.0,
        redirects=len(result.redirects),
        ssl=int(tls is not None),
        content_length=_content_length(head) if head is not None else None,
        cert_expiry=_unix_time(tls.not_after) if tls is not None else None,
        tls_version=(_TLS_VERSIONS.get(tls.version or "", "unknown") if tls is not None else None),
        audit_score=audit.score if audit is not None and graded else None,
        audit_grade=audit.grade if audit is not None and graded else None,
    )


def _http_version(head: ResponseHead) -> float:
    """blackbox's number, the version the server named: ``HTTP/1.1`` is 1.1, and a minor version
    the parser accepts (``HTTP/1.2``, read as 1.1) is 1.2, as blackbox parses it; never the 0 of
    no answer."""
    try:
        return float(head.http_version.removeprefix("HTTP/"))
    except ValueError:
        return 0.0


def _content_length(head: ResponseHead) -> int | None:
    """The Content-Length when it is one valid number (RFC 9110 §8.6: repeats must be equal)."""
    values = {value.strip() for value in head.get_all("Content-Length")}
    if len(values) != 1:
        return None
    (value,) = values
    return int(value) if value.isascii() and value.isdigit() and len(value) <= 18 else None


def _unix_time(iso: str | None) -> float | None:
    if iso is None:
        return None
    try:
        return dt.datetime.fromisoformat(iso).timestamp()
    except ValueError:
        return None


def _label_value(text: str) -> str:
    """A label value as the exposition format writes it: backslash, quote and newline escaped."""
    if "\\" in text or '"' in text or "\n" in text:
        text = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return text


def _number(value: float | int) -> str:
    """Go's shortest round-trip form, which is Python's repr (ints as ints)."""
    return repr(value)
