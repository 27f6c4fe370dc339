"""Send a webhook delivery the way GitHub does: the same headers (`X-GitHub-Event`,
`X-GitHub-Delivery`, both signatures, a `GitHub-Hookshot/` user agent), signed with the
webhook's secret. For tests and the demo, aimed at a loopback daemon."""

from __future__ import annotations

import hashlib
import hmac
import json
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from typing import Any

USER_AGENT = "GitHub-Hookshot/044aadd"
HOOK_ID = "460386481"


@dataclass(frozen=True)
class DeliveryResult:
    status: int
    body: Any  # the receiver's JSON answer, or its text when it is not JSON
    delivery: str


def github_headers(secret: str | None, event: str, body: bytes, delivery: str) -> dict[str, str]:
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-GitHub-Delivery": delivery,
        "X-GitHub-Event": event,
        "X-GitHub-Hook-ID": HOOK_ID,
        "X-GitHub-Hook-Installation-Target-ID": "79929171",
        "X-GitHub-Hook-Installation-Target-Type": "repository",
    }
    if secret is not None:
        key = secret.encode()
        headers["X-Hub-Signature"] = "sha1=" + hmac.new(key, body, hashlib.sha1).hexdigest()
        headers["X-Hub-Signature-256"] = "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()
    return headers


def deliver(
    url: str,
    event: str,
    payload: Any,
    *,
    secret: str | None,
    delivery: str | None = None,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30.0,
) -> DeliveryResult:
    """POST one delivery; `body` overrides the JSON of `payload` (for malformed bodies),
    `headers` adds or replaces headers (for forged ones)."""
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"not an HTTP URL: {url!r}")
    delivery = delivery or str(uuid.uuid4())
    data = body if body is not None else json.dumps(payload, indent=2).encode()
    sent = {**github_headers(secret, event, data, delivery), **(headers or {})}
    request = urllib.request.Request(url, data=data, headers=sent, method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return DeliveryResult(response.status, _json(response.read()), delivery)
    except urllib.error.HTTPError as error:
        return DeliveryResult(error.code, _json(error.read()), delivery)


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")
