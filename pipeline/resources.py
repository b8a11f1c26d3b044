"""Where prompts/, schemas/ and templates/ live: the one place that resolves them.

In a wheel they are force-included under pipeline/_resources/; in a source checkout
(editable install, tests) they are the top-level folders. COUNTERPOINT_PROMPTS_DIR and
COUNTERPOINT_SCHEMAS_DIR override the first two, for prompt experiments.
"""

from __future__ import annotations

import os
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent
_OVERRIDES = {"prompts": "COUNTERPOINT_PROMPTS_DIR", "schemas": "COUNTERPOINT_SCHEMAS_DIR"}


def resource_dir(kind: str) -> Path:
    """Return the directory holding `kind` ("prompts", "schemas" or "templates")."""
    override = os.environ.get(_OVERRIDES[kind]) if kind in _OVERRIDES else None
    return Path(override) if override else bundled_dir(kind)


def bundled_dir(kind: str) -> Path:
    """The folder `kind` is shipped in, whatever the environment overrides (the eval judge's yardstick)."""
    bundled = _PACKAGE_DIR / "_resources" / kind
    return bundled if bundled.is_dir() else _PACKAGE_DIR.parent / kind


def overridden(kind: str) -> bool:
    """True when `kind` comes from a user's folder (its environment variable), not the package."""
    return kind in _OVERRIDES and bool(os.environ.get(_OVERRIDES[kind]))


def fix_hint(kind: str) -> str:
    """What to do about an unreadable `kind` file: fix the user's folder, or reinstall."""
    return f"fix or unset {_OVERRIDES[kind]}" if overridden(kind) else "reinstall counterpoint"
