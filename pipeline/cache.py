"""On-disk cache of validated model replies, keyed on the exact request.

A rerun of the same article with the same settings then costs no model calls. The per-run
fence nonce is masked out of the key: it changes every run but not what is asked.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

CACHE_FORMAT = 1


def default_cache_dir() -> Path:
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("counterpoint")) / "responses"


class ResponseCache:
    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def key(self, request: dict[str, Any], *, mask: str = "") -> str:
        canonical = json.dumps(request, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        if mask:
            canonical = canonical.replace(mask, "<nonce>")
        return hashlib.sha256(f"{CACHE_FORMAT}:{canonical}".encode("utf-8")).hexdigest()

    def _path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        """The stored reply, or None when absent or unreadable (a corrupt entry is a miss)."""
        try:
            entry = json.loads(self._path(key).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(entry, dict) or entry.get("key") != key or not isinstance(entry.get("reply"), dict):
            return None
        reply = entry["reply"]
        if not isinstance(reply.get("content"), str):
            return None
        return {"content": reply["content"], "finish_reason": reply.get("finish_reason"),
                "refusal": reply.get("refusal")}

    def put(self, key: str, reply: dict[str, Any]) -> None:
        """Store atomically; a cache that cannot be written is skipped, never fatal."""
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump({"key": key, "reply": reply}, handle, ensure_ascii=False)
            os.replace(tmp, path)
        except OSError:
            return
