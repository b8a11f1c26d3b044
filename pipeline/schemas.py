"""Load schemas/NAME.schema.json and validate data against them (a COUNTERPOINT_SCHEMAS_DIR folder is
checked against the metaschema at load; the bundled schemas are checked by the tests)."""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from typing import TYPE_CHECKING, Any

from .article import MIN_QUOTE_WORDS, count_words
from .errors import ConfigError
from .resources import fix_hint, overridden, resource_dir

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator

# What llama.cpp's converter cannot put in an enum literal (see grammar_safe): `"`, backslash,
# other control characters than tab, CR and LF, and characters outside the BMP.
_UNSAFE = re.compile(r'["\\\x00-\x08\x0b\x0c\x0e-\x1f\U00010000-\U0010ffff]')


@cache
def _load(name: str) -> tuple[dict[str, Any], str]:
    path = resource_dir("schemas") / f"{name}.schema.json"
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"schema file {path} cannot be read ({exc.strerror}); {fix_hint('schemas')}") from None
    try:
        schema = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise ConfigError(f"schema file {path} is not JSON ({str(exc)[:200]}); {fix_hint('schemas')}") from None
    if overridden("schemas"):
        # Only schemas from an experiment folder are checked here: the bundled ones are checked by
        # the test suite, and checking against the metaschema costs ~20 ms a schema at every start.
        from jsonschema import Draft202012Validator
        from jsonschema.exceptions import SchemaError

        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as exc:
            raise ConfigError(
                f"{path} is not a valid JSON Schema ({exc.message}); fix it or unset COUNTERPOINT_SCHEMAS_DIR"
            ) from None
    return schema, hashlib.sha256(raw).hexdigest()


def load(name: str) -> dict[str, Any]:
    return _load(name)[0]


def digest(name: str) -> str:
    return _load(name)[1]


def narrowed(name: str, choices: Mapping[str, Sequence[Any]]) -> dict[str, Any]:
    """The schema with some fields limited to given values (an `enum`), for servers that constrain
    decoding to the schema: a grammar then cannot write a quote that is not in the article.

    A path names properties from the root, `[]` stepping into an array's items:
    `claims[].quote`. A string the grammar converter cannot express is replaced by its pieces
    (see `grammar_safe`); values that break the field's own maxLength are left out. Local
    validation still uses the file's schema.
    """
    schema = copy.deepcopy(load(name))
    for path, values in choices.items():
        node = schema
        for part in path.split("."):
            node = node["properties"][part.removesuffix("[]")]
            if part.endswith("[]"):
                node = node["items"]
        limit = node.get("maxLength")
        allowed = [value for value in grammar_safe(values) if limit is None or len(value) <= limit]
        if allowed:
            node["enum"] = allowed
    return schema


def grammar_safe(values: Iterable[Any]) -> list[Any]:
    """The values, with each string llama.cpp's JSON-schema-to-grammar converter would garble
    replaced by its longest pieces without the offending characters (each piece still an exact
    substring, so a quote stays verbatim); a piece of fewer than MIN_QUOTE_WORDS words is dropped,
    as it could not ground a claim.

    The converter writes an enum value as `json.dumps(value)` inside a grammar literal, escaping
    only `"` and newlines again: the backslashes JSON puts before `"` and `\\` are then read as
    grammar escapes (a `"` closes the literal early and the server fails to parse the grammar), and
    a character outside the BMP becomes two lone surrogates no token can produce.
    """
    safe: list[Any] = []
    for value in values:
        pieces = (
            [value]
            if not isinstance(value, str) or not _UNSAFE.search(value)
            else [piece.strip() for piece in _UNSAFE.split(value) if count_words(piece) >= MIN_QUOTE_WORDS]
        )
        for piece in pieces:
            if piece not in safe:
                safe.append(piece)
    return safe


@cache
def validator(name: str) -> Draft202012Validator:
    """The schema's validator. jsonschema is imported here, not at start-up: it takes ~0.1 s, and a
    run needs it first when the first answer arrives (see engine.BriefRun._prepare_outputs)."""
    from jsonschema import Draft202012Validator

    return Draft202012Validator(load(name))


def validate(name: str, data: Any) -> list[str]:
    """Every violation as 'path: message' (path '$' for the root), sorted by location."""
    errors = sorted(validator(name).iter_errors(data), key=lambda e: list(map(str, e.absolute_path)))
    return [f"{_path(e.absolute_path)}: {e.message}" for e in errors]


def _path(parts: Any) -> str:
    out = "$"
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out
