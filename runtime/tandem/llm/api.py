"""The model API as the host uses it: credentials from the daemon's environment, one
async client per host, and the one place where the `anthropic` SDK's errors become
Tandem's."""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit, urlunsplit

if TYPE_CHECKING:  # imported on the first model call: it costs every host start a second
    import anthropic
    from anthropic.types import Message

from tandem.errors import RunFailed

KEY_VARIABLE = "ANTHROPIC_API_KEY"
BASE_URL_VARIABLE = "ANTHROPIC_BASE_URL"
MISSING_KEY = (
    f"coordinator llm needs an Anthropic API key: set {KEY_VARIABLE} in the environment of"
    " the tandem daemon (or of `tandem run` when no daemon is running)"
)


class ModelApiError(RunFailed):
    """The model API failed, after the SDK's own retries (fields: status, error_type)."""

    def __init__(self, message: str, *, status: int | None = None, error_type: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type


class ModelApi:
    """Where model calls go. The key stays in the host: it is read here and handed to no
    subprocess (scripts and plugins get explicit, minimal environments)."""

    def __init__(self, api_key: str | None, base_url: str | None) -> None:
        self._api_key = api_key or None
        # Credentials in the URL (`https://user:password@gateway`) go in a header, so the
        # URL the SDK logs and puts in its errors holds none; `base_url` is the one shown.
        self._url, self._headers = _credentials_apart(base_url or None)
        self.base_url = masked_url(base_url) if base_url else None
        self._client: anthropic.AsyncAnthropic | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ModelApi:
        env = os.environ if env is None else env
        return cls(env.get(KEY_VARIABLE), env.get(BASE_URL_VARIABLE))

    @property
    def configured(self) -> bool:
        return self._api_key is not None

    def client(self) -> anthropic.AsyncAnthropic:
        if self._api_key is None:
            raise ModelApiError(MISSING_KEY)
        if self._client is None:
            import anthropic

            self._client = anthropic.AsyncAnthropic(
                api_key=self._api_key, base_url=self._url, default_headers=self._headers
            )
        return self._client

    async def create(self, **params: Any) -> Message:
        """One `messages.create`; the SDK retries 408/409/429/5xx itself before we see them."""
        import anthropic

        try:
            message: Message = await self.client().messages.create(**params)
        except anthropic.APIStatusError as error:
            error_type, detail = _error_fields(error.body)
            raise ModelApiError(
                f"the Anthropic API answered {error.status_code}"
                f" {error_type or 'error'}: {detail or error.message}",
                status=error.status_code,
                error_type=error_type,
            ) from None
        except anthropic.APIConnectionError as error:
            where = self.base_url or "the Anthropic API"
            raise ModelApiError(f"could not reach {where}: {error}") from None
        return message

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None


def _error_fields(body: object) -> tuple[str, str]:
    """(error type, message) from an API error body `{"type": "error", "error": {...}}`."""
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict):
            return str(inner.get("type", "")), str(inner.get("message", ""))
    return "", ""


def masked_url(url: str) -> str:
    """`url` with the credentials it may hold masked: `https://***@gateway/path`."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc="***@" + parts.netloc.rpartition("@")[2]))


def _credentials_apart(url: str | None) -> tuple[str | None, dict[str, str]]:
    """The URL without its credentials, and the Basic authorization header they make."""
    if url is None or "@" not in urlsplit(url).netloc:
        return url, {}
    parts = urlsplit(url)
    userinfo, _, host = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    token = base64.b64encode(f"{unquote(user)}:{unquote(password)}".encode()).decode()
    return urlunsplit(parts._replace(netloc=host)), {"Authorization": f"Basic {token}"}
