"""Run the stages in order: one extraction, every claim concurrently, one synthesis.

Each finished unit is saved to the run directory at once, so a killed run loses only the calls
in flight, and `resume` reuses every unit whose inputs and settings still match.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from typing import Any

from . import brief as brief_mod
from . import defaults, endpoints, prompts, schemas, stages
from .article import Article
from .brief import verify
from .errors import ModelError, ResumeMismatch, RunDirError, UnitFailed
from .llm import Check, ModelClient
from .pricing import estimate, estimate_parts, tier_note
from .runs import RunRecord, resume_command, utc_now
from .usage import Usage

PROMPT_NAMES = (
    "system",
    "article",
    "extract_claims",
    "rebut_claim",
    "synthesize",
    "repair",
    "truncated",
    "schema_in_prompt",
)
SCHEMA_NAMES = ("claims", "rebuttal", "synthesis", "brief")
# Each stage's own model setting (None: `model`), by the stage names of the calls log.
STAGE_MODELS = {"extract": "extract_model", "rebut": "rebut_model", "synthesize": "synthesis_model"}

EventSink = Callable[..., None]


@dataclass(frozen=True)
class Settings:
    """Everything that changes what the model is asked; part of every unit's fingerprint."""

    model: str = defaults.MODEL
    max_claims: int = defaults.MAX_CLAIMS
    concurrency: int = defaults.CONCURRENCY
    reasks: int = defaults.REASKS
    language: str | None = None
    temperature: float | None = None
    response_format: str = defaults.RESPONSE_FORMAT
    extra_body: dict[str, Any] = field(default_factory=dict)
    constrain_choices: bool = False
    extract_model: str | None = None
    rebut_model: str | None = None
    synthesis_model: str | None = None

    def with_stage_models(self, extract: str | None, rebut: str | None, synthesis: str | None) -> Settings:
        """These settings with each stage's own model (None: `model`)."""
        return replace(self, extract_model=extract, rebut_model=rebut, synthesis_model=synthesis)

    def model_for(self, stage: str) -> str:
        """The model `stage` ('extract', 'rebut', 'synthesize') asks: its own, else `model`."""
        return getattr(self, STAGE_MODELS[stage]) or self.model

    def stage_models(self) -> dict[str, str]:
        return {stage: self.model_for(stage) for stage in STAGE_MODELS}

    def fingerprint(self) -> dict[str, Any]:
        """What must match for a stored unit to be reused (concurrency does not change answers).
        A stage model left unset is left out, so runs recorded before stage models resume as they were."""
        unset = {name for name in STAGE_MODELS.values() if getattr(self, name) is None}
        settings = {key: value for key, value in asdict(self).items() if key != "concurrency" and key not in unset}
        return {
            "settings": settings,
            "prompts": {name: prompts.digest(name) for name in PROMPT_NAMES},
            "schemas": {name: schemas.digest(name) for name in SCHEMA_NAMES},
        }

    def stage_fingerprint(self, stage: str) -> dict[str, Any]:
        """What a unit of `stage` is keyed on: the fingerprint with the stage's own model as `model`,
        so a changed --rebut-model recomputes the claims (and, through them, the synthesis) but
        reuses the extraction."""
        whole = self.fingerprint()
        settings = {key: value for key, value in whole["settings"].items() if key not in STAGE_MODELS.values()}
        return {**whole, "settings": {**settings, "model": self.model_for(stage)}}


