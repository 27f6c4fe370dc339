"""Signatures of webhook deliveries: HMAC-SHA256 of the raw body, compared in constant
time. GitHub sends `X-Hub-Signature-256: sha256=<hex>`; a generic sender may put the hex
digest, with or without the `sha256=` prefix, into a header of its choosing."""

from __future__ import annotations

import hashlib
import hmac

GITHUB_SIGNATURE_HEADER = "x-hub-signature-256"


def sign(secret: str, body: bytes) -> str:
    """The header value a sender computes: `sha256=<hex digest>`."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def signature_problem(secret: str, body: bytes, header_value: str | None) -> str | None:
    """None when `header_value` signs `body` with `secret`, else what is wrong with it."""
    if not header_value:
        return "no signature"
    given = header_value.strip()
    if given.startswith("sha256="):
        given = given[len("sha256=") :]
    expected = sign(secret, body)[len("sha256=") :]
    if not hmac.compare_digest(given.lower().encode(), expected.encode()):
        return "signature does not match"
    return None
