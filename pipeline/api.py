"""The library entry points: build a model client from settings, run or resume a brief.

`cli/` is a thin layer over these; editorial tools call `generate_brief` directly.
"""

from __future__ import annotations

import asyncio
import math
import os
from collections.abc import Callable, Coroutine, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import article as article_mod
from . import defaults, endpoints, library
from .brief import Brief
from .endpoints import check_base_url
from .engine import BriefRun, EventSink, Settings
from .errors import ConfigError
from .fetch import FetchOptions
from .llm import AttemptLog, ModelClient, OpenAIClient, SamplingSettings, watching
from .runs import RunDir, RunRecord, check_runs_dir, find_run

if TYPE_CHECKING:  # pipeline.local is imported only for --local: it costs 40 ms at every start
    from .local import LocalModel


def make_client(
    *,
    settings: Settings,
    base_url: str | None = None,
    api_key: str | None = None,
    timeout: float = defaults.TIMEOUT,
    max_retries: int = defaults.MAX_RETRIES,
    max_calls: int | None = None,
    cache_dir: Path | None = None,
    use_cache: bool = True,
    local_model: str | None = None,
    log: AttemptLog | None = None,
) -> OpenAIClient:
    """An OpenAI-compatible client, configured whole: `settings` (model, format, sampling,
    concurrency), its attempt `log` (a run's `RunRecord.log`), budget and cache. A ConfigError when
    neither a key nor a base URL is known, or when the base URL, timeout or temperature cannot be
    used. `local_model` names the GGUF a --local llama.cpp at `base_url` serves (the run records it
    instead of llama.cpp's passing port)."""
    api_key = check_client(settings, base_url, api_key, timeout)
    cache = None
    if use_cache:
        from .cache import ResponseCache, default_cache_dir

        cache = ResponseCache(cache_dir or default_cache_dir())
    return OpenAIClient(
        model=settings.model,
        base_url=base_url,
        api_key=api_key,
        timeout=timeout,
        transport_attempts=max_retries + 1,
        response_format=settings.response_format,
        cache=cache,
        max_calls=max_calls if max_calls is not None else defaults.max_calls(settings.max_claims, settings.reasks),
        sampling=SamplingSettings(temperature=settings.temperature, extra_body=settings.extra_body),
        constrain_choices=settings.constrain_choices,
        local_model=local_model,
        concurrency=settings.concurrency,
        log=log,
    )


def check_client(settings: Settings, base_url: str | None, api_key: str | None, timeout: float) -> str | None:
    """What `make_client` refuses, checked before anything is created; returns the API key to use."""
    api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
    if base_url is not None:
        check_base_url(base_url)
    check_finite(timeout=timeout, temperature=settings.temperature)
    if not api_key and not base_url:
        raise ConfigError(
            "no model endpoint configured: set OPENAI_API_KEY, or pass --base-url for an "
            "OpenAI-compatible server (Ollama, vLLM, llama.cpp), or use --local"
        )
    return api_key


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


def new_record(client: ModelClient, run_dir: RunDir | None, on_event: EventSink | None) -> RunRecord:
    """The record of a run made with a client from elsewhere: its attempt log goes to the record.
    (`prepared_run` makes the record first and the client with it.)"""
    record = RunRecord(run_dir, on_call=_attempt_events(on_event))
    client.log = record.log
    return record


def _attempt_events(on_event: EventSink | None) -> Callable[[dict[str, Any]], None] | None:
    return (lambda line: on_event("attempt", **line)) if on_event else None


async def run_brief(
    article: article_mod.Article,
    settings: Settings,
    client: ModelClient,
    *,
    runs_dir: Path | None,
    run_dir: RunDir | None = None,
    on_event: EventSink | None = None,
    notes: list[str] | None = None,
) -> Brief:
    """A new run; with `runs_dir` (or a `run_dir` from `new_run_dir`), everything is recorded there."""
    if run_dir is None and runs_dir is not None:
        run_dir = new_run_dir(article, runs_dir)
    return await _run(article, settings, client, new_record(client, run_dir, on_event), on_event, notes)