def digest(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()


def fingerprint_differences(recorded: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Names of what changed between a run's record and now (e.g. 'prompts.rebut_claim')."""
    changed = []
    for section in ("settings", "prompts", "schemas"):
        old, new = recorded.get(section), current[section]
        old = old if isinstance(old, dict) else {}  # a damaged record differs in everything
        changed += [f"{section}.{key}" for key in sorted(old.keys() | new.keys()) if old.get(key) != new.get(key)]
    return changed


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _load_checks_and_renderers() -> None:
    from .brief.html import template  # compiling the template is most of the cost (jinja2 is imported anyway)

    for name in SCHEMA_NAMES:
        schemas.validator(name)
    template()


class BriefRun:
    """One execution of the pipeline over one article, optionally recorded in a run directory."""

    def __init__(
        self,
        article: Article,
        settings: Settings,
        client: ModelClient,
        record: RunRecord,
        *,
        on_event: EventSink | None = None,
        notes: list[str] | None = None,
    ) -> None:
        """`client` comes configured (api.make_client): its attempt log goes to `record`."""
        self.article = article
        self.settings = settings
        self.client = client
        self.record = record
        self.run_dir = record.run_dir
        self.emit = on_event or (lambda *args, **kwargs: None)
        self.extra_notes = list(notes or [])
        self.fingerprint = settings.fingerprint()
        self.nonce = secrets.token_hex(8)
        self._entries: dict[str, dict[str, Any]] = {}

    # -- resume ---------------------------------------------------------------------------

    def adopt(self, manifest: dict[str, Any], *, force: bool) -> list[str]:
        """Take over a recorded run; refuse (unless forced) when its inputs or endpoint differ. Returns warnings."""
        run_id = self.record.id or "run"
        problems = endpoints.check_resume(run_id, manifest, self.client.endpoint, force=force)
        if manifest.get("article", {}).get("sha256") != self.article.sha256:
            problems.append("the article differs from the one recorded")
        changed = fingerprint_differences(manifest.get("fingerprint", {}), self.fingerprint)
        if changed:
            problems.append("these differ from the record: " + ", ".join(changed))
        if problems and not force:
            raise ResumeMismatch(f"cannot resume {run_id}: " + "; ".join(problems) + "; pass --force to resume anyway")
        self.nonce = _text(manifest.get("nonce")) or self.nonce
        self.record.resume(manifest)
        return problems

    async def _unit(
        self, name: str, inputs: Any, schema: str, check: Check, compute: Callable[[], Awaitable[Any]]
    ) -> Any:
        """Unit `name`'s output: the stored one when a resumed run computed it from the same inputs
        and it still passes the schema and `check`; otherwise computed now and saved at once."""
        key = digest(inputs)
        try:
            output = self.record.stored_output(name, key)
        except RunDirError as damaged:
            self.emit("warning", message=f"{damaged}; doing that unit again")
            output = None
        if output is not None and not (schemas.validate(schema, output) or check(output)):
            self.record.reused.append(name)
            self.emit("reused", unit=name)
            return output
        output = await compute()
        self.record.save_unit(name, key, output)
        return output

    # -- the stages -----------------------------------------------------------------------

    async def execute(self) -> brief_mod.Brief:
        """Run (or finish) the brief. A fatal endpoint error or an interrupt still writes what finished;
        a bug still marks the record `failed`, so it does not pass for a run in progress."""
        try:
            return await self._execute()
        except (ModelError, asyncio.CancelledError):
            raise  # recorded with the partial brief
        except Exception:
            with contextlib.suppress(Exception):  # the bug is what to report, not this
                self._write_manifest("failed")
            raise

    async def _execute(self) -> brief_mod.Brief:
        self._write_manifest("running")
        extraction: dict[str, Any] | None = None
        extraction_error: UnitFailed | None = None
        synthesis = brief_mod.synthesis_entry(None, None)
        stopped: BaseException | None = None
        preparing = asyncio.create_task(self._prepare_outputs())
        try:
            try:
                extraction = await self._timed("extract", self._extract())
            except UnitFailed as error:
                extraction_error = error
            if extraction is not None:
                await self._timed("rebut", self._rebut_all(extraction))
                claims = self._claim_entries(extraction, None)
                synthesis = await self._timed("synthesize", self._synthesize(extraction, claims))
        except (ModelError, asyncio.CancelledError) as error:
            stopped = error
        finally:
            await self.client.aclose()
            await self._settle(preparing)
        claims = self._claim_entries(extraction, stopped)
        result = self._finish(extraction, extraction_error, claims, synthesis, stopped)
        if stopped is not None:
            raise stopped
        return result

    async def _prepare_outputs(self) -> None:
        """Load jsonschema and the validators and compile the HTML template (~0.2 s of CPU) on a
        thread once the first request is out. The process would otherwise sit idle during that
        round-trip and pay for them on the critical path: at the first answer and after the last."""
        await self.client.request_sent.wait()
        await asyncio.to_thread(_load_checks_and_renderers)

    async def _settle(self, preparing: asyncio.Task[None]) -> None:
        if not self.client.request_sent.is_set():  # no model call (all reused or cached): nothing to overlap
            preparing.cancel()
        # Let a started warm-up finish before the brief is written: its work is needed there, and any
        # error it met recurs (and is reported) when the brief is written.
        await asyncio.gather(preparing, return_exceptions=True)

    def _claim_entries(self, extraction: dict[str, Any] | None, stopped: BaseException | None) -> list[dict[str, Any]]:
        """Every extracted claim in extraction order; those a stop cut short say so."""
        if extraction is None:
            return []
        kind, why = ("interrupted", "the run was interrupted before this claim finished")
        if isinstance(stopped, ModelError):
            kind, why = "skipped", f"not analysed: the run stopped early ({stopped})"
        return [
            self._entries.get(claim["id"]) or brief_mod.claim_entry(claim, None, UnitFailed(kind, why))
            for claim in extraction["claims"]
        ]

    async def _timed(self, stage: str, work: Any) -> Any:
        started = time.perf_counter()
        try:
            return await work
        finally:
            timings = self.record.timings
            timings[stage] = round(timings.get(stage, 0.0) + time.perf_counter() - started, 4)

    async def _extract(self) -> dict[str, Any]:
        self.emit("stage", stage="extract")
        inputs = {"fingerprint": self.settings.stage_fingerprint("extract"), "article": self.article.sha256}
        check = partial(stages.check_claims, article=self.article, max_claims=self.settings.max_claims)
        base = stages.base_messages(self.article, self.nonce, self.settings.language)
        output = await self._unit(
            "extract",
            inputs,
            "claims",
            check,
            lambda: stages.extract_claims(
                self.client,
                base,
                self.article,
                self.nonce,
                max_claims=self.settings.max_claims,
                reasks=self.settings.reasks,
                model=self.settings.model_for("extract"),
            ),
        )
        # The unit keeps every claim the model gave, so a resumed run writes the same note.
        output, left_out = stages.select_claims(output, self.settings.max_claims)
        self.extra_notes += left_out
        return stages.ground_claims(self.article, output)

    async def _rebut_all(self, extraction: dict[str, Any]) -> None:
        """Every claim concurrently; results land in self._entries as each finishes.

        The client limits how many requests are in flight (--concurrency) per HTTP attempt, so a
        claim that waits to retry leaves its slot to the others.
        """
        claims = extraction["claims"]
        self.emit("stage", stage="rebut", total=len(claims))
        base = stages.base_messages(self.article, self.nonce, self.settings.language)
        fingerprint, model = self.settings.stage_fingerprint("rebut"), self.settings.model_for("rebut")
        done = 0

        async def one(claim: dict[str, Any]) -> None:
            nonlocal done
            inputs = {"fingerprint": fingerprint, "article": self.article.sha256, "claim": claim}
            output, error = None, None
            try:  # the unit takes the claim's id, as in the calls log
                output = await self._unit(
                    claim["id"],
                    inputs,
                    "rebuttal",
                    stages.check_rebuttal,
                    lambda: stages.rebut_claim(
                        self.client, base, claim, self.nonce, reasks=self.settings.reasks, model=model
                    ),
                )
            except UnitFailed as failed:
                error = failed
            done += 1
            rebuttal = stages.number_rebuttals(claim["id"], output) if output else None
            entry = self._entries[claim["id"]] = brief_mod.claim_entry(claim, rebuttal, error)
            self.emit("claim", claim=claim["id"], status=entry["status"], done=done, total=len(claims))

        tasks = [asyncio.create_task(one(claim)) for claim in claims]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        finally:
            for task in tasks:  # a fatal error in one claim, or an interrupt, stops the others
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for task in tasks:
            error = None if task.cancelled() else task.exception()
            if error is not None:
                raise error

    async def _synthesize(self, extraction: dict[str, Any], claims: list[dict[str, Any]]) -> dict[str, Any]:
        if not any(claim["status"] == "ok" for claim in claims):
            return brief_mod.synthesis_entry(None, UnitFailed("skipped", "no claim could be analysed"))
        self.emit("stage", stage="synthesize")
        inputs = {
            "fingerprint": self.settings.stage_fingerprint("synthesize"),
            "article": self.article.sha256,
            "digest": stages.claims_outline(claims),
            "failed": [c["id"] for c in claims if c["status"] != "ok"],
        }
        rebuttal_ids = {r["id"] for c in claims for r in c["rebuttals"]}
        check = partial(stages.check_synthesis, article=self.article, rebuttal_ids=rebuttal_ids)
        base = stages.base_messages(self.article, self.nonce, self.settings.language)
        try:
            output = await self._unit(
                "synthesize",
                inputs,
                "synthesis",
                check,
                lambda: stages.synthesize(
                    self.client,
                    base,
                    self.article,
                    self.nonce,
                    thesis=extraction["thesis"],
                    claims=claims,
                    reasks=self.settings.reasks,
                    model=self.settings.model_for("synthesize"),
                ),
            )
        except UnitFailed as error:
            return brief_mod.synthesis_entry(None, error)
        return brief_mod.synthesis_entry(stages.ground_rhetoric(self.article, output), None)

    # -- the record -----------------------------------------------------------------------

    def _notes(self, claims: list[dict[str, Any]]) -> list[str]:
        notes = list(self.extra_notes)
        if not self.article.date:
            notes.append(
                "The article carries no date, so the model cannot tell whether it was written before "
                "or after what the model knows; check the date before relying on the analysis."
            )
        if self.article.truncated:
            notes.append(
                f"The article was cut to {len(self.article.text):,} characters (--truncate); "
                "claims in the rest were not analysed."
            )
        clamped = self.record.clamped_calls()
        if clamped:
            notes.append(
                f"The endpoint reported token counts that were not non-negative whole numbers in "
                f"{clamped} call(s); they were counted as such (rounded, negatives as 0), so the usage "
                "and cost figures are approximate."
            )
        priced_at = tier_note(self.client.price_tier)
        if priced_at:
            notes.append(priced_at)
        failed = [claim["id"] for claim in claims if claim["status"] != "ok"]
        if failed:
            notes.append(f"Not analysed: {', '.join(failed)} (see each claim's status).")
        return notes

    def _finish(
        self,
        extraction: dict[str, Any] | None,
        extraction_error: UnitFailed | None,
        claims: list[dict[str, Any]],
        synthesis: dict[str, Any],
        stopped: BaseException | None,
    ) -> brief_mod.Brief:
        usage = self.record.usage()
        cost, cost_status, by_stage = self._cost()
        claims = verify.with_checks(claims, self.article.text)
        notes = self._notes(claims)
        if extraction_error is not None:
            notes.append(f"Claim extraction failed ({extraction_error.kind}): {extraction_error}")
        if isinstance(stopped, ModelError):
            notes.append(f"The run stopped early: {stopped}")
        elif stopped is not None:
            finish = f"'{resume_command(self.run_dir)}'" if self.run_dir else "a new run"
            notes.append(f"The run was interrupted; finish it with {finish}.")
        data = brief_mod.assemble(
            article=self.article.metadata(),
            thesis=extraction["thesis"] if extraction else None,
            extraction_error=extraction_error,
            claims=claims,
            synthesis=synthesis,
            notes=notes,
            run={
                "id": self.record.id,
                "model": self.settings.model,
                "endpoint_host": self.client.endpoint_host,
                "response_format": self.client.response_format,
                "created": self.record.created,
                "finished": utc_now(),
                "language": self.settings.language,
                "usage": usage,
                "cost_usd": cost,
                "cost_status": cost_status,
                "models": self.settings.stage_models(),
                "checks": verify.count(claims),
            },
        )
        result = brief_mod.Brief.from_dict(
            data, run_dir=self.run_dir.path if self.run_dir else None, article_text=self.article.text
        )
        if self.run_dir is not None:
            self.run_dir.write_briefs(
                {"json": result.to_json() + "\n", "md": result.to_markdown(), "html": result.to_html()}
            )
            self._write_manifest(data["status"], brief=data, cost=(cost, cost_status), cost_by_stage=by_stage)
        return result

    def _cost(self) -> tuple[float | None, str, dict[str, Any]]:
        """The estimate over the stages, each priced at its own model's rates, and each stage's part."""
        parts = {}
        for stage, model in self.settings.stage_models().items():
            counts = self.record.usage(stage)
            parts[stage] = (model, Usage.from_counts(counts))
        by_stage = {}
        for stage, (model, tokens) in parts.items():
            usd, status = estimate(model, tokens, self.client.price_tier)
            by_stage[stage] = {"model": model, "usd": usd, "status": status}
        return (*estimate_parts(parts.values(), self.client.price_tier), by_stage)

    def _write_manifest(
        self,
        status: str,
        *,
        brief: dict[str, Any] | None = None,
        cost: tuple[float | None, str] | None = None,
        cost_by_stage: dict[str, Any] | None = None,
    ) -> None:
        client = self.client
        self.record.write_manifest(
            status,
            {
                "article": self.article.metadata(),
                "model": self.settings.model,
                "models": self.settings.stage_models(),
                "endpoint_host": client.endpoint_host,
                **(client.endpoint.record() if client.endpoint else {"endpoint": None, "local": None}),
                "no_cache": client.cache is None,
                "price_tier": client.price_tier,
                "response_format": {"requested": client.requested_format, "used": client.response_format},
                "settings": {**asdict(self.settings), "max_calls": client.max_calls},
                "fingerprint": self.fingerprint,
                "nonce": self.nonce,
            },
            brief=brief,
            cost=cost,
            cost_by_stage=cost_by_stage,
        )
