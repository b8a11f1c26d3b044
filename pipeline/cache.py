"""On-disk cache of validated model replies, keyed on the endpoint and the exact request.

A rerun of the same article with the same settings then costs no model calls. The per-run
fence nonce is masked out of the key: it changes every run but not what is asked. Two servers
may serve the same model name with different weights, so an entry records the endpoint that
answered and is never served for another.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from .files import atomic_write, json_text

CACHE_FORMAT = 2  # 2: keyed on the endpoint


def default_cache_dir() -> Path:
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("counterpoint")) / "responses"


class ResponseCache:
    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def key(self, request: dict[str, Any], *, endpoint: str, mask: str = "") -> str:
        canonical = json.dumps(request, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        if mask:
            canonical = canonical.replace(mask, "<nonce>")
        scoped = json.dumps([CACHE_FORMAT, endpoint, canonical], ensure_ascii=False)
        return hashlib.sha256(scoped.encode("utf-8")).hexdigest()

    def _path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.json"

    def get(self, key: str, *, endpoint: str) -> dict[str, Any] | None:
        """The stored reply, or None when absent, unreadable (a corrupt entry is a miss) or answered
        by another endpoint."""
        try:
            entry = json.loads(self._path(key).read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError):
            return None
        if (
            not isinstance(entry, dict)
            or entry.get("key") != key
            or entry.get("endpoint") != endpoint
            or not isinstance(entry.get("reply"), dict)
        ):
            return None
        reply = entry["reply"]
        if not isinstance(reply.get("content"), str):
            return None
        return {
            "content": reply["content"],
            "finish_reason": reply.get("finish_reason"),
            "refusal": reply.get("refusal"),
        }

    def put(self, key: str, reply: dict[str, Any], *, endpoint: str, model: str | None = None) -> None:
        """Store atomically; a cache that cannot be written is skipped, never fatal. `model` (the
        model the request named, also part of the key) is kept for people reading the entry."""
        path = self._path(key)
        entry = json_text({"key": key, "endpoint": endpoint, "model": model, "reply": reply})
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, entry, mode=0o600)  # the user's own answers: not for other accounts
        except OSError:
            return
