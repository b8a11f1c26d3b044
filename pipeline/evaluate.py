"""`counterpoint eval`: the rebut stage answers each gold item's claim, a judge model compares the
rebuttals with the item's gold counter-perspectives, and the results become a report.

The rebut stage sees the claim as the whole article (an article of one sentence, no title, author
or date) and as its claim C1, quoted exactly, with centrality 5/5 and type "policy" when it says
what should, must or ought to happen, else "evaluative": the same prompts and checks as a brief,
with nothing added the data does not say. Each item is saved as it finishes; rerunning with the
same --out asks only for what is not finished.
"""

from __future__ import annotations

import asyncio
import contextvars
import os
import re
import secrets
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from . import defaults, evalreport, prompts, schemas, stages
from . import judge as judge_mod
from .api import make_client
from .article import Article
from .endpoints import Endpoint
from .engine import Settings
from .errors import UnitFailed
from .evaldata import EvalDir, Item
from .llm import ModelClient
from .runs import Attempt, utc_now
from .version import __version__

REBUT_PROMPTS = ("system", "article", "rebut_claim", "repair", "truncated", "schema_in_prompt")
SCHEMA_NAMES = ("rebuttal", "judge")
JUDGE_KEY_ENV = "COUNTERPOINT_JUDGE_API_KEY"
_POLICY = re.compile(r"\b(should|must|ought|needs? to|has to|have to)\b", re.IGNORECASE)
# The attempts of the item a task is working on: both clients log to it (see `_log`).
_ATTEMPTS: contextvars.ContextVar[list[dict[str, Any]] | None] = contextvars.ContextVar("attempts", default=None)

ItemSink = Callable[[int, int, dict[str, Any]], None]


@dataclass(frozen=True)
class EvalSettings:
    """What changes the answers or the verdicts: part of the eval directory's fingerprint."""

    model: str = defaults.MODEL
    base_url: str | None = None
    judge_model: str | None = None  # None: the same model
    judge_base_url: str | None = None  # None: the same endpoint
    seed: int = 0
    reasks: int = defaults.REASKS
    temperature: float | None = None
    judge_temperature: float | None = None  # None: --temperature
    response_format: str = defaults.RESPONSE_FORMAT

    @property
    def judge(self) -> str:
        return self.judge_model or self.model

    @property
    def judge_url(self) -> str | None:
        return self.judge_base_url or self.base_url

    def fingerprint(self) -> dict[str, Any]:
        return {
            "settings": {
                "model": self.model,
                "judge_model": self.judge,
                "endpoint": Endpoint.of(self.base_url).identity,
                "judge_endpoint": Endpoint.of(self.judge_url).identity,
                "seed": self.seed,
                "reasks": self.reasks,
                "temperature": self.temperature,
                "judge_temperature": self.judge_temperature,
                "response_format": self.response_format,
            },
            "prompts": {name: prompts.digest(name) for name in REBUT_PROMPTS}
            | {"judge": prompts.digest(judge_mod.PROMPT, bundled=True)},
            "schemas": {name: schemas.digest(name) for name in SCHEMA_NAMES},
        }


@dataclass(frozen=True)
class EvalOptions:
    """How the eval reaches the endpoints and paces itself (not part of the fingerprint)."""

    timeout: float = defaults.TIMEOUT
    max_retries: int = defaults.MAX_RETRIES
    max_calls: int | None = None  # per client; None: every item's calls, re-asks and a few retries
    cache_dir: Path | None = None
    use_cache: bool = True
    concurrency: int = defaults.CONCURRENCY


def claim_context(item: Item) -> tuple[Article, dict[str, Any]]:
    """The article and claim the rebut stage sees for an item (see the module's docstring)."""
    article = Article(text=item.claim, source=item.id)
    claim_type = "policy" if _POLICY.search(item.claim) else "evaluative"
    return article, {"id": "C1", "type": claim_type, "centrality": 5, "text": item.claim, "quote": item.claim}


