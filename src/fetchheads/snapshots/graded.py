"""``fetchheads audit --db``: the audit of a stored snapshot, worked out offline. Pure.

A snapshot holds what the audit reads: the final URL, the status, the headers in wire order, the
redirects followed, and (since certificate facts were recorded) whether the certificate was
verified. The rules are the ones shipped now, so an old snapshot is graded as today's fetchheads
would grade it.
"""

from __future__ import annotations

from fetchheads.audit import Audit, Exchange, audit
from fetchheads.models import Redirect
from fetchheads.snapshots.changes import Snapshot


def audit_snapshot(snapshot: Snapshot) -> Audit | None:
    """The audit of ``snapshot``; ``None`` when it holds no complete response (a failure)."""
    if not snapshot.has_head or snapshot.error_kind is not None or snapshot.url is None:
        return None
    if snapshot.status is None:
        return None
    exchange = Exchange(  # not ``grade``: the stored headers are pairs of text already
        url=snapshot.url,
        status=snapshot.status,
        headers=snapshot.headers,
        tls_verified=tls_verified(snapshot),
        redirects=tuple(_redirect(hop) for hop in snapshot.redirects),
    )
    return audit(exchange)


def tls_verified(snapshot: Snapshot) -> bool | None:
    """Whether the certificate was verified: ``None`` for http; for https the stored
    ``tls.verified``, where ``false`` means the run used ``-k`` (a certificate that fails
    verification leaves no head to store), so ``None``, not checked. A snapshot recorded before
    certificate facts were stored has no ``verified``: its head came back over https without an
    error, which without ``-k`` means verified, and ``-k`` runs are rare in a watched history,
    so ``True``."""
    tls = snapshot.tls
    if not tls or not snapshot.url or not snapshot.url.lower().startswith("https://"):
        return None
    return True if tls.get("verified", True) is True else None


def _redirect(hop: dict[str, object]) -> Redirect:
    return Redirect(str(hop.get("url")), int(str(hop.get("status"))), str(hop.get("location")))