async def _run(
    article: article_mod.Article,
    settings: Settings,
    client: ModelClient,
    record: RunRecord,
    on_event: EventSink | None,
    notes: list[str] | None,
) -> Brief:
    run = BriefRun(article, settings, client, record, on_event=on_event, notes=notes)
    if record.run_dir is None:
        return await run.execute()
    with record.run_dir.lock():
        if on_event:
            on_event("run_dir", path=str(record.run_dir.path))
        return await run.execute()


def local_settings(settings: Settings, model: LocalModel) -> Settings:
    """What a llama.cpp run asks differently: the GGUF's name as model, the schema attached in
    llama.cpp's json_object form (it constrains decoding to it), a repeat penalty, and quotes and ids
    constrained to the values that can pass the checks."""
    from .local import REPEAT_PENALTY

    response_format = "json_object" if settings.response_format == "auto" else settings.response_format
    return replace(
        settings,
        model=model.name,
        # llama.cpp serves one model: every stage asks it (a stage model from the environment is ignored).
        extract_model=None,
        rebut_model=None,
        synthesis_model=None,
        response_format=response_format,
        constrain_choices=True,
        extra_body={**settings.extra_body, "repeat_penalty": REPEAT_PENALTY},
    )


@contextmanager
def local_endpoint(model: LocalModel, *, log_dir: Path, article_chars: int, n_ctx: int | None = None) -> Iterator[str]:
    """llama.cpp serving `model` for the length of the block (its log in `log_dir`); yields the base URL.

    The server is stopped however the block ends: success, failure, Ctrl-C or SIGTERM. Clients
    made for the URL in the block check schemas against its grammar parser and read its log when a
    connection drops (see llm.ServerWatch).
    """
    from . import local
    from .stages import MAX_TOKENS

    n_ctx = n_ctx or local.context_size(article_chars, max(MAX_TOKENS.values()))
    with (
        local.LocalServer(model, n_ctx=n_ctx, log_path=log_dir / local.LOG_NAME) as server,
        watching(server.base_url, server),
    ):
        yield server.base_url


@dataclass(frozen=True)
class ClientOptions:
    """How `prepared_run` reaches the model: `make_client`'s arguments beyond the settings."""

    base_url: str | None = None
    timeout: float | None = None  # None: defaults.TIMEOUT, or defaults.LOCAL_TIMEOUT with --local
    max_retries: int = defaults.MAX_RETRIES
    max_calls: int | None = None
    cache_dir: Path | None = None
    use_cache: bool = True


@dataclass(frozen=True)
class LocalOptions:
    """--local: llama.cpp serving the demo model, or `model_file`."""

    model_file: Path | None = None
    n_ctx: int | None = None
    one_at_a_time: bool = True  # llama.cpp answers one request at a time: no concurrency unless asked for


@dataclass(frozen=True)
class LocalBackend:
    """What a --local run uses: the model, the settings and per-call timeout it needs, and notes for the brief."""

    model: LocalModel
    settings: Settings
    timeout: float
    notes: list[str]


def local_backend(settings: Settings, options: LocalOptions, timeout: float | None) -> LocalBackend:
    """The local model (a ConfigError when it or the runtime is missing) and how a run talks to it:
    CPU generation is slow, so a queued call gets the long timeout unless `timeout` is given."""
    from . import local

    model = local.resolve_model(options.model_file)
    settings = local_settings(settings, model)
    if options.one_at_a_time:
        settings = replace(settings, concurrency=defaults.LOCAL_CONCURRENCY)
    notes = [local.DEMO_WARNING] if model.is_demo else []
    return LocalBackend(model, settings, defaults.LOCAL_TIMEOUT if timeout is None else timeout, notes)