class Evaluation:
    """One eval over `items`, recorded in `out`."""

    def __init__(self, items: list[Item], settings: EvalSettings, options: EvalOptions, out: EvalDir) -> None:
        self.items = items
        self.settings = settings
        self.options = options
        self.out = out
        self.rebut_client = self._client(settings.model, settings.base_url, settings.temperature, None)
        self.judge_client = self._client(
            settings.judge,
            settings.judge_url,
            settings.temperature if settings.judge_temperature is None else settings.judge_temperature,
            os.environ.get(JUDGE_KEY_ENV) or None,
        )

    def _client(self, model: str, base_url: str | None, temperature: float | None, api_key: str | None) -> ModelClient:
        options = self.options
        settings = Settings(
            model=model,
            concurrency=options.concurrency,
            reasks=self.settings.reasks,
            temperature=temperature,
            response_format=self.settings.response_format,
        )
        return make_client(
            settings=settings,
            base_url=base_url,
            api_key=api_key,
            timeout=options.timeout,
            max_retries=options.max_retries,
            # Like a brief's budget: every unit, its re-asks and a few transport retries.
            max_calls=options.max_calls or len(self.items) * (self.settings.reasks + 2) * 2,
            cache_dir=options.cache_dir,
            use_cache=options.use_cache,
            log=_log,
        )

    async def run(self, on_item: ItemSink | None = None) -> dict[str, Any]:
        """Every item (stored ones reused), then the report; returns the report."""
        slots = asyncio.Semaphore(self.options.concurrency)
        done = 0

        async def one(item: Item) -> dict[str, Any]:
            nonlocal done
            async with slots:
                result = await self._item(item)
            done += 1
            if on_item:
                on_item(done, len(self.items), result)
            return result

        tasks = [asyncio.ensure_future(one(item)) for item in self.items]
        try:
            results = await asyncio.gather(*tasks)
        except BaseException:  # the endpoint refused the eval, or an interrupt: stop the others first
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        finally:
            await self.rebut_client.aclose()
            await self.judge_client.aclose()
        report = evalreport.build(list(results), self.header())
        self.out.write_report(report, evalreport.markdown(report))
        return report

    def header(self) -> dict[str, Any]:
        settings = self.settings
        return {
            "model": settings.model,
            "judge_model": settings.judge,
            "endpoint": Endpoint.of(settings.base_url).url,
            "judge_endpoint": Endpoint.of(settings.judge_url).url,
            "seed": settings.seed,
            "created": utc_now(),
            "version": __version__,
        }

    async def _item(self, item: Item) -> dict[str, Any]:
        stored = self.out.load(item)
        if stored is not None and stored.get("status") == "ok":
            return stored
        attempts: list[dict[str, Any]] = []
        token = _ATTEMPTS.set(attempts)
        try:
            result = await self._answer(item, (stored or {}).get("rebuttals"))
        finally:
            _ATTEMPTS.reset(token)
        calls = [*((stored or {}).get("calls") or []), *attempts]
        result = {**result, "calls": calls, "usage": evalreport.usage_of(calls)}
        self.out.save(item, result)
        return result

    async def _answer(self, item: Item, rebuttals: list[dict[str, Any]] | None) -> dict[str, Any]:
        """The item scored, or failed with its reason. A ModelError (the endpoint refused the key or
        the model) is not about this item: it stops the eval and nothing is recorded for it."""
        base = {"id": item.id, "claim": item.claim, "clusters": len(item.clusters)}
        try:
            if not rebuttals:
                rebuttals = await self._rebut(item)
            verdict = await judge_mod.judge(
                self.judge_client,
                item_id=item.id,
                claim=item.claim,
                clusters=item.clusters,
                rebuttals=[rebuttal["argument"] for rebuttal in rebuttals],
                seed=self.settings.seed + item.index,
                nonce=secrets.token_hex(8),
                reasks=self.settings.reasks,
            )
        except UnitFailed as exc:
            stage = "judge" if rebuttals else "rebut"
            error = {"stage": stage, "kind": exc.kind, "message": str(exc)}
            return {**base, "status": "failed", "error": error, "rebuttals": rebuttals or []}
        scored = [
            {**rebuttal, "scores": scores} for rebuttal, scores in zip(rebuttals, verdict.pop("scores"), strict=True)
        ]
        coverage = len(verdict["covered"]) / len(item.clusters)
        return {**base, "status": "ok", "coverage": coverage, **verdict, "rebuttals": scored, "error": None}

    async def _rebut(self, item: Item) -> list[dict[str, Any]]:
        article, claim = claim_context(item)
        nonce = secrets.token_hex(8)
        data = await stages.rebut_claim(
            self.rebut_client,
            stages.base_messages(article, nonce, None),
            claim,
            nonce,
            reasks=self.settings.reasks,
        )
        return list(data["rebuttals"])


def _log(attempt: Attempt) -> None:
    attempts = _ATTEMPTS.get()
    if attempts is not None:
        attempts.append(attempt.line())


def manifest(settings: EvalSettings, data_path: str, data_sha256: str, limit: int | None) -> dict[str, Any]:
    """eval.json: what the directory was started with (its fingerprint is checked on every rerun)."""
    return {
        "version": __version__,
        "created": utc_now(),
        "data": {"path": data_path, "sha256": data_sha256},
        # What a rerun with --resume DIR takes for the options it is not given (URLs without credentials).
        "options": asdict(settings)
        | {
            "base_url": settings.base_url and Endpoint.of(settings.base_url).url,
            "judge_base_url": settings.judge_base_url and Endpoint.of(settings.judge_base_url).url,
            "limit": limit,
        },
        "endpoints": {
            "rebut": Endpoint.of(settings.base_url).url,
            "judge": Endpoint.of(settings.judge_url).url,
        },
        "fingerprint": settings.fingerprint(),
    }


def evaluate(
    items: list[Item],
    settings: EvalSettings,
    options: EvalOptions,
    out: EvalDir,
    *,
    data: tuple[str, str],
    limit: int | None = None,
    on_item: ItemSink | None = None,
) -> dict[str, Any]:
    """Run the eval recorded in `out` (new, or continued when its fingerprint matches) over `items`
    (the first `limit` of the file `data`: path, sha256), and return the report."""
    with out.lock():
        out.open(manifest(settings, *data, limit))
        evaluation = Evaluation(items, settings, options, out)
        return asyncio.run(evaluation.run(on_item))
