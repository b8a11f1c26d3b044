"""The brief as typed, frozen objects: what `generate_brief` returns and `Brief.load` reads back.

Every object is built from the brief.json dict and the `Brief` keeps that dict, so `to_dict()`
is exactly what was written (fields added to brief.json later survive a load), and the renderers
keep working on the dict they know.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .markdown import render_markdown


@dataclass(frozen=True)
class Check:
    """One verification step for a rebuttal or a missing-context item (`kind`, e.g. a source to look at)."""

    kind: str
    text: str


@dataclass(frozen=True)
class Failure:
    """Why a unit did not finish: `kind` is one of errors.FAILURE_KINDS; `unit` is extract, C1… or synthesize."""

    kind: str
    message: str
    unit: str


@dataclass(frozen=True)
class Rebuttal:
    id: str
    type: str
    argument: str
    strength: int
    what_to_check: tuple[str, ...]
    checks: tuple[Check, ...] = ()


@dataclass(frozen=True)
class MissingContext:
    point: str
    why_it_matters: str
    checks: tuple[Check, ...] = ()


@dataclass(frozen=True)
class Claim:
    id: str
    text: str
    quote: str
    start: int
    end: int
    type: str
    centrality: int
    check_worthy: bool
    status: str
    error: Failure | None
    steelman: str | None
    rebuttals: tuple[Rebuttal, ...]
    missing_context: tuple[MissingContext, ...]


@dataclass(frozen=True)
class RhetoricalDevice:
    """A rhetorical move the synthesis found, at `start`-`end` of the article text."""

    quote: str
    start: int
    end: int
    device: str
    note: str


@dataclass(frozen=True)
class ArticleInfo:
    title: str | None
    author: str | None
    date: str | None  # ISO YYYY-MM-DD
    site: str | None
    url: str | None
    source: str
    language: str | None = None
    word_count: int = 0
    char_count: int = 0
    truncated: bool = False
    sha256: str = ""


@dataclass(frozen=True)
class RunUsage:
    calls: int
    cache_hits: int
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int


@dataclass(frozen=True)
class Brief:
    """A finished brief. `cost` is the estimated US dollars, None when the model is unpriced.

    `article_text` is the text the quote offsets refer to (the HTML page highlights them in it).
    """

    status: str
    article: ArticleInfo
    thesis: str | None
    counter_thesis: str | None
    claims: tuple[Claim, ...]
    strongest_rebuttals: tuple[Rebuttal, ...]
    rhetoric: tuple[RhetoricalDevice, ...]
    open_questions: tuple[str, ...]
    caveats: tuple[str, ...]
    notes: tuple[str, ...]
    failures: tuple[Failure, ...]
    run_dir: Path | None
    usage: RunUsage
    cost: float | None
    article_text: str | None = field(default=None, repr=False, compare=False)
    _data: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, run_dir: Path | None = None, article_text: str | None = None) -> Brief:
        """The brief in a brief.json dict (checked against the schema by whoever wrote or read it)."""
        claims = tuple(_claim(entry) for entry in data["claims"])
        synthesis = data["synthesis"]
        by_id = {rebuttal.id: rebuttal for claim in claims for rebuttal in claim.rebuttals}
        known = {key: data["article"][key] for key in ("title", "author", "date", "site", "url", "source")}
        extras = {key: data["article"][key] for key in ("language", "word_count", "char_count", "truncated", "sha256")}
        return cls(
            status=data["status"],
            article=ArticleInfo(**known, **extras),
            thesis=data["thesis"],
            counter_thesis=synthesis["counter_thesis"],
            claims=claims,
            strongest_rebuttals=tuple(by_id[i] for i in synthesis["strongest_rebuttals"] if i in by_id),
            rhetoric=tuple(RhetoricalDevice(**item) for item in synthesis["rhetoric"]),
            open_questions=tuple(synthesis["open_questions"]),
            caveats=tuple(synthesis["caveats"]),
            notes=tuple(data["notes"]),
            failures=_failures(data, claims),
            run_dir=run_dir,
            usage=RunUsage(**data["run"]["usage"]),
            cost=data["run"]["cost_usd"],
            article_text=article_text,
            _data=copy.deepcopy(data),
        )

    @classmethod
    def load(cls, run_dir: str | Path) -> Brief:
        """The brief of a finished run directory; a missing or damaged one is a one-line RunDirError."""
        from ..errors import RunDirError
        from ..runs import MANIFEST, RunDir
        from .check import check_brief

        run = RunDir(Path(run_dir).expanduser())
        if not run.is_run():
            raise RunDirError(f"{run.path} is not a counterpoint run (it has no {MANIFEST}); give a run directory")
        data = run.read_brief()
        article_text = run.article_text()
        problems = check_brief(data, article_text)
        if problems:
            where = run.brief_path
            raise RunDirError(f"{where} is damaged ({problems[0]}); see 'counterpoint validate {run.path}'")
        return cls.from_dict(data, run_dir=run.path, article_text=article_text)

    @property
    def rebuttals(self) -> tuple[Rebuttal, ...]:
        """Every claim's rebuttals, in claim order."""
        return tuple(rebuttal for claim in self.claims for rebuttal in claim.rebuttals)

    def to_dict(self) -> dict[str, Any]:
        """Exactly the brief.json content (a copy: changing it changes nothing here)."""
        return copy.deepcopy(self._source())

    def to_json(self) -> str:
        return json.dumps(self._source(), indent=2, ensure_ascii=False)

    def to_markdown(self) -> str:
        return render_markdown(self._source())

    def to_html(self) -> str:
        """One self-contained page: the article with its quotes highlighted, the cards, the synthesis."""
        # Imported here so that importing pipeline.brief (validate, the progress lines) does not load
        # jinja2. A run that calls the model has usually loaded it already: it compiles the template
        # while the first request is out (engine).
        from .html import render_html

        if self.article_text is None:
            raise ValueError("this Brief has no article_text; the HTML page highlights quotes in it")
        return render_html(self._source(), self.article_text)

    def _source(self) -> dict[str, Any]:
        if not self._data:
            raise ValueError("this Brief was built by hand; make one with Brief.from_dict or Brief.load to render it")
        return self._data


