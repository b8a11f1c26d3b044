"""`counterpoint run`: its options, the article and the run to resume, and reporting the outcome."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from .. import defaults
from .common import (
    EXIT_BY_STATUS,
    EXIT_FAILED,
    BaseURL,
    FiniteFloatRange,
    ISODate,
    defaulted,
    echo,
    fail,
    friendly_errors,
    max_retries_option,
    model_option,
    reasks_option,
    response_format_option,
    runs_dir_option,
    timeout_option,
)

if TYPE_CHECKING:
    from ..article import Article
    from ..runs import RunDir


@dataclass(frozen=True)
class RunOptions:
    """`counterpoint run`'s options as Click parsed them (one typed object, not 28 parameters)."""

    article: str | None
    model: str
    extract_model: str | None
    rebut_model: str | None
    synthesis_model: str | None
    base_url: str | None
    runs_dir: Path
    max_claims: int
    concurrency: int
    reasks: int
    timeout: float
    max_retries: int
    max_calls: int | None
    response_format: str
    language: str | None
    temperature: float | None
    max_chars: int
    truncate: bool
    encoding: str | None
    cache_dir: Path | None
    no_cache: bool
    resume_ref: str | None
    force: bool
    as_json: bool
    quiet: bool
    use_local: bool
    model_file: Path | None
    n_ctx: int | None
    fetch_timeout: float
    max_bytes: int
    allow_private_hosts: bool
    title: str | None
    author: str | None
    date: str | None


