"""Load prompts/NAME.md and fill its $placeholders. A missing variable is an error, never ''."""

from __future__ import annotations

import hashlib
import string
from functools import cache

from .errors import ConfigError
from .resources import fix_hint, resource_dir


@cache
def _template(name: str) -> string.Template:
    path = resource_dir("prompts") / f"{name}.md"
    try:
        return string.Template(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"prompt file {path} cannot be read ({exc.strerror}); {fix_hint('prompts')}") from None
    except ValueError:
        raise ConfigError(f"prompt file {path} is not UTF-8 text; {fix_hint('prompts')}") from None


def placeholders(name: str) -> set[str]:
    """The identifiers a prompt expects."""
    return set(_template(name).get_identifiers())


def render(name: str, **variables: object) -> str:
    """Fill a prompt. Raises ConfigError naming any missing or unexpected variable."""
    expected = placeholders(name)
    missing = expected - variables.keys()
    extra = variables.keys() - expected
    if missing or extra:
        raise ConfigError(f"prompt {name}: missing variables {sorted(missing)}, unexpected {sorted(extra)}")
    return _template(name).substitute({key: str(value) for key, value in variables.items()})


def digest(name: str) -> str:
    """sha256 of the prompt file as shipped, for the manifest and resume checks."""
    return hashlib.sha256(_template(name).template.encode("utf-8")).hexdigest()
