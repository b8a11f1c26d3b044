"""The eval's figures: report.json from the per-item results, report.md, and `--compare`.

Coverage is the mean over scored items of (covered clusters ÷ gold clusters); each score is the
mean over scored items of that item's mean over its rebuttals, so every item weighs the same and
two reports pair item by item. A failed item is left out of every mean and counted, never taken as 0.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import asdict
from statistics import fmean
from typing import Any

from .judge import SCORES
from .pricing import estimate, format_cost
from .usage import Usage, clamp_usage

METRICS = ("coverage", *SCORES)
LOWER_IS_BETTER = {"factuality_risk"}
RESAMPLES = 2000


def usage_of(calls: Iterable[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Token counts and calls per role ("rebut", "judge") from an item's attempt lines."""
    totals: dict[str, dict[str, int]] = {}
    for call in calls:
        role = totals.setdefault(call.get("stage", "?"), {"calls": 0, "cache_hits": 0, **asdict(Usage())})
        counts, _ = clamp_usage(call.get("usage"))
        role["calls" if not call.get("cache_hit") else "cache_hits"] += 1
        for name, value in asdict(counts).items():
            role[name] += value
    return totals


def item_scores(result: dict[str, Any]) -> dict[str, float]:
    """A scored item's coverage and, per score, the mean over its rebuttals."""
    rebuttals = result["rebuttals"]
    return {"coverage": result["coverage"]} | {
        name: fmean(rebuttal["scores"][name] for rebuttal in rebuttals) for name in SCORES
    }


def build(results: list[dict[str, Any]], header: dict[str, Any]) -> dict[str, Any]:
    """report.json: the header (model, judge, endpoints, seed...), the means, every item, usage and cost."""
    scored = [result for result in results if result["status"] == "ok"]
    per_item = [_entry(result) for result in results]
    means = {name: _mean(item_scores(result)[name] for result in scored) for name in METRICS}
    usage = _total_usage(results)
    cost, unpriced = _cost({"rebut": header["model"], "judge": header["judge_model"]}, usage)
    return {
        "n": len(results),
        **header,
        "scored": len(scored),
        "failed": len(results) - len(scored),
        "failures": {
            stage: sum(1 for r in results if (r.get("error") or {}).get("stage") == stage)
            for stage in ("rebut", "judge")
        },
        "coverage": means["coverage"],
        "scores": {name: means[name] for name in SCORES},
        "usage": usage,
        "cost_usd": cost,
        "cost": format_cost(cost, unpriced),
        "per_item": per_item,
    }


def _entry(result: dict[str, Any]) -> dict[str, Any]:
    ok = result["status"] == "ok"
    return {
        "id": result["id"],
        "claim": result["claim"],
        "status": result["status"],
        "clusters": result["clusters"],
        "coverage": result["coverage"] if ok else None,
        "covered": result["covered"] if ok else [],
        "covered_by": result.get("covered_by") if ok else None,
        "reasons": result.get("reasons") if ok else None,
        "scores": {name: value for name, value in item_scores(result).items() if name != "coverage"} if ok else None,
        "rebuttals": result.get("rebuttals") or [],
        "error": result.get("error"),
        "usage": result.get("usage") or {},
    }


def _mean(values: Iterable[float]) -> float | None:
    values = list(values)
    return fmean(values) if values else None


