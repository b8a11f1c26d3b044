"""Load prompts/NAME.md and fill its $placeholders. A missing variable is an error, never ''."""

from __future__ import annotations

import hashlib
import string
from functools import cache

from .errors import ConfigError
from .resources import bundled_dir, fix_hint, resource_dir


@cache
def _template(name: str, bundled: bool = False) -> string.Template:
    path = (bundled_dir("prompts") if bundled else resource_dir("prompts")) / f"{name}.md"
    try:
        return string.Template(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"prompt file {path} cannot be read ({exc.strerror}); {fix_hint('prompts')}") from None
    except ValueError:
        raise ConfigError(f"prompt file {path} is not UTF-8 text; {fix_hint('prompts')}") from None


def placeholders(name: str, *, bundled: bool = False) -> set[str]:
    """The identifiers a prompt expects."""
    return set(_template(name, bundled).get_identifiers())


def render(name: str, *, bundled: bool = False, **variables: object) -> str:
    """Fill a prompt (`bundled`: the shipped file, whatever COUNTERPOINT_PROMPTS_DIR says). Raises
    ConfigError naming any missing or unexpected variable."""
    expected = placeholders(name, bundled=bundled)
    missing = expected - variables.keys()
    extra = variables.keys() - expected
    if missing or extra:
        raise ConfigError(f"prompt {name}: missing variables {sorted(missing)}, unexpected {sorted(extra)}")
    return _template(name, bundled).substitute({key: str(value) for key, value in variables.items()})


def digest(name: str, *, bundled: bool = False) -> str:
    """sha256 of the prompt file as shipped, for the manifest and resume checks."""
    return hashlib.sha256(_template(name, bundled).template.encode("utf-8")).hexdigest()
