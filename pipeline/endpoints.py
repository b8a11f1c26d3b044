"""Where a run's requests go: checking a base URL, and the endpoint a run records and resumes on.

Import-light (no openai, no Click): the CLI checks --base-url with it before anything starts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .errors import ConfigError, ResumeMismatch

DEFAULT_BASE_URL = "https://api.openai.com/v1"
_SCHEMES = ("http", "https")
_USERINFO = re.compile(r"(?<=//)[^/?#]*@")
_SPACE_OR_CONTROL = re.compile(r"[\x00-\x20\x7f]")


def check_base_url(raw: str, name: str = "--base-url") -> str:
    """The base URL without userinfo, query or fragment; ConfigError when it cannot be an endpoint,
    naming the setting as the caller knows it (`--base-url` on the command line, `base_url=` in Python)."""
    shown = _USERINFO.sub("***@", raw)  # a password in the URL is never echoed
    shown = shown if len(shown) <= 200 else shown[:200] + "..."
    try:
        parts = urlsplit(raw.strip())
        port = parts.port  # raises ValueError when out of range or not a number
    except ValueError as exc:
        raise ConfigError(f"{name} {shown!r} is not a valid URL ({exc}); give e.g. http://127.0.0.1:8080/v1") from None
    if not raw.strip():
        raise ConfigError(
            f"{name} {raw!r} is empty; give the server's URL, e.g. http://127.0.0.1:8080/v1, "
            "or leave it out to use OpenAI"
        )
    if _SPACE_OR_CONTROL.search(raw.strip()):  # urlsplit drops some silently; the SDK would not
        raise ConfigError(
            f"{name} {shown.strip()!r} holds a space or control character (a line end from a "
            ".env file?); give the URL alone, e.g. http://127.0.0.1:8080/v1"
        )
    if parts.scheme.lower() not in _SCHEMES or not parts.hostname:
        raise ConfigError(
            f"{name} {shown!r} is not an http:// or https:// URL with a host; give e.g. http://127.0.0.1:8080/v1"
        )
    if port == 0:
        raise ConfigError(f"{name} {shown!r} has port 0; give the port the server listens on")
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme.lower(), host.lower(), parts.path.rstrip("/"), "", ""))


@dataclass(frozen=True)
class Endpoint:
    """The endpoint a run talks to. A --local run is identified by its model file: llama.cpp's
    port changes every time it starts."""

    url: str
    local_model: str | None = None
    defaulted: bool = False  # no base URL was given: the public default

    @classmethod
    def of(cls, base_url: str | None, local_model: str | None = None) -> Endpoint:
        return cls(check_base_url(base_url or DEFAULT_BASE_URL), local_model, base_url is None)

    @property
    def identity(self) -> str:
        """What must match to reuse a cached reply or resume a run."""
        return f"llama.cpp:{self.local_model}" if self.local_model else self.url

    def describe(self) -> str:
        return f"llama.cpp (--local) with {self.local_model}" if self.local_model else self.url

    def record(self) -> dict[str, Any]:
        """The manifest's fields."""
        return {"endpoint": self.url, "local": {"model_file": self.local_model} if self.local_model else None}


def recorded(manifest: dict[str, Any]) -> Endpoint | None:
    """The endpoint a manifest records, or None for a run recorded before endpoints were."""
    url = manifest.get("endpoint")
    if not isinstance(url, str):
        return None
    local = manifest.get("local")
    model = local.get("model_file") if isinstance(local, dict) else None
    return Endpoint(url, model if isinstance(model, str) else None)


def check_resume(run_id: str, manifest: dict[str, Any], current: Endpoint | None, *, force: bool) -> list[str]:
    """Refuse to send a recorded run anywhere it was not started on. Returns warnings (with `force`)."""
    if current is None:  # an injected fake client: nothing is sent anywhere
        return []
    before = recorded(manifest)
    if before is None:
        if current.defaulted:
            raise ResumeMismatch(
                f"run {run_id} does not record its endpoint; pass --base-url (or --local) to say "
                "where to send the rest of it"
            )
        return []
    if before.identity == current.identity:
        return []
    problem = f"the run was started on {before.describe()}, not {current.describe()}"
    if not force:
        raise ResumeMismatch(
            f"cannot resume {run_id}: {problem}; resume without --base-url (and with "
            "OPENAI_BASE_URL unset, no --local or --model-file) to use the recorded endpoint, "
            "or pass --force to send the rest there"
        )
    return [problem]