@click.command()
@click.argument("article", required=False)
@model_option()
@click.option(
    "--extract-model",
    envvar="COUNTERPOINT_EXTRACT_MODEL",
    show_envvar=True,
    help="Model for claim extraction. [default: --model]",
)
@click.option(
    "--rebut-model",
    envvar="COUNTERPOINT_REBUT_MODEL",
    show_envvar=True,
    help="Model for the per-claim rebuttals. [default: --model]",
)
@click.option(
    "--synthesis-model",
    envvar="COUNTERPOINT_SYNTHESIS_MODEL",
    show_envvar=True,
    help="Model for the synthesis. [default: --model]",
)
@click.option(
    "--base-url",
    envvar="OPENAI_BASE_URL",
    show_envvar=True,
    type=BaseURL(),
    help="OpenAI-compatible endpoint. [default: OpenAI's; on --resume, the run's]",
)
@runs_dir_option
@click.option(
    "--max-claims",
    default=defaults.MAX_CLAIMS,
    show_default=True,
    type=click.IntRange(*defaults.INT_BOUNDS["max_claims"]),
    help="Claims to extract.",
)
@click.option(
    "--concurrency",
    envvar="COUNTERPOINT_CONCURRENCY",
    show_envvar=True,
    default=defaults.CONCURRENCY,
    show_default=True,
    type=click.IntRange(*defaults.INT_BOUNDS["concurrency"]),
    help="Per-claim calls in flight at once.",
)
@reasks_option
@timeout_option
@max_retries_option
@click.option(
    "--max-calls",
    type=click.IntRange(*defaults.INT_BOUNDS["max_calls"]),
    help="Cap on model calls for the run. [default: enough for the brief plus retries]",
)
@response_format_option
@click.option("--language", help="Language of the brief. [default: the article's]")
@click.option(
    "--temperature",
    type=FiniteFloatRange(*defaults.FLOAT_BOUNDS["temperature"]),
    help="Sampling temperature. [default: the server's]",
)
@click.option(
    "--max-chars",
    default=defaults.MAX_CHARS,
    show_default=True,
    type=click.IntRange(*defaults.INT_BOUNDS["max_chars"]),
    help="Refuse articles longer than this (see --truncate).",
)
@click.option("--truncate", is_flag=True, help="Cut an over-long article at --max-chars instead of refusing it.")
@click.option("--encoding", help="Decode the file with this encoding. [default: detect]")
@click.option("--title", help="The article's title, in place of the one detected.")
@click.option("--author", help="The article's author, in place of the one detected.")
@click.option("--date", type=ISODate(), help="The article's date (YYYY-MM-DD), in place of the one detected.")
@click.option(
    "--fetch-timeout",
    default=defaults.FETCH_TIMEOUT,
    show_default=True,
    type=FiniteFloatRange(*defaults.FLOAT_BOUNDS["fetch_timeout"]),
    help="For a URL: seconds for the whole download (connecting, each read, all redirects).",
)
@click.option(
    "--max-bytes",
    default=defaults.MAX_BYTES,
    show_default=True,
    type=click.IntRange(*defaults.INT_BOUNDS["max_bytes"]),
    help="For a URL: refuse pages larger than this.",
)
@click.option(
    "--allow-private-hosts",
    is_flag=True,
    help="For a URL: allow hosts on loopback, link-local or private addresses (off, so a URL cannot "
    "probe your network).",
)
@click.option(
    "--cache-dir",
    envvar="COUNTERPOINT_CACHE_DIR",
    show_envvar=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Response cache. [default: the user cache dir]",
)
@click.option("--no-cache", is_flag=True, help="Neither read nor write the response cache (kept on --resume).")
@click.option("--resume", "resume_ref", metavar="RUN", help="Continue a run (id, prefix, 'latest' or directory).")
@click.option(
    "--force", is_flag=True, help="With --resume: resume even if prompts, schemas, settings or the endpoint changed."
)
@click.option("--json", "as_json", is_flag=True, help="Print the brief JSON on stdout instead of the path.")
@click.option("--quiet", "-q", is_flag=True, help="No progress or summary on stderr.")
@click.option(
    "--local",
    "use_local",
    is_flag=True,
    help="Run offline: start llama.cpp on the bundled demo model (or --model-file). Needs the 'local' extra.",
)
@click.option(
    "--model-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="With --local (implied): a GGUF model file to serve instead of the demo model.",
)
@click.option(
    "--n-ctx",
    type=click.IntRange(min=512),
    help="With --local: the model's context size in tokens. [default: fits the article and prompts]",
)
@friendly_errors
def run(**given: Any) -> None:
    """Write a brief for ARTICLE (a text, Markdown or HTML file, - for stdin, or an http(s) URL).

    The last line on stdout is the run directory (or, with --json, the brief).
    """
    from .. import api
    from ..engine import Settings
    from ..progress import Progress

    opts = RunOptions(**given)
    if opts.article is None and opts.resume_ref is None:
        raise click.UsageError("give an ARTICLE file, URL or - for stdin, or --resume RUN")
    if opts.force and opts.resume_ref is None:
        raise click.UsageError("--force only goes with --resume")
    if opts.article is None and (opts.title or opts.author or opts.date):
        raise click.UsageError("--title, --author and --date describe an ARTICLE; give its file, URL or -")
    started = time.perf_counter()
    progress = Progress(quiet=opts.quiet)
    api.check_resources()
    loaded, run_dir, options, base_url, model_file = article_and_record(opts)
    local = None
    if opts.use_local or model_file is not None:
        check_local_options()
        local = api.LocalOptions(model_file=model_file, n_ctx=opts.n_ctx, one_at_a_time=defaulted("concurrency"))
    client = api.ClientOptions(
        base_url=base_url,
        timeout=None if defaulted("timeout") else opts.timeout,
        max_retries=opts.max_retries,
        max_calls=opts.max_calls,
        cache_dir=opts.cache_dir,
        use_cache=not opts.no_cache,
    )
    with api.prepared_run(
        loaded,
        Settings(concurrency=opts.concurrency, **options),
        client,
        runs_dir=opts.runs_dir,
        resume=run_dir,
        local=local,
        force=opts.force,
        on_event=progress,
    ) as (run_dir, work):
        brief = await_run(work, run_dir, progress, started, opts.as_json)
    report_run(brief, progress, started, opts.as_json)  # once llama.cpp has stopped and the run is released


def article_and_record(
    opts: RunOptions,
) -> tuple[Article | None, RunDir | None, dict[str, Any], str | None, Path | None]:
    """The article (unless resuming without one), the run to resume, and the settings, base URL and
    model file to use: options left at their defaults take the recorded run's values."""
    from .. import api
    from ..article import with_metadata
    from ..fetch import FetchOptions
    from ..runs import find_run
    from ..sources import load

    fetch = FetchOptions(
        timeout=opts.fetch_timeout, max_bytes=opts.max_bytes, allow_private_hosts=opts.allow_private_hosts
    )
    loaded = (
        with_metadata(
            load(opts.article, max_chars=opts.max_chars, truncate=opts.truncate, encoding=opts.encoding, fetch=fetch),
            title=opts.title,
            author=opts.author,
            date=opts.date,
        )
        if opts.article is not None
        else None
    )
    options: dict[str, Any] = {
        "model": opts.model,
        "extract_model": opts.extract_model,
        "rebut_model": opts.rebut_model,
        "synthesis_model": opts.synthesis_model,
        "max_claims": opts.max_claims,
        "reasks": opts.reasks,
        "language": opts.language,
        "temperature": opts.temperature,
        "response_format": opts.response_format,
    }
    base_url, model_file = opts.base_url, opts.model_file
    run_dir = find_run(opts.runs_dir, opts.resume_ref) if opts.resume_ref is not None else None
    if run_dir is not None:
        manifest = run_dir.manifest()
        options.update(recorded_defaults(run_dir, manifest, options))
        base_url, model_file = api.recorded_endpoint(manifest, base_url, opts.use_local, model_file)
    return loaded, run_dir, options, base_url, model_file


