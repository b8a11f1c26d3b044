"""The `counterpoint` command: parse options, call the library, map errors to exit codes.

Exit codes: 0 complete brief; 1 nothing usable (config, input, auth, every stage failed);
2 usage error; 3 brief written but incomplete; 130 interrupted (Ctrl-C or SIGTERM: what finished
is saved for --resume). Heavy modules are imported inside commands so
that `counterpoint --help` and `counterpoint runs` start fast.
"""

from __future__ import annotations

import functools
import json
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from . import defaults

if TYPE_CHECKING:
    from .article import Article
    from .runs import RunDir

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_PARTIAL = 0, 1, 2, 3
EXIT_BY_STATUS = {"complete": EXIT_OK, "partial": EXIT_PARTIAL, "failed": EXIT_FAILED}


def echo(text: str, *, err: bool = False, nl: bool = True, as_json: bool = False) -> None:
    """Print through the terminal filter: model text and titles must not drive the terminal."""
    from .terminal import clean, clean_json

    click.echo(clean_json(text) if as_json else clean(text), err=err, nl=nl)


def fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    from .terminal import clean

    click.echo(f"error: {clean(message, one_line=True)}", err=True)
    sys.exit(code)


def friendly_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """One-line errors instead of tracebacks (COUNTERPOINT_DEBUG=1 shows the traceback)."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from .errors import CounterpointError

        try:
            return command(*args, **kwargs)
        except CounterpointError as exc:
            fail(str(exc))
        except KeyboardInterrupt:
            # A run's own interrupt is reported by `run` with its directory; this one came before a
            # run had anything to save (or in another command), so there is nothing to resume.
            fail("interrupted", 130)
        except (click.exceptions.Exit, click.ClickException, SystemExit):
            raise
        except BrokenPipeError:  # the reader stopped early (`counterpoint runs | head`): nothing to report
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit flush cannot fail too
            sys.exit(EXIT_FAILED)
        except Exception as exc:  # a bug: say so in one line, keep the details for whoever debugs it
            if os.environ.get("COUNTERPOINT_DEBUG"):
                raise
            fail(f"internal error ({type(exc).__name__}: {exc}); rerun with COUNTERPOINT_DEBUG=1 and report it")

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="counterpoint")
def main() -> None:
    """Answer an opinion piece: extract its claims, steelman and rebut each, write a debate brief."""


def console() -> None:
    """The `counterpoint` program: `main`, then exit without the interpreter's teardown.

    Once a command has finished and its output is flushed there is nothing left to clean up, yet
    unloading the ~900 modules a run imports (most of them the openai SDK's) takes 0.06-0.15 s.
    Library callers and tests use `main`, which exits normally.
    """
    try:
        main()
        code: Any = 0
    except SystemExit as done:
        code = done.code
    if isinstance(code, str):  # sys.exit("message") semantics
        print(code, file=sys.stderr)
        code = EXIT_FAILED
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (`counterpoint runs | head -1`): as the commands do
            code = code or EXIT_FAILED
    os._exit(code or EXIT_OK)


class FiniteFloatRange(click.FloatRange):
    """A FloatRange that also refuses nan and inf: nan passes every range check (each comparison
    with it is false), and an infinite timeout is no timeout."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


class BaseURL(click.ParamType):
    """An http(s) endpoint URL, checked before anything is sent or created; the value is kept as
    given (credentials in it are used, never recorded)."""

    name = "URL"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from .endpoints import check_base_url
        from .errors import ConfigError

        try:
            check_base_url(value)
        except ConfigError as exc:
            self.fail(str(exc).removeprefix("--base-url "), param, ctx)
        return value


runs_dir_option = click.option(
    "--runs-dir",
    envvar="COUNTERPOINT_RUNS_DIR",
    show_envvar=True,
    default=defaults.RUNS_DIR,
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Where run directories are written.",
)


@dataclass(frozen=True)
class RunOptions:
    """`counterpoint run`'s options as Click parsed them (one typed object, not 28 parameters)."""

    article: str | None
    model: str
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


@main.command()
@click.argument("article", required=False)
@click.option(
    "--model",
    envvar="COUNTERPOINT_MODEL",
    show_envvar=True,
    default=defaults.MODEL,
    show_default=True,
    help="Model name.",
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
    type=click.IntRange(1, 12),
    help="Claims to extract.",
)
@click.option(
    "--concurrency",
    envvar="COUNTERPOINT_CONCURRENCY",
    show_envvar=True,
    default=defaults.CONCURRENCY,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Per-claim calls in flight at once.",
)
@click.option(
    "--reasks",
    default=defaults.REASKS,
    show_default=True,
    type=click.IntRange(0, 5),
    help="Re-asks when an output fails validation.",
)
@click.option(
    "--timeout",
    default=defaults.TIMEOUT,
    show_default=True,
    type=FiniteFloatRange(min=0.1),
    help="Seconds to wait for one model call.",
)
@click.option(
    "--max-retries",
    default=defaults.MAX_RETRIES,
    show_default=True,
    type=click.IntRange(0, 10),
    help="Retries of a call after a timeout, dropped connection, 429 or 5xx.",
)
@click.option(
    "--max-calls",
    type=click.IntRange(min=1),
    help="Cap on model calls for the run. [default: enough for the brief plus retries]",
)
@click.option(
    "--response-format",
    envvar="COUNTERPOINT_RESPONSE_FORMAT",
    show_envvar=True,
    default=defaults.RESPONSE_FORMAT,
    show_default=True,
    type=click.Choice(["auto", "json_schema", "json_object", "prompt"]),
    help="How to ask for JSON.",
)
@click.option("--language", help="Language of the brief. [default: the article's]")
@click.option("--temperature", type=FiniteFloatRange(0, 2), help="Sampling temperature. [default: the server's]")
@click.option(
    "--max-chars",
    default=defaults.MAX_CHARS,
    show_default=True,
    type=click.IntRange(min=100),
    help="Refuse articles longer than this (see --truncate).",
)
@click.option("--truncate", is_flag=True, help="Cut an over-long article at --max-chars instead of refusing it.")
@click.option("--encoding", help="Decode the file with this encoding. [default: detect]")
@click.option(
    "--fetch-timeout",
    default=defaults.FETCH_TIMEOUT,
    show_default=True,
    type=FiniteFloatRange(min=0.1),
    help="For a URL: seconds for the whole download (connecting, each read, all redirects).",
)
@click.option(
    "--max-bytes",
    default=defaults.MAX_BYTES,
    show_default=True,
    type=click.IntRange(min=1024),
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
    from . import api
    from .engine import Settings
    from .progress import Progress

    opts = RunOptions(**given)
    if opts.article is None and opts.resume_ref is None:
        raise click.UsageError("give an ARTICLE file, URL or - for stdin, or --resume RUN")
    if opts.force and opts.resume_ref is None:
        raise click.UsageError("--force only goes with --resume")
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
    from . import api
    from .fetch import FetchOptions
    from .runs import find_run
    from .sources import load

    fetch = FetchOptions(
        timeout=opts.fetch_timeout, max_bytes=opts.max_bytes, allow_private_hosts=opts.allow_private_hosts
    )
    loaded = (
        load(opts.article, max_chars=opts.max_chars, truncate=opts.truncate, encoding=opts.encoding, fetch=fetch)
        if opts.article is not None
        else None
    )
    options: dict[str, Any] = {
        "model": opts.model,
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
    progress.summary(brief.data, str(brief.run_dir) if brief.run_dir else None, time.perf_counter() - started)
    echo(brief.to_json() if as_json else str(brief.run_dir), as_json=as_json)
    if brief.status == "failed":
        from .runs import RunDir, resume_command

        reason = brief.data["notes"][-1].rstrip(".")
        retry = f"retry with '{resume_command(RunDir(brief.run_dir))}'" if brief.run_dir else "run it again"
        fail(f"{reason}. The record is in {brief.run_dir}; {retry}")
    sys.exit(EXIT_BY_STATUS[brief.status])


def await_run(work: Any, run_dir: RunDir, progress: Any, started: float, as_json: bool) -> Any:
    """Run the brief; an interrupt or a run-stopping model error ends like a run, with the way to resume it."""
    import asyncio

    from .errors import AuthError, ModelError
    from .runs import resume_command

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
    try:
        text = (path / "brief.json").read_text(encoding="utf-8")
        brief = json.loads(text)
    except (OSError, ValueError):  # stopped before the brief was written
        text, brief = "", None
    if isinstance(brief, dict):
        progress.summary(brief, str(path), time.perf_counter() - started)
    echo(text.rstrip("\n") if as_json and text else str(path), as_json=as_json and bool(text))
    fail(message, code)


def defaulted(name: str) -> bool:
    """Whether the current command's option `name` was left at its default."""
    from click.core import ParameterSource

    return click.get_current_context().get_parameter_source(name) == ParameterSource.DEFAULT


def check_local_options() -> None:
    """--local serves its own model: a hosted model name or endpoint given with it is a mistake."""
    from click.core import ParameterSource

    context = click.get_current_context()
    for name, flag in (("model", "--model"), ("base_url", "--base-url")):
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
    from .errors import RunDirError

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
                f"{run_dir.path / 'manifest.json'} is damaged (settings.{name} is {value!r}); pass "
                f"--{name.replace('_', '-')} to resume anyway, or start a new run"
            ) from None
    return taken


@main.command(name="runs")
@runs_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
@friendly_errors
def list_runs(runs_dir: Path, as_json: bool) -> None:
    """List runs, newest first."""
    from .runs import list_runs as collect

    rows = collect(runs_dir)
    if as_json:
        echo(json.dumps(rows, indent=2), as_json=True)
        return
    if not rows:
        echo(f"no runs in {runs_dir}", err=True)
        return
    for line in runs_table(rows):
        echo(line)


def runs_table(rows: list[dict[str, Any]]) -> list[str]:
    """Aligned columns, the title last so that a long one does not push the others about. Every
    cell is one line of printable text, whatever a manifest or a --model holds."""
    from .pricing import format_cost
    from .terminal import clean

    header = ("ID", "STATUS", "CLAIMS", "TOKENS", "COST", "DATE", "MODEL", "TITLE")
    cells = [header] + [
        tuple(
            clean(cell, one_line=True).strip() or "-"
            for cell in (
                row["id"],
                row["status"],
                "-" if row["claims"] is None else str(row["claims"]),
                "-" if row["tokens"] is None else f"{row['tokens']:,}",
                format_cost(row["cost_usd"]) if row["cost_usd"] is not None or row["cost_status"] else "-",
                (row["created"] or "-")[:16].replace("T", " "),
                row["model"] or "-",
                clean(row["title"] or "-", one_line=True)[:60],
            )
        )
        for row in rows
    ]
    widths = [max(len(line[column]) for line in cells) for column in range(len(header) - 1)]
    right = {2, 3, 4}  # numbers line up on the right
    return [
        "  ".join(
            [
                cell.rjust(width) if column in right else cell.ljust(width)
                for column, (cell, width) in enumerate(zip(line, widths, strict=False))
            ]
            + [line[-1]]
        )
        for line in cells
    ]


@main.command()
@click.argument("run_ref", metavar="RUN", default="latest")
@runs_dir_option
@click.option("--format", "fmt", type=click.Choice(["md", "json", "html", "path"]), default="md", show_default=True)
@friendly_errors
def show(run_ref: str, runs_dir: Path, fmt: str) -> None:
    """Print a run's brief. RUN is an id, a unique prefix, 'latest' or a run directory."""
    from .runs import find_run

    run_dir = find_run(runs_dir, run_ref)
    if fmt == "path":
        echo(str(run_dir.path))
        return
    name = {"md": "brief.md", "json": "brief.json", "html": "brief.html"}[fmt]
    run_dir.require_finished(name)
    echo(run_dir.read_text(name), nl=False, as_json=fmt == "json")


@main.command()
@click.argument("target", metavar="RUN", default="latest")
@runs_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print the result as a JSON object on stdout.")
@friendly_errors
def validate(target: str, runs_dir: Path, as_json: bool) -> None:
    """Check a brief against the schemas and the article. RUN is an id, a unique prefix, 'latest', a run
    directory or a brief.json file."""
    from .brief import check_brief
    from .runs import RunDir, find_run, read_json, read_text_file
    from .terminal import clean

    path = Path(target).expanduser()
    if not path.is_file():
        run_dir = RunDir(path) if path.is_dir() else find_run(runs_dir, target)
        run_dir.refuse_while_running("brief.json")
        path = run_dir.path / "brief.json"
    brief_path = path
    article_path = brief_path.parent / "article.txt"
    brief = read_json(brief_path)
    article_text = read_text_file(article_path) if article_path.is_file() else None
    problems = check_brief(brief, article_text)
    checked = "schema, ids and quotes" if article_text is not None else "schema and ids (no article.txt beside it)"
    if as_json:
        echo(
            json.dumps(
                {"brief": str(brief_path), "ok": not problems, "checked": checked, "problems": problems},
                indent=2,
                ensure_ascii=False,
            ),
            as_json=True,
        )
    else:
        for problem in problems:
            echo(clean(problem, one_line=True))
    if problems:
        fail(f"{len(problems)} problem(s) in {brief_path}")
    echo(f"ok: {brief_path} ({checked})", err=True)


@main.command()
@click.option("--base-url", envvar="OPENAI_BASE_URL", show_envvar=True, type=BaseURL(), help="An endpoint to probe.")
@click.option("--json", "as_json", is_flag=True, help="Print the checks as JSON.")
@friendly_errors
def doctor(base_url: str | None, as_json: bool) -> None:
    """Show which model backends are usable here: API key, endpoint, local runtime, demo model."""
    from dataclasses import asdict

    from . import doctor as checks_mod

    checks = checks_mod.diagnose(base_url, os.environ.get("OPENAI_API_KEY"))
    usable = checks_mod.usable_backends(checks)
    if as_json:
        echo(json.dumps({"checks": [asdict(c) for c in checks], "usable": usable}, indent=2), as_json=True)
    else:
        for check in checks:
            echo(f"{'ok ' if check.ok else 'no '} {check.name}: {check.detail}")
        echo(f"usable: {', '.join(usable)}" if usable else "usable: none")
    if not usable:
        fail(
            "no usable backend: set OPENAI_API_KEY, pass --base-url for a running server, or install the "
            "'local' extra for --local"
        )
