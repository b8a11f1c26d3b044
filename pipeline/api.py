"""The library entry points: build a model client from settings, run or resume a brief.

`cli.py` is a thin layer over these; editorial tools call `generate_brief` directly.
"""

from __future__ import annotations

import asyncio
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import article as article_mod
from . import defaults
from .brief import Brief
from .endpoints import check_base_url
from .engine import BriefRun, EventSink, Settings
from .errors import ConfigError
from .llm import ModelClient, OpenAIClient, SamplingSettings, watching
from .runs import RunDir, check_runs_dir, find_run

if TYPE_CHECKING:  # pipeline.local is imported only for --local: it costs 40 ms at every start
    from .local import LocalModel


def make_client(*, settings: Settings, base_url: str | None = None, api_key: str | None = None,
                timeout: float = defaults.TIMEOUT, max_retries: int = defaults.MAX_RETRIES,
                max_calls: int | None = None, cache_dir: Path | None = None, use_cache: bool = True,
                local_model: str | None = None) -> OpenAIClient:
    """An OpenAI-compatible client; a ConfigError when neither a key nor a base URL is known, or when
    the base URL, timeout or temperature cannot be used. `local_model` names the GGUF a --local
    llama.cpp at `base_url` serves (the run records it instead of llama.cpp's passing port)."""
    api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
    if base_url is not None:
        check_base_url(base_url)
    check_finite(timeout=timeout, temperature=settings.temperature)
    if not api_key and not base_url:
        raise ConfigError("no model endpoint configured: set OPENAI_API_KEY, or pass --base-url for an "
                          "OpenAI-compatible server (Ollama, vLLM, llama.cpp), or use --local")
    cache = None
    if use_cache:
        from .cache import ResponseCache, default_cache_dir

        cache = ResponseCache(cache_dir or default_cache_dir())
    return OpenAIClient(
        model=settings.model, base_url=base_url, api_key=api_key, timeout=timeout,
        transport_attempts=max_retries + 1,
        response_format=settings.response_format, cache=cache,
        max_calls=max_calls if max_calls is not None else defaults.max_calls(settings.max_claims, settings.reasks),
        sampling=SamplingSettings(temperature=settings.temperature, extra_body=settings.extra_body),
        constrain_choices=settings.constrain_choices, local_model=local_model,
    )


def check_finite(**numbers: float | None) -> None:
    """nan passes every range check (each comparison is false), so refuse it by name."""
    for name, number in numbers.items():
        if number is not None and not math.isfinite(number):
            raise ConfigError(f"{name} must be a finite number, not {number}")


def check_resources() -> None:
    """Read every prompt and schema, so that a broken COUNTERPOINT_PROMPTS_DIR or
    COUNTERPOINT_SCHEMAS_DIR fails before a run directory exists."""
    Settings().fingerprint()


def new_run_dir(article: article_mod.Article, runs_dir: Path) -> RunDir:
    """A fresh run directory holding the article exactly as the run will quote it."""
    check_resources()
    run_dir = RunDir.create(runs_dir, article.title)
    run_dir.write_text("article.txt", article.text)
    if article.html is not None:
        run_dir.write_text("source.html", article.html)
    return run_dir


async def run_brief(article: article_mod.Article, settings: Settings, client: ModelClient, *,
                    runs_dir: Path | None, run_dir: RunDir | None = None, on_event: EventSink | None = None,
                    notes: list[str] | None = None) -> Brief:
    """A new run; with `runs_dir` (or a `run_dir` from `new_run_dir`), everything is recorded there."""
    if run_dir is None and runs_dir is not None:
        run_dir = new_run_dir(article, runs_dir)
    if run_dir is None:
        return await BriefRun(article, settings, client, on_event=on_event, notes=notes).execute()
    with run_dir.lock():
        if on_event:
            on_event("run_dir", path=str(run_dir.path))
        return await BriefRun(article, settings, client, run_dir=run_dir, on_event=on_event, notes=notes).execute()


def local_settings(settings: Settings, model: LocalModel) -> Settings:
    """What a llama.cpp run asks differently: the GGUF's name as model, the schema attached in
    llama.cpp's json_object form (it constrains decoding to it), a repeat penalty, and quotes and ids
    constrained to the values that can pass the checks."""
    from .local import REPEAT_PENALTY

    response_format = "json_object" if settings.response_format == "auto" else settings.response_format
    return replace(settings, model=model.name, response_format=response_format, constrain_choices=True,
                   extra_body={**settings.extra_body, "repeat_penalty": REPEAT_PENALTY})