def _checks(item: dict[str, Any]) -> tuple[Check, ...]:
    # `checks` arrived in brief.json after its first version: older briefs have none.
    return tuple(Check(kind=check["kind"], text=check["text"]) for check in item.get("checks", []))


def _claim(entry: dict[str, Any]) -> Claim:
    error = entry["error"]
    rebuttals = tuple(
        Rebuttal(
            id=item["id"],
            type=item["type"],
            argument=item["argument"],
            strength=item["strength"],
            what_to_check=tuple(item["what_to_check"]),
            checks=_checks(item),
        )
        for item in entry["rebuttals"]
    )
    missing = tuple(
        MissingContext(point=item["point"], why_it_matters=item["why_it_matters"], checks=_checks(item))
        for item in entry["missing_context"]
    )
    return Claim(
        **{key: entry[key] for key in ("id", "text", "quote", "start", "end", "type", "centrality", "check_worthy")},
        status=entry["status"],
        error=Failure(error["kind"], error["message"], entry["id"]) if error else None,
        steelman=entry["steelman"],
        rebuttals=rebuttals,
        missing_context=missing,
    )


def _failures(data: dict[str, Any], claims: tuple[Claim, ...]) -> tuple[Failure, ...]:
    """Every unit that did not finish, in run order: extraction, each claim, the synthesis."""
    failures = []
    extraction = data.get("extraction_error")  # briefs written before it have none
    if extraction is not None:
        failures.append(Failure(extraction["kind"], extraction["message"], "extract"))
    failures += [claim.error for claim in claims if claim.error is not None]
    synthesis_error = data["synthesis"]["error"]
    if synthesis_error is not None:
        failures.append(Failure(synthesis_error["kind"], synthesis_error["message"], "synthesize"))
    return tuple(failures)