def _total_usage(results: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    totals: dict[str, dict[str, int]] = {}
    for result in results:
        for role, counts in (result.get("usage") or {}).items():
            into = totals.setdefault(role, {})
            for name, value in counts.items():
                into[name] = into.get(name, 0) + value
    return totals


def _cost(models: dict[str, str], usage: dict[str, dict[str, int]]) -> tuple[float | None, str | None]:
    """The estimated cost of both roles, or (None, the model the price table lacks)."""
    total = 0.0
    for role, model in models.items():
        counts = usage.get(role, {})
        cost, _ = estimate(model, Usage.from_counts(counts))
        if cost is None and counts.get("calls"):
            return None, model
        total += cost or 0.0
    return round(total, 6), None


# -- report.md --------------------------------------------------------------------------------


def markdown(report: dict[str, Any]) -> str:
    lines = [
        "# counterpoint eval",
        "",
        f"- model: {report['model']} at {report['endpoint']}",
        f"- judge: {report['judge_model']} at {report['judge_endpoint']}",
        f"- items: {report['n']} ({report['scored']} scored, {report['failed']} failed and left out of the means)",
        f"- seed: {report['seed']}; cost: {report['cost']}",
        "",
        "| metric | mean |",
        "|---|---|",
        *(f"| {_label(name)} | {_number(_value(report, name))} |" for name in METRICS),
        "",
        "Coverage: the share of an item's gold counter-perspectives that some rebuttal makes, in the "
        "judge's view, averaged over items. Scores: 1-5 from the judge, averaged per item, then over "
        "items. They compare models and prompts on the same data and judge; they are not a measure of truth.",
        "",
        "## Items",
        "",
        "| id | coverage | covered clusters | claim |",
        "|---|---|---|---|",
    ]
    for item in report["per_item"]:
        if item["status"] == "ok":
            covered = ", ".join(str(index) for index in item["covered"]) or "none"
            share = f"{covered} of {item['clusters']}"
            lines.append(f"| {item['id']} | {_number(item['coverage'])} | {share} | {_cell(item['claim'])} |")
        else:
            error = item["error"] or {}
            lines.append(
                f"| {item['id']} | failed ({error.get('stage')}: {error.get('kind')}) | | {_cell(item['claim'])} |"
            )
    return "\n".join(lines) + "\n"


def _value(report: dict[str, Any], name: str) -> float | None:
    value = report["coverage"] if name == "coverage" else report["scores"][name]
    return value if isinstance(value, (int, float)) else None


def _label(name: str) -> str:
    return f"{name} (lower is better)" if name in LOWER_IS_BETTER else name


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _cell(text: str) -> str:
    return " ".join(text.replace("|", "\\|").split())


# -- --compare --------------------------------------------------------------------------------


def paired(a: dict[str, Any], b: dict[str, Any]) -> list[tuple[dict[str, float], dict[str, float]]]:
    """Per-item figures of the items scored in both reports, in A's order."""
    scored_b = {item["id"]: item for item in b["per_item"] if item.get("status") == "ok"}
    pairs = []
    for item in a["per_item"]:
        other = scored_b.get(item["id"])
        if item.get("status") == "ok" and other is not None:
            pairs.append((_figures(item), _figures(other)))
    return pairs


def _figures(item: dict[str, Any]) -> dict[str, float]:
    return {"coverage": item["coverage"], **item["scores"]}


def bootstrap(diffs: list[float], *, resamples: int = RESAMPLES, seed: int = 0) -> tuple[float, float]:
    """A 95% percentile interval of the mean of `diffs`, resampling items with replacement."""
    rng = random.Random(seed)
    n = len(diffs)
    means = sorted(fmean(rng.choices(diffs, k=n)) for _ in range(resamples))
    return means[int(0.025 * resamples)], means[int(0.975 * resamples) - 1]


def compare(a: dict[str, Any], b: dict[str, Any], *, resamples: int = RESAMPLES, seed: int = 0) -> list[dict[str, Any]]:
    """For each metric, over the items scored in both: A's mean, B's mean, B−A and its interval."""
    pairs = paired(a, b)
    if not pairs:
        return []
    rows = []
    for name in METRICS:
        diffs = [fb[name] - fa[name] for fa, fb in pairs]
        low, high = bootstrap(diffs, resamples=resamples, seed=seed)
        rows.append(
            {
                "metric": name,
                "a": fmean(fa[name] for fa, _ in pairs),
                "b": fmean(fb[name] for _, fb in pairs),
                "diff": fmean(diffs),
                "low": low,
                "high": high,
            }
        )
    return rows


def compare_table(
    a: dict[str, Any], b: dict[str, Any], rows: list[dict[str, Any]], *, resamples: int, seed: int
) -> str:
    """The side-by-side table `counterpoint eval --compare` prints."""
    n = len(paired(a, b))
    lines = [
        f"A: {a.get('model')} judged by {a.get('judge_model')} ({_count(a)})",
        f"B: {b.get('model')} judged by {b.get('judge_model')} ({_count(b)})",
        f"paired items: {n} (scored in both); interval: bootstrap 95%, {resamples} resamples, seed {seed}",
    ]
    if a.get("judge_model") != b.get("judge_model"):
        lines.append("note: the judges differ, so the difference mixes the models and the judges")
    width = max(len(_label(name)) for name in METRICS)
    lines.append(f"{'metric':<{width}}  {'A':>6}  {'B':>6}  {'B-A':>7}  95% interval")
    for row in rows:
        lines.append(
            f"{_label(row['metric']):<{width}}  {row['a']:6.3f}  {row['b']:6.3f}  {row['diff']:+7.3f}  "
            f"[{row['low']:+.3f}, {row['high']:+.3f}]"
        )
    return "\n".join(lines)


def _count(report: dict[str, Any]) -> str:
    return f"{report.get('n')} items, {report.get('failed')} failed"