def recorded_endpoint(
    manifest: dict[str, Any], base_url: str | None, use_local: bool, model_file: Path | None
) -> tuple[str | None, Path | None]:
    """On resume, the endpoint the run was started on, unless one is given: (base URL, model file).

    Never the public default: a run recorded without an endpoint is refused later unless one is given.
    """
    before = endpoints.recorded(manifest)
    if before is None or base_url is not None or model_file is not None:
        return base_url, model_file
    if before.local_model:
        return None, Path(before.local_model)  # a model file implies --local
    if use_local:  # --local against a hosted run: the mismatch is refused when the run adopts the record
        return None, model_file
    return before.url, model_file


@contextmanager
def prepared_run(
    article: article_mod.Article | None,
    settings: Settings,
    options: ClientOptions,
    *,
    runs_dir: Path,
    resume: RunDir | None = None,
    local: LocalOptions | None = None,
    force: bool = False,
    on_event: EventSink | None = None,
) -> Iterator[tuple[RunDir, Coroutine[Any, Any, Brief]]]:
    """Everything `counterpoint run` sets up before the first model call: the run directory (new, or
    `resume`, locked), llama.cpp for `local`, the record and a client configured to log to it.

    Yields the run directory and the run to await inside the block; the block's end stops
    llama.cpp and releases the run. Nothing is created when the configuration is refused.
    """
    emit = on_event or (lambda *args, **kwargs: None)
    with ExitStack() as stack:
        if resume is not None:
            stack.enter_context(resume.lock())  # before llama.cpp starts: a second resume starts nothing
        timeout = defaults.TIMEOUT if options.timeout is None else options.timeout
        backend = local_backend(settings, local, options.timeout) if local is not None else None
        if backend is not None:
            settings, timeout = backend.settings, backend.timeout
            for note in backend.notes:
                emit("warning", message=note)
        else:
            check_client(settings, options.base_url, None, timeout)
        run_dir = resume or new_run_dir(_given(article), runs_dir)
        stack.enter_context(run_dir.lock())
        base_url = options.base_url
        if backend is not None:
            base_url = stack.enter_context(_serve(backend.model, run_dir, article, local, emit))
        record = RunRecord(run_dir, on_call=_attempt_events(on_event))
        use_cache = options.use_cache and not (resume is not None and recorded_without_cache(resume))
        client = make_client(
            settings=settings,
            base_url=base_url,
            timeout=timeout,
            max_retries=options.max_retries,
            max_calls=options.max_calls,
            cache_dir=options.cache_dir,
            use_cache=use_cache,
            local_model=str(backend.model.path) if backend else None,
            log=record.log,
        )
        notes = backend.notes if backend else []
        if resume is not None:
            yield (
                run_dir,
                _resume(record, settings, client, article=article, force=force, on_event=on_event, notes=notes),
            )
        else:
            yield run_dir, _run(_given(article), settings, client, record, on_event, notes)


def _given(article: article_mod.Article | None) -> article_mod.Article:
    assert article is not None, "a new run has an article; only a resumed one may not"
    return article


@contextmanager
def _serve(
    model: LocalModel, run_dir: RunDir, article: article_mod.Article | None, local: LocalOptions | None, emit: EventSink
) -> Iterator[str]:
    article_chars = len(article.text if article else run_dir.read_text("article.txt"))
    emit("stage", stage=f"local: starting llama.cpp on {model.path.name}")
    with local_endpoint(
        model, log_dir=run_dir.path, article_chars=article_chars, n_ctx=local.n_ctx if local else None
    ) as base_url:
        yield base_url


