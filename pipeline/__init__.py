"""counterpoint: answer an opinion piece with a structured debate brief.

The public surface is small: `generate_brief` and `agenerate_brief`, the typed `Brief` and the
types it holds, and the exceptions. Everything is imported lazily so that `counterpoint --help`
does not pay for openai or jsonschema.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .version import __version__

__all__ = [
    "ArticleInfo",
    "AuthError",
    "Brief",
    "Check",
    "Claim",
    "ConfigError",
    "CounterpointError",
    "Failure",
    "InputError",
    "MissingContext",
    "ModelError",
    "ModelNotFound",
    "Rebuttal",
    "ResumeMismatch",
    "RhetoricalDevice",
    "RunDirError",
    "RunUsage",
    "UnitFailed",
    "__version__",
    "agenerate_brief",
    "generate_brief",
]

if TYPE_CHECKING:
    from .api import agenerate_brief, generate_brief
    from .brief import (
        ArticleInfo,
        Brief,
        Check,
        Claim,
        Failure,
        MissingContext,
        Rebuttal,
        RhetoricalDevice,
        RunUsage,
    )
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
    if name in ("generate_brief", "agenerate_brief"):
        from . import api

        return getattr(api, name)
    if name in __all__:
        from . import errors

        if hasattr(errors, name):
            return getattr(errors, name)
        from . import brief

        return getattr(brief, name)
    raise AttributeError(f"module 'pipeline' has no attribute {name!r}")
