"""Atomic file writes, for the run record and the response cache alike."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def json_text(data: Any, *, indent: int | None = None) -> str:
    """JSON as UTF-8-safe text. A lone surrogate (an endpoint can send `\\ud800`) cannot be encoded as
    UTF-8; written as its escape it is still valid JSON and reads back as the same string."""
    text = json.dumps(data, indent=indent, ensure_ascii=False)
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def atomic_write(path: Path, text: str, *, mode: int = 0o644) -> None:
    """Write to a temporary file beside `path`, then rename: readers never see half a file, and a
    failed write (a full disk) leaves neither half a file nor the temporary one behind."""
    atomic_write_bytes(path, text.encode("utf-8"), mode=mode)


def atomic_write_bytes(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """`atomic_write` for bytes (an exported .docx)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, mode)  # mkstemp makes 0600
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