def load_recorded_article(run_dir: RunDir) -> article_mod.Article:
    """The article exactly as the run recorded it (its text is the quote-offset reference)."""
    metadata = run_dir.manifest().get("article", {})
    text = run_dir.read_text("article.txt")
    # A damaged field is dropped rather than written into a brief it would make invalid.
    fields = {
        key: value if isinstance(value := metadata.get(key), str) else None
        for key in ("title", "author", "date", "date_text", "site", "url", "language")
    }
    html = run_dir.read_text("source.html") if (run_dir.path / "source.html").is_file() else None
    source = metadata.get("source")
    if not isinstance(source, str):
        source = str(run_dir.path / "article.txt")
    return article_mod.Article(
        text=text, source=source, truncated=metadata.get("truncated") is True, html=html, **fields
    )


def recorded_without_cache(run_dir: RunDir) -> bool:
    """Whether the run was started with the cache off (--no-cache), which its resume keeps."""
    return bool(run_dir.manifest().get("no_cache"))


async def resume_brief(
    runs_dir: Path,
    ref: str | RunDir,
    settings: Settings,
    client: ModelClient,
    *,
    article: article_mod.Article | None = None,
    force: bool = False,
    on_event: EventSink | None = None,
    notes: list[str] | None = None,
) -> Brief:
    """Finish a recorded run, reusing every unit whose inputs and settings still match.

    The rest of the run goes only to the endpoint it was started on (`client` must talk to it, or
    `force`), and a run recorded with the cache off keeps it off. The run is locked meanwhile.
    """
    run_dir = ref if isinstance(ref, RunDir) else find_run(runs_dir, ref)
    with run_dir.lock():
        if recorded_without_cache(run_dir):
            client.cache = None
        record = new_record(client, run_dir, on_event)
        return await _resume(record, settings, client, article=article, force=force, on_event=on_event, notes=notes)


async def _resume(
    record: RunRecord,
    settings: Settings,
    client: ModelClient,
    *,
    article: article_mod.Article | None,
    force: bool,
    on_event: EventSink | None,
    notes: list[str] | None,
) -> Brief:
    run_dir = record.run_dir
    assert run_dir is not None, "a resumed run has a directory"
    check_runs_dir(run_dir.path)
    # Both callers (resume_brief, prepared_run) hold the run's lock around this.
    manifest = run_dir.manifest()
    run_dir.check_resumable()
    recorded = load_recorded_article(run_dir)
    run = BriefRun(article or recorded, settings, client, record, on_event=on_event, notes=notes)
    for warning in run.adopt(manifest, force=force):
        if on_event:
            on_event("warning", message=f"resuming anyway (--force): {warning}")
    if on_event:
        on_event("run_dir", path=str(run_dir.path))
    return await run.execute()