@contextmanager
def local_endpoint(model: LocalModel, *, log_dir: Path, article_chars: int,
                   n_ctx: int | None = None) -> Iterator[str]:
    """llama.cpp serving `model` for the length of the block (its log in `log_dir`); yields the base URL.

    The server is stopped however the block ends: success, failure, Ctrl-C or SIGTERM. Clients
    made for the URL in the block check schemas against its grammar parser and read its log when a
    connection drops (see llm.ServerWatch).
    """
    from . import local
    from .stages import MAX_TOKENS

    n_ctx = n_ctx or local.context_size(article_chars, max(MAX_TOKENS.values()))
    with (local.LocalServer(model, n_ctx=n_ctx, log_path=log_dir / local.LOG_NAME) as server,
          watching(server.base_url, server)):
        yield server.base_url


def load_recorded_article(run_dir: RunDir) -> article_mod.Article:
    """The article exactly as the run recorded it (its text is the quote-offset reference)."""
    metadata = run_dir.manifest().get("article", {})
    text = run_dir.read_text("article.txt")
    # A damaged field is dropped rather than written into a brief it would make invalid.
    fields = {key: value if isinstance(value := metadata.get(key), str) else None
              for key in ("title", "author", "date", "site", "url", "language")}
    html = run_dir.read_text("source.html") if (run_dir.path / "source.html").is_file() else None
    source = metadata.get("source")
    if not isinstance(source, str):
        source = str(run_dir.path / "article.txt")
    return article_mod.Article(text=text, source=source, truncated=metadata.get("truncated") is True, html=html,
                               **fields)


async def resume_brief(runs_dir: Path, ref: str | RunDir, settings: Settings, client: ModelClient, *,
                       article: article_mod.Article | None = None, force: bool = False,
                       on_event: EventSink | None = None, notes: list[str] | None = None) -> Brief:
    """Finish a recorded run, reusing every unit whose inputs and settings still match.

    The rest of the run goes only to the endpoint it was started on (`client` must talk to it, or
    `force`), and a run recorded with the cache off keeps it off. The run is locked meanwhile.
    """
    run_dir = ref if isinstance(ref, RunDir) else find_run(runs_dir, ref)
    check_runs_dir(run_dir.path)
    with run_dir.lock():
        manifest = run_dir.manifest()
        run_dir.check_resumable()
        if manifest.get("no_cache") is True:
            client.cache = None
        recorded = load_recorded_article(run_dir)
        run = BriefRun(article or recorded, settings, client, run_dir=run_dir, on_event=on_event, notes=notes)
        for warning in run.adopt(manifest, force=force):
            if on_event:
                on_event("warning", message=f"resuming anyway (--force): {warning}")
        if on_event:
            on_event("run_dir", path=str(run_dir.path))
        return await run.execute()


def generate_brief(text: str, *, model: str = defaults.MODEL, base_url: str | None = None,
                   api_key: str | None = None, llm: ModelClient | None = None,
                   runs_dir: str | Path | None = None, title: str | None = None,
                   **options: Any) -> Brief:
    """Write a brief for `text`.

    Pass `llm` (e.g. `pipeline.testing.FakeLLM`) to inject a model, or `base_url` (e.g. a
    `FakeOpenAIServer`'s) to use any OpenAI-compatible endpoint. With `runs_dir`, the run is
    recorded there as the CLI does. Other keyword options are `Settings` fields (max_claims,
    concurrency, reasks, language, temperature, response_format) plus timeout, max_retries,
    max_calls, max_chars, truncate, cache_dir and use_cache.
    """
    article_options = {key: options.pop(key) for key in ("max_chars", "truncate") if key in options}
    client_options = {key: options.pop(key) for key in ("timeout", "max_retries", "max_calls", "cache_dir",
                                                         "use_cache") if key in options}
    settings = Settings(model=model if llm is None else llm.model, **options)
    article = article_mod.from_text(text, "<text>", title=title, **article_options)
    client = llm or make_client(settings=settings, base_url=base_url, api_key=api_key, **client_options)
    return asyncio.run(run_brief(article, settings, client, runs_dir=Path(runs_dir) if runs_dir else None))
