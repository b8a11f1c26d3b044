"""Shared settings for a team: `counterpoint.toml` in the user config dir and in the working directory.

Both files are optional and read if present; the working directory's wins key by key. Their values
are defaults only: the CLI hands them to Click as each command's `default_map`, which Click
consults after the command line and the environment, so an option or an environment variable
always overrides a file. `sources` says where each value in force comes from, for `doctor`.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import defaults
from .errors import ConfigError

FILE_NAME = "counterpoint.toml"


@dataclass(frozen=True)
class Key:
    """A setting a file may hold: its TOML type, the environment variable that overrides it, and
    the default in force when nothing sets it (as `doctor` shows it)."""

    name: str
    kind: type
    envvar: str | None
    default: Any


KEYS = {
    key.name: key
    for key in (
        Key("model", str, "COUNTERPOINT_MODEL", defaults.MODEL),
        Key("base_url", str, "OPENAI_BASE_URL", "OpenAI's"),
        Key("concurrency", int, "COUNTERPOINT_CONCURRENCY", defaults.CONCURRENCY),
        Key("runs_dir", Path, "COUNTERPOINT_RUNS_DIR", defaults.RUNS_DIR),
        Key("cache_dir", Path, "COUNTERPOINT_CACHE_DIR", "the user cache dir"),
        Key("response_format", str, "COUNTERPOINT_RESPONSE_FORMAT", defaults.RESPONSE_FORMAT),
        Key("max_claims", int, None, defaults.MAX_CLAIMS),
        Key("reasks", int, None, defaults.REASKS),
        Key("timeout", float, None, defaults.TIMEOUT),
        Key("max_retries", int, None, defaults.MAX_RETRIES),
        Key("language", str, None, "the article's"),
        Key("temperature", float, None, "the server's"),
    )
}
_KIND_WORDS = {str: "a string", int: "a whole number", float: "a number", Path: "a path (a string)"}
_SECRETS = ("api_key", "openai_api_key", "key")


@dataclass(frozen=True)
class Value:
    """A setting's value as a file gives it (a path resolved against the file's folder), and the file."""

    value: Any
    path: Path


@dataclass(frozen=True)
class Setting:
    """A setting in force and where it came from: 'option --model', 'env COUNTERPOINT_MODEL',
    'file /path/counterpoint.toml' or 'default'."""

    name: str
    value: Any
    source: str


def user_file() -> Path:
    """counterpoint.toml in the user config dir ($XDG_CONFIG_HOME/counterpoint on Linux)."""
    from platformdirs import user_config_dir

    return Path(user_config_dir("counterpoint")) / FILE_NAME


def files(cwd: Path | None = None) -> list[Path]:
    """The files read, the one that wins last: the user's, then the working directory's."""
    found = [user_file(), (cwd or Path.cwd()) / FILE_NAME]
    return [path for index, path in enumerate(found) if path.is_file() and path not in found[:index]]


def load(cwd: Path | None = None) -> dict[str, Value]:
    """Every setting the files give; a ConfigError naming the file (and key) when one cannot be used."""
    values: dict[str, Value] = {}
    for path in files(cwd):
        values.update(read(path))
    return values


def read(path: Path) -> dict[str, Value]:
    try:
        data = tomllib.loads(path.read_bytes().decode("utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read {path} ({exc.strerror}); fix its permissions or remove it") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not UTF-8 text; save it as UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML ({exc}); fix it or remove it") from None
    return {name: Value(_checked(path, name, value), path) for name, value in data.items()}


def _checked(path: Path, name: str, value: Any) -> Any:
    key = KEYS.get(name)
    if name.lower() in _SECRETS:
        raise ConfigError(f"{path}: {name}: an API key does not belong in a file; set OPENAI_API_KEY instead")
    if key is None:
        raise ConfigError(f"{path}: unknown key {name!r}; the keys are {', '.join(KEYS)}")
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    fits = {str: isinstance(value, str), Path: isinstance(value, str), float: number}.get(
        key.kind, number and isinstance(value, int)
    )
    if not fits:
        raise ConfigError(f"{path}: {name} must be {_KIND_WORDS[key.kind]}, not {_toml_kind(value)} ({value!r})")
    if key.kind is Path:
        return path.parent / Path(value).expanduser()  # relative to the file, as its author wrote it
    return float(value) if key.kind is float else value


def _toml_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return "a string" if isinstance(value, str) else "a date or time"


def sources(loaded: Mapping[str, Value], given: Mapping[str, Any], environ: Mapping[str, str]) -> list[Setting]:
    """Each setting in force and its source, in the order Click resolves them: an option given on
    the command line, its environment variable (an empty one counts as unset, as for Click), a
    file, the default."""
    found = []
    for key in KEYS.values():
        if key.name in given:
            found.append(Setting(key.name, given[key.name], f"option --{key.name.replace('_', '-')}"))
        elif key.envvar and environ.get(key.envvar):
            found.append(Setting(key.name, environ[key.envvar], f"env {key.envvar}"))
        elif key.name in loaded:
            found.append(Setting(key.name, loaded[key.name].value, f"file {loaded[key.name].path}"))
        else:
            found.append(Setting(key.name, key.default, "default"))
    return found