async def agenerate_brief(
    text: str | None = None,
    *,
    html: str | bytes | None = None,
    path: str | Path | None = None,
    url: str | None = None,
    title: str | None = None,
    author: str | None = None,
    date: str | None = None,
    model: str = defaults.MODEL,
    extract_model: str | None = None,
    rebut_model: str | None = None,
    synthesis_model: str | None = None,
    base_url: str | None = None,
    api_key: str | None = None,
    max_claims: int = defaults.MAX_CLAIMS,
    concurrency: int = defaults.CONCURRENCY,
    reasks: int = defaults.REASKS,
    language: str | None = None,
    temperature: float | None = None,
    response_format: str = defaults.RESPONSE_FORMAT,
    timeout: float = defaults.TIMEOUT,
    max_retries: int = defaults.MAX_RETRIES,
    max_calls: int | None = None,
    max_chars: int = defaults.MAX_CHARS,
    truncate: bool = False,
    encoding: str | None = None,
    fetch_timeout: float = defaults.FETCH_TIMEOUT,
    max_bytes: int = defaults.MAX_BYTES,
    allow_private_hosts: bool = False,
    llm: ModelClient | None = None,
    runs_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    on_event: EventSink | None = None,
) -> Brief:
    """Write a brief; the awaitable form of `generate_brief` (same arguments, see there). Briefs
    awaited together (`asyncio.gather`) each have their own client, record and run directory."""
    library.check_bounds(max_claims=max_claims, concurrency=concurrency, reasks=reasks, temperature=temperature)
    library.check_bounds(timeout=timeout, max_retries=max_retries, max_calls=max_calls, max_chars=max_chars)
    library.check_bounds(fetch_timeout=fetch_timeout, max_bytes=max_bytes)
    library.check_response_format(response_format)
    settings = Settings(
        model=model if llm is None else llm.model,
        max_claims=max_claims,
        concurrency=concurrency,
        reasks=reasks,
        language=language,
        temperature=temperature,
        response_format=response_format,
    ).with_stage_models(extract_model, rebut_model, synthesis_model)
    # The endpoint is checked before the article is read: a URL is fetched only for a run that can go.
    client = llm or _endpoint_client(settings, base_url, api_key, timeout, max_retries, max_calls, cache_dir)
    fetch = FetchOptions(timeout=fetch_timeout, max_bytes=max_bytes, allow_private_hosts=allow_private_hosts)
    metadata = {"title": title, "author": author, "date": date}
    reading = partial(library.load_article, text=text, html=html, path=path, url=url, metadata=metadata, fetch=fetch)
    with _only_here(client):  # before the article is read: of two briefs gathered on one client, one is refused
        article = await asyncio.to_thread(reading, max_chars=max_chars, truncate=truncate, encoding=encoding)
        return await run_brief(
            article, settings, client, runs_dir=Path(runs_dir) if runs_dir else None, on_event=on_event
        )


def _endpoint_client(
    settings: Settings,
    base_url: str | None,
    api_key: str | None,
    timeout: float,
    max_retries: int,
    max_calls: int | None,
    cache_dir: str | Path | None,
) -> OpenAIClient:
    """A library call's client: `base_url`, else $OPENAI_BASE_URL (as the CLI and the openai SDK
    read it), and a response cache only in a `cache_dir` given."""
    return make_client(
        settings=settings,
        base_url=base_url if base_url is not None else os.environ.get("OPENAI_BASE_URL") or None,
        api_key=api_key,
        timeout=timeout,
        max_retries=max_retries,
        max_calls=max_calls,
        cache_dir=Path(cache_dir) if cache_dir is not None else None,
        use_cache=cache_dir is not None,
    )


@contextmanager
def _only_here(client: ModelClient) -> Iterator[None]:
    """A client logs to one run's record at a time: an injected one shared by briefs running
    together would mix their calls logs."""
    if client.running:
        raise ConfigError("this llm is already writing another brief; give each brief run at once its own client")
    client.running = True
    try:
        yield
    finally:
        client.running = False


generate_brief = library.blocking(agenerate_brief)
generate_brief.__doc__ = """Write a brief for one article and return it as a typed `Brief`.

The article is exactly one of `text`, `html` (a page: the article is extracted as the CLI does),
`path` (a text, Markdown or HTML file) or `url` (fetched). `title`, `author` and `date` (ISO
YYYY-MM-DD) replace what detection finds. The model is `llm` (an injected client such as
`pipeline.testing.FakeLLM`) or an OpenAI-compatible endpoint: `base_url` (default
$OPENAI_BASE_URL, else OpenAI's), `api_key` (default $OPENAI_API_KEY) and `model`;
`extract_model`, `rebut_model` and `synthesis_model` give a stage its own model (default `model`).
The other settings are `counterpoint run`'s options, with the same defaults and bounds.

Nothing is written unless asked: the run is recorded in `runs_dir` only when it is given, and
replies are cached in `cache_dir` only when it is given. `on_event(kind, **fields)` receives the
progress events. A unit that fails does not raise: it shows in `brief.status` and
`brief.failures`. Bad arguments raise `ConfigError` or `InputError` before anything is sent.

Called inside a running event loop (a notebook, an async handler), it runs on a worker thread
and blocks that loop until the brief is done; async code should `await agenerate_brief(...)`.
"""
