"""counterpoint: answer an opinion piece with a structured debate brief.

The public surface is small: `generate_brief`, `Brief`, and the exceptions. Everything is
imported lazily so that `counterpoint --help` does not pay for openai or jsonschema.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .version import __version__

__all__ = [
    "AuthError",
    "Brief",
    "ConfigError",
    "CounterpointError",
    "InputError",
    "ModelError",
    "ModelNotFound",
    "ResumeMismatch",
    "RunDirError",
    "UnitFailed",
    "__version__",
    "generate_brief",
]

if TYPE_CHECKING:
    from .api import generate_brief
    from .brief import Brief
    from .errors import (
        AuthError,
        ConfigError,
        CounterpointError,
        InputError,
        ModelError,
        ModelNotFound,
        ResumeMismatch,
        RunDirError,
        UnitFailed,
    )


def __getattr__(name: str) -> Any:
    if name == "generate_brief":
        from .api import generate_brief

        return generate_brief
    if name == "Brief":
        from .brief import Brief

        return Brief
    if name in __all__:
        from . import errors

        return getattr(errors, name)
    raise AttributeError(f"module 'pipeline' has no attribute {name!r}")
