"""Estimated cost from a small price table. A model outside it is 'unpriced', never $0.

Prices are US dollars per million tokens (input, cached input, output), from OpenAI's public
price list as of 2025-08. Check them before you rely on a figure.

A tier scales every price: calls sent through OpenAI's Batch API (`--batch-api`) are billed at
half the standard price (OpenAI's batch pricing, input and output alike).
"""

from __future__ import annotations

from collections.abc import Iterable

from .usage import Usage

PRICES_PER_MILLION: dict[str, tuple[float, float, float]] = {
    "gpt-4o": (2.50, 1.25, 10.00),
    "gpt-4o-mini": (0.15, 0.075, 0.60),
    "gpt-4.1": (2.00, 0.50, 8.00),
    "gpt-4.1-mini": (0.40, 0.10, 1.60),
    "gpt-4.1-nano": (0.10, 0.025, 0.40),
    "gpt-5": (1.25, 0.125, 10.00),
    "gpt-5-mini": (0.25, 0.025, 2.00),
    "gpt-5-nano": (0.05, 0.005, 0.40),
}


# Price tier -> the factor applied to every standard price.
TIER_FACTORS: dict[str, float] = {"standard": 1.0, "batch": 0.5}


def price_for(model: str) -> tuple[float, float, float] | None:
    """Exact name, or a dated snapshot of a listed model (gpt-4o-2024-08-06 → gpt-4o)."""
    name = model.rsplit("/", 1)[-1].lower()
    if name in PRICES_PER_MILLION:
        return PRICES_PER_MILLION[name]
    base = max((known for known in PRICES_PER_MILLION if name.startswith(known + "-20")), key=len, default=None)
    return PRICES_PER_MILLION[base] if base else None


def format_cost(usd: float | None, model: str | None = None) -> str:
    """A cost as every report spells it: "$0.0123", else "unpriced" (given the model: "unpriced
    (MODEL is not in the price table)"), never "$0" for a model the table does not list."""
    if usd is not None:
        return f"${usd:.4f}"
    return f"unpriced ({model} is not in the price table)" if model else "unpriced"


def listed_cost(usd: float | None, status: str | None) -> str:
    """A run's cost in a runs listing (`counterpoint runs`, the review app): "-" while it has no
    estimate (unfinished), else as `format_cost` spells it."""
    return format_cost(usd) if usd is not None or status else "-"


def estimate(model: str, usage: Usage, tier: str = "standard") -> tuple[float | None, str]:
    """(cost in USD at the `tier`'s prices, 'priced') or (None, 'unpriced')."""
    prices = price_for(model)
    if prices is None:
        return None, "unpriced"
    input_price, cached_price, output_price = prices
    uncached = max(usage.prompt_tokens - usage.cached_tokens, 0)
    cost = (
        uncached * input_price + usage.cached_tokens * cached_price + usage.completion_tokens * output_price
    ) / 1_000_000
    return round(cost * TIER_FACTORS[tier], 6), "priced"


def tier_note(tier: str) -> str | None:
    """What a brief says about a cost that is not at standard prices."""
    if tier == "standard":
        return None
    return (
        f"Calls went through the provider's Batch API: the cost is estimated at {tier} prices "
        f"({TIER_FACTORS[tier]:.0%} of the standard price)."
    )


def estimate_parts(parts: Iterable[tuple[str, Usage]], tier: str = "standard") -> tuple[float | None, str]:
    """The cost of usage split by model (a run whose stages use different models): the sum of each
    part's estimate, 'unpriced' when any part that used tokens is. Parts without tokens do not
    count unless no part has any (then the answer is what `estimate` says for them)."""
    parts = list(parts)
    used = [(model, usage) for model, usage in parts if usage.prompt_tokens or usage.completion_tokens] or parts
    estimates = [estimate(model, usage, tier) for model, usage in used]
    if not estimates or any(cost is None for cost, _ in estimates):
        return None, "unpriced"
    return round(sum(cost or 0.0 for cost, _ in estimates), 6), "priced"
