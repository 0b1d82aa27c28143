"""What became of a target's certificate between two snapshots: one ``:certificate`` change,
named for what it is, instead of a pile of field diffs. Pure.

Two snapshots' certificates are told apart by their SHA-256 fingerprints; a different one is
classified from the stored TLS facts (``CERTIFICATE_KEYS``, the ``tls`` object of docs/output.md):

* ``renewed``        the same names (SAN set), the same issuer and the same public key;
* ``new key``        the same names and issuer, another public key (SPKI);
* ``new issuer``     another issuer (``new issuer: R3 -> E5``);
* ``names changed``  another set of names (``names changed: +b.example, -a.example``).

The first of ``names changed``, ``new issuer``, ``new key``, ``renewed`` that applies is the
change's ``kind``; its summary names every facet that applies and where the expiry moved:
``renewed, expires 2027-03-01 (was 2026-12-01)``.

Not noise: a side without a fingerprint (no TLS facts: an http target, a failure before the
handshake, a row stored before certificates were decoded) is not known, and gives no change. The
caller may pass the certificate last seen before a failure instead (``known_certificate``), so a
certificate renewed while the target was down is still named when it comes back.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fetchheads.models import Change

CERTIFICATE = ":certificate"
CERTIFICATE_KEYS = ("fingerprint_sha256", "spki_sha256", "subject", "issuer", "san", "not_after")
"""The keys of the ``tls`` object a certificate change is told from: all a predecessor's ``tls``
holds when ``--changes`` reads it (the chain and the rest stay in the database)."""

RENEWED = "renewed"
NEW_KEY = "new key"
NEW_ISSUER = "new issuer"
NAMES_CHANGED = "names changed"

Facts = Mapping[str, Any]


def certificate_facts(tls: Facts | None) -> Facts | None:
    """``tls`` when it names a certificate (has a fingerprint), else None: nothing to compare."""
    if tls is None or not tls.get("fingerprint_sha256"):
        return None
    return tls


def certificate_change(before: Facts | None, after: Facts | None) -> Change | None:
    """The ``:certificate`` change from ``before``'s certificate to ``after``'s, or None when
    either is not known or both are the same certificate."""
    old, new = certificate_facts(before), certificate_facts(after)
    if old is None or new is None or old["fingerprint_sha256"] == new["fingerprint_sha256"]:
        return None
    facets: list[tuple[str, str]] = []
    added, removed = _names(new) - _names(old), _names(old) - _names(new)
    if added or removed:
        listed = [f"+{name}" for name in sorted(added)] + [f"-{name}" for name in sorted(removed)]
        facets.append((NAMES_CHANGED, f"{NAMES_CHANGED}: {', '.join(listed)}"))
    if old.get("issuer") != new.get("issuer"):
        facets.append(
            (NEW_ISSUER, f"{NEW_ISSUER}: {_shown(old, 'issuer')} -> {_shown(new, 'issuer')}")
        )
    if old.get("spki_sha256") != new.get("spki_sha256"):
        facets.append((NEW_KEY, "new key" if facets else "renewed with a new key"))
    if not facets:
        facets.append((RENEWED, RENEWED))
    summary = ", ".join(text for _, text in facets) + _expiry(old, new)
    return Change(
        CERTIFICATE,
        (str(old["fingerprint_sha256"]),),
        (str(new["fingerprint_sha256"]),),
        kind=facets[0][0],
        summary=summary,
    )


def _names(facts: Facts) -> frozenset[str]:
    """The names a certificate is for: its SAN entries, or its subject when it has none."""
    san = facts.get("san") or ()
    if san:
        return frozenset(str(name).lower() for name in san)
    subject = facts.get("subject")
    return frozenset([str(subject)]) if subject else frozenset()


def _shown(facts: Facts, key: str) -> str:
    value = facts.get(key)
    return str(value) if value else "(unknown)"


def _expiry(old: Facts, new: Facts) -> str:
    """``, expires 2027-03-01 (was 2026-12-01)``; without the ``was`` when the day is the same."""
    after = _day(new.get("not_after"))
    if after is None:
        return ""
    before = _day(old.get("not_after"))
    was = f" (was {before})" if before is not None and before != after else ""
    return f", expires {after}{was}"


def _day(timestamp: object) -> str | None:
    return timestamp[:10] if isinstance(timestamp, str) and len(timestamp) >= 10 else None
