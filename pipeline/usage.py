"""Token counts: what one reply used, sums of them, and counts made safe to add.

Shared by the model adapter (which reads them off replies), the run record (which totals them)
and pricing; it imports nothing of the package.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import astuple, dataclass, fields
from typing import Any


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(*(a + b for a, b in zip(astuple(self), astuple(other), strict=True)))

    @classmethod
    def from_counts(cls, counts: Mapping[str, Any]) -> Usage:
        """The token figures of a usage-totals dict (one that also counts calls and cache hits)."""
        return cls(**{field.name: counts.get(field.name, 0) for field in fields(cls)})


# No call uses a billion tokens; a larger figure is an endpoint's nonsense that would overflow the
# cost estimate (a float) and make the run unfinishable.
MAX_TOKEN_COUNT = 10**9


def clamp_usage(counts: Any) -> tuple[Usage, bool]:
    """Token counts as reported (or as recorded) → non-negative integers, and whether any had to
    change. Accounting must never block a brief: an endpoint's odd figures are clamped, not trusted."""
    if not isinstance(counts, Mapping):
        return Usage(), counts is not None
    clean: dict[str, int] = {}
    changed = False
    for name in ("prompt_tokens", "completion_tokens", "cached_tokens"):
        value = counts.get(name)
        number = value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
        finite = number is not None and (isinstance(number, int) or math.isfinite(number))
        clean[name] = min(max(0, round(number)), MAX_TOKEN_COUNT) if finite and number is not None else 0
        changed = changed or (value is not None and clean[name] != value)
    return Usage(**clean), changed
