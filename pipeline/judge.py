"""The eval judge: which gold counter-perspectives the generated rebuttals make, and a 1-5 score of each.

The judge sees the perspectives (P1..) and the rebuttals (R1..) in an order shuffled with a fixed
seed, so neither the data file's order nor the model's "strongest first" can favour a position;
its verdict is mapped back to the original indexes here. Its prompt is always the shipped one
(a COUNTERPOINT_PROMPTS_DIR experiment changes what is measured, never the measure).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import partial
from typing import Any

from . import prompts
from .llm import CallContext, ModelClient, structured
from .stages import fence_safe

SCORES = ("opposition", "relatedness", "specificity", "factuality_risk", "persuasiveness")
MAX_TOKENS = 2500
PROMPT = "judge"
SCHEMA = "judge"


@dataclass(frozen=True)
class Presentation:
    """The order the judge sees: `clusters[k]` is the original index of perspective P(k+1),
    `rebuttals[k]` that of rebuttal R(k+1)."""

    clusters: list[int]
    rebuttals: list[int]

    @classmethod
    def shuffled(cls, n_clusters: int, n_rebuttals: int, seed: int) -> Presentation:
        rng = random.Random(seed)
        clusters, rebuttals = list(range(n_clusters)), list(range(n_rebuttals))
        rng.shuffle(clusters)
        rng.shuffle(rebuttals)
        return cls(clusters, rebuttals)

    def cluster_ids(self) -> list[str]:
        return [f"P{k}" for k in range(1, len(self.clusters) + 1)]

    def rebuttal_ids(self) -> list[str]:
        return [f"R{k}" for k in range(1, len(self.rebuttals) + 1)]


def render(claim: str, clusters: list[list[str]], rebuttals: list[str], order: Presentation, nonce: str) -> str:
    """The judge's task, with every perspective's paraphrases and every rebuttal in `order`."""
    perspectives = "\n".join(
        f"[{label}]\n" + "\n".join(f"- {_one_line(text)}" for text in clusters[index])
        for label, index in zip(order.cluster_ids(), order.clusters, strict=True)
    )
    answers = "\n".join(
        f"[{label}] {_one_line(rebuttals[index])}"
        for label, index in zip(order.rebuttal_ids(), order.rebuttals, strict=True)
    )
    return prompts.render(
        PROMPT, bundled=True, nonce=nonce, claim=_one_line(claim), perspectives=perspectives, rebuttals=answers
    )


def _one_line(text: str) -> str:
    """A text as one fenced line, so every perspective and rebuttal starts where its label says."""
    return fence_safe(" ".join(text.split()))


def check_verdict(data: dict[str, Any], order: Presentation) -> list[str]:
    """Every shown perspective and rebuttal judged exactly once; `covered_by` names shown rebuttals."""
    errors = _each_once(data["perspectives"], order.cluster_ids(), "perspectives", "perspective")
    errors += _each_once(data["rebuttals"], order.rebuttal_ids(), "rebuttals", "rebuttal")
    shown = set(order.rebuttal_ids())
    for index, entry in enumerate(data["perspectives"]):
        for rebuttal_id in entry["covered_by"]:
            if rebuttal_id not in shown:
                errors.append(f"$.perspectives[{index}].covered_by: {rebuttal_id} is not one of the rebuttal ids")
    return errors


def _each_once(entries: list[dict[str, Any]], expected: list[str], field: str, noun: str) -> list[str]:
    errors, seen = [], set()
    for index, entry in enumerate(entries):
        if entry["id"] not in expected:
            errors.append(f"$.{field}[{index}].id: {entry['id']} is not one of the {noun} ids ({', '.join(expected)})")
        elif entry["id"] in seen:
            errors.append(f"$.{field}[{index}].id: {entry['id']} is judged twice; judge each {noun} once")
        seen.add(entry["id"])
    missing = [label for label in expected if label not in seen]
    if missing:
        errors.append(f"$.{field}: no entry for {', '.join(missing)}; judge every {noun}")
    return errors


def verdict(data: dict[str, Any], order: Presentation) -> dict[str, Any]:
    """The checked reply in the item's own order: covered cluster indexes (0-based, as in the data
    file), which rebuttals cover each, the judge's reasons, and each rebuttal's scores."""
    cluster_of = dict(zip(order.cluster_ids(), order.clusters, strict=True))
    rebuttal_of = dict(zip(order.rebuttal_ids(), order.rebuttals, strict=True))
    covered_by: dict[int, list[int]] = {}
    reasons: dict[int, str] = {}
    for entry in data["perspectives"]:
        cluster = cluster_of[entry["id"]]
        covered_by[cluster] = sorted({rebuttal_of[label] for label in entry["covered_by"]})
        reasons[cluster] = entry["reason"]
    scores = {rebuttal_of[entry["id"]]: {name: entry[name] for name in SCORES} for entry in data["rebuttals"]}
    return {
        "covered": sorted(cluster for cluster, by in covered_by.items() if by),
        "covered_by": {str(cluster): covered_by[cluster] for cluster in sorted(covered_by)},
        "reasons": {str(cluster): reasons[cluster] for cluster in sorted(reasons)},
        "scores": [scores[index] for index in sorted(scores)],
    }


async def judge(
    client: ModelClient,
    *,
    item_id: str,
    claim: str,
    clusters: list[list[str]],
    rebuttals: list[str],
    seed: int,
    nonce: str,
    reasks: int,
) -> dict[str, Any]:
    """Ask the judge about one item (through the same validation and re-ask loop as every stage)."""
    order = Presentation.shuffled(len(clusters), len(rebuttals), seed)
    data = await structured(
        client,
        CallContext("judge", item_id, nonce),
        [{"role": "user", "content": render(claim, clusters, rebuttals, order, nonce)}],
        SCHEMA,
        partial(check_verdict, order=order),
        max_tokens=MAX_TOKENS,
        reasks=reasks,
        choices={
            "perspectives[].id": order.cluster_ids(),
            "perspectives[].covered_by[]": order.rebuttal_ids(),
            "rebuttals[].id": order.rebuttal_ids(),
        },
    )
    return verdict(data, order)