def report_run(brief: Any, progress: Any, started: float, as_json: bool) -> NoReturn:
    """The summary on stderr, the run directory (or the brief) as stdout's last line, the exit code."""
    progress.summary(brief.to_dict(), str(brief.run_dir) if brief.run_dir else None, time.perf_counter() - started)
    echo(brief.to_json() if as_json else str(brief.run_dir), as_json=as_json)
    if brief.status == "failed":
        from ..runs import RunDir, resume_command

        reason = brief.notes[-1].rstrip(".")
        retry = f"retry with '{resume_command(RunDir(brief.run_dir))}'" if brief.run_dir else "run it again"
        fail(f"{reason}. The record is in {brief.run_dir}; {retry}")
    sys.exit(EXIT_BY_STATUS[brief.status])


def await_run(work: Any, run_dir: RunDir, progress: Any, started: float, as_json: bool) -> Any:
    """Run the brief; an interrupt or a run-stopping model error ends like a run, with the way to resume it."""
    import asyncio

    from ..errors import AuthError, ModelError
    from ..runs import resume_command

    try:
        return asyncio.run(stop_on_sigterm(work))
    except (KeyboardInterrupt, asyncio.CancelledError):  # the engine has already written what finished
        report_stopped(
            progress,
            run_dir.path,
            started,
            as_json,
            130,
            f"interrupted; what finished is saved in {run_dir.path}; continue with '{resume_command(run_dir)}'",
        )
    except ModelError as exc:
        # A new key resumes as is; a corrected --model or --base-url differs from the record.
        forced = "" if isinstance(exc, AuthError) else " --force"
        report_stopped(
            progress,
            run_dir.path,
            started,
            as_json,
            EXIT_FAILED,
            f"{exc}. The record is in {run_dir.path}; once that is fixed, continue with "
            f"'{resume_command(run_dir)}{forced}'",
        )


def report_stopped(progress: Any, path: Path, started: float, as_json: bool, code: int, message: str) -> NoReturn:
    """A run stopped early (interrupt, refused credentials) still ends like a run: the summary of what
    finished, the run directory (or the brief) as stdout's last line, then the one-line error."""
    from ..runs import RunDir

    try:
        text = RunDir(path).brief_path.read_text(encoding="utf-8")
        brief = json.loads(text)
    except (OSError, ValueError):  # stopped before the brief was written
        text, brief = "", None
    if isinstance(brief, dict):
        progress.summary(brief, str(path), time.perf_counter() - started)
    echo(text.rstrip("\n") if as_json and text else str(path), as_json=as_json and bool(text))
    fail(message, code)


def check_local_options() -> None:
    """--local serves its own model: a hosted model name or endpoint given with it is a mistake."""
    from click.core import ParameterSource

    context = click.get_current_context()
    for name in ("model", "extract_model", "rebut_model", "synthesis_model", "base_url"):
        flag = "--" + name.replace("_", "-")
        if context.get_parameter_source(name) == ParameterSource.COMMANDLINE:
            raise click.UsageError(
                f"{flag} does not go with --local; pass --model-file PATH.gguf to choose the local model"
            )


async def stop_on_sigterm(work: Any) -> Any:
    """Treat SIGTERM like Ctrl-C: cancel the run so it records what finished before exiting."""
    import asyncio
    import signal

    task = asyncio.current_task()
    assert task is not None, "called from a coroutine, so there is a current task"
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    return await work


def recorded_defaults(run_dir: RunDir, manifest: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    """On --resume, options left at their defaults take the recorded run's values, checked as the
    option itself checks them (a damaged manifest must not reach the pipeline)."""
    from ..errors import RunDirError

    recorded = manifest.get("settings", {})
    context = click.get_current_context()
    params = {param.name: param for param in context.command.params}
    taken = {}
    for name, current in options.items():
        if name not in recorded or not defaulted(name):
            continue
        value, param = recorded[name], params[name]
        try:
            if value is None and current is not None:  # None only where the default is None
                raise click.BadParameter("missing")
            taken[name] = param.type_cast_value(context, value)
        except (click.BadParameter, TypeError, ValueError, OverflowError):  # Click casts with int(), float()
            raise RunDirError(
                f"{run_dir.manifest_path} is damaged (settings.{name} is {value!r}); pass "
                f"--{name.replace('_', '-')} to resume anyway, or start a new run"
            ) from None
    return taken
