"""`counterpoint batch`: brief many articles in one process (logic in pipeline/batch.py)."""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from .. import defaults
from .common import EXIT_FAILED, EXIT_OK, EXIT_PARTIAL, defaulted, echo, fail, friendly_errors
from .run import recorded_defaults, run, stop_on_sigterm

if TYPE_CHECKING:
    from ..batch_record import BatchDir

# `run`'s options that apply to every article of a batch, taken from `run` itself (same names,
# types, defaults and help). `--local` is left out: llama.cpp answers one request at a time.
RUN_OPTIONS = (
    "model",
    "extract_model",
    "rebut_model",
    "synthesis_model",
    "base_url",
    "runs_dir",
    "max_claims",
    "reasks",
    "timeout",
    "max_retries",
    "max_calls",
    "response_format",
    "language",
    "temperature",
    "max_chars",
    "truncate",
    "encoding",
    "fetch_timeout",
    "max_bytes",
    "allow_private_hosts",
    "cache_dir",
    "no_cache",
    "force",
    "quiet",
)
# What the batch manifest records and `--resume` takes back for options left at their defaults.
RECORDED = tuple(name for name in RUN_OPTIONS if name not in ("base_url", "runs_dir", "cache_dir", "force", "quiet"))
RECORDED += ("concurrency", "max_failures", "batch_api", "poll_interval")


@click.command()
@click.argument("sources", nargs=-1)
@click.option(
    "--from",
    "lists",
    multiple=True,
    metavar="LIST",
    help="A file of paths or URLs, one a line (# comments), or a FEED.jsonl of objects with one of "
    "text/html/url/path and optional id/title/author/date. Repeatable.",
)
@click.option(
    "--concurrency",
    default=defaults.BATCH_CONCURRENCY,
    show_default=True,
    type=click.IntRange(1, 1024),
    help="Model requests in flight at once, across all articles (not with --batch-api, which sends every "
    "request of a stage in one job).",
)
@click.option(
    "--batch-api/--no-batch-api",
    default=False,
    help="Send every model call through the provider's Batch API (/v1/files, /v1/batches): half the price, "
    "answers within 24 h. All articles are open at once, so each stage is one job.",
)
@click.option(
    "--poll-interval",
    type=click.FloatRange(0, min_open=True),
    default=defaults.BATCH_API_POLL,
    show_default=True,
    metavar="SECONDS",
    help="With --batch-api: the longest wait between checks of a job (the first comes after at most 5 s).",
)
@click.option("--local", is_flag=True, hidden=True)  # only to say what to do instead
@click.option("--max-failures", type=click.IntRange(min=1), help="Stop the batch once this many articles have failed.")
@click.option("--resume", "resume_ref", metavar="BATCH", help="Continue a batch (id, prefix, 'latest' or directory).")
@click.option("--json", "as_json", is_flag=True, help="Print the batch summary as JSON on stdout instead of the path.")
@friendly_errors
def batch(**given: Any) -> None:
    """Write a brief for every article in SOURCES: files, folders (their .txt .md .html .htm .docx
    .pdf files), http(s) URLs, and the lines of each --from LIST or FEED.jsonl.

    Each article is an ordinary run; the batch record (batch.jsonl, summary.csv, index.html) is in
    RUNS_DIR/batches/<id>/, the last line on stdout. Exit 0: every article complete; 3: some
    partial or failed; 1: none produced a brief; 130: interrupted (continue with --resume).
    """
    from .. import api
    from ..batch_progress import BatchProgress
    from ..batch_record import FINISHED, BatchDir, find_batch
    from ..batch_sources import items

    if given["resume_ref"] and (given["sources"] or given["lists"]):
        raise click.UsageError("--resume continues the batch's recorded sources; give no SOURCES or --from")
    if not given["resume_ref"] and not (given["sources"] or given["lists"]):
        raise click.UsageError("give SOURCES (files, folders, URLs) or --from LIST, or --resume BATCH")
    if given["force"] and not given["resume_ref"]:
        raise click.UsageError("--force only goes with --resume")
    if given["local"]:
        raise click.UsageError(
            "batch has no --local (llama.cpp answers one request at a time and has no Batch API); serve the "
            "model behind an OpenAI-compatible URL (vLLM, llama-server) and pass it with --base-url"
        )
    api.check_resources()
    runs_dir: Path = given["runs_dir"]
    if given["resume_ref"]:
        batch_dir = find_batch(runs_dir, given["resume_ref"])
        fields, base_url = resumed(batch_dir, given)
    else:
        batch_dir, fields, base_url = None, new_fields(given), given["base_url"]
    if not fields["settings"]["batch_api"] and not defaulted("poll_interval"):
        raise click.UsageError("--poll-interval only goes with --batch-api")
    config = batch_config(fields["settings"], base_url, given)
    sources, lists = fields["sources"], fields["lists"]
    base = fields.get("cwd")  # None for a batch recorded before it was kept: the current directory
    # The lists are read twice, never held; the first pass, before anything starts, warns of repeats.
    total = sum(1 for _ in items(sources, lists, base, on_repeat=warn_repeat))
    if not total:
        fail("no articles in the sources given (a folder gives its .txt .md .html .htm .docx .pdf files)")
    if config.batch_api:  # every article open at once: each stage of the corpus in one job
        config = dataclasses.replace(config, window=total)
    batch_dir = batch_dir or BatchDir.create(runs_dir)
    done = sum(1 for line in batch_dir.rows().values() if line["status"] == FINISHED)
    progress = BatchProgress(total, done, quiet=given["quiet"])
    run_and_report(batch_dir, config, items(sources, lists, base), progress, fields, given["as_json"])


def warn_repeat(source: str, first: str) -> None:
    same = "" if source == first else f" (as {first})"
    echo(f"warning: {source} was given before{same}; it is briefed once", err=True)


batch.params.extend(param for param in run.params if param.name in RUN_OPTIONS)


def new_fields(given: dict[str, Any]) -> dict[str, Any]:
    """The manifest of a new batch: its sources (paths made absolute, and the directory the lists'
    relative paths are read from, so --resume works from anywhere), the settings every article runs
    with, and the endpoint."""
    from ..endpoints import Endpoint
    from ..runs import utc_now
    from ..sources import is_url

    def absolute(source: str) -> str:
        return source if is_url(source) else os.path.abspath(os.path.expanduser(source))

    return {
        "created": utc_now(),
        "sources": [absolute(source) for source in given["sources"]],
        "lists": [absolute(listing) for listing in given["lists"]],
        "cwd": os.getcwd(),
        "settings": {name: given[name] for name in RECORDED},
        **Endpoint.of(given["base_url"]).record(),
    }


def resumed(batch_dir: BatchDir, given: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """The recorded batch's manifest fields with the settings to use (options left at their defaults
    take the recorded values) and the endpoint it was started on (unless --base-url says otherwise)."""
    from .. import api
    from ..endpoints import Endpoint, check_resume
    from ..errors import RunDirError
    from ..runs import RunDir

    manifest = batch_dir.manifest()
    settings = {name: given[name] for name in RECORDED}
    settings.update(recorded_defaults(RunDir(batch_dir.path), manifest, settings))
    base_url, _ = api.recorded_endpoint(manifest, given["base_url"], False, None)
    # Another endpoint than recorded is refused up front, as `run --resume` does, not article by article.
    current = Endpoint.of(base_url)
    for problem in check_resume(f"batch {batch_dir.id}", manifest, current, force=given["force"]):
        echo(f"warning: {problem}; sending the rest there (--force)", err=True)
    sources, lists = manifest.get("sources"), manifest.get("lists")
    if not _strings(sources) or not _strings(lists):
        raise RunDirError(f"{batch_dir.manifest_path} is damaged (sources); start a new batch")
    fields: dict[str, Any] = {key: manifest[key] for key in ("created", "cwd", "endpoint", "local") if key in manifest}
    if not isinstance(fields.get("cwd", ""), str):
        raise RunDirError(f"{batch_dir.manifest_path} is damaged (cwd); start a new batch")
    return {**fields, "sources": sources, "lists": lists, "settings": settings}, base_url


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def batch_config(settings: dict[str, Any], base_url: str | None, given: dict[str, Any]) -> Any:
    """What every article runs with; a ConfigError (no key, no endpoint) before anything is created."""
    from .. import api
    from ..batch import BatchConfig, polling_every
    from ..batch_sources import ReadOptions
    from ..engine import Settings
    from ..fetch import FetchOptions

    model_settings = Settings(
        **{key: settings[key] for key in ("model", "max_claims", "concurrency", "reasks", "language")},
        **{key: settings[key] for key in ("temperature", "response_format")},
        **{key: settings[key] for key in ("extract_model", "rebut_model", "synthesis_model")},
    )
    client = api.ClientOptions(
        base_url=base_url,
        timeout=settings["timeout"],
        max_retries=settings["max_retries"],
        max_calls=settings["max_calls"],
        cache_dir=given["cache_dir"],
        use_cache=not settings["no_cache"],
    )
    api.check_client(model_settings, base_url, None, settings["timeout"], flag="--base-url")
    fetch = FetchOptions(
        timeout=settings["fetch_timeout"],
        max_bytes=settings["max_bytes"],
        allow_private_hosts=settings["allow_private_hosts"],
    )
    read = ReadOptions(
        max_chars=settings["max_chars"], truncate=settings["truncate"], encoding=settings["encoding"], fetch=fetch
    )
    return BatchConfig(
        model_settings,
        client,
        read,
        given["runs_dir"],
        max_failures=settings["max_failures"],
        force=given["force"],
        batch_api=settings["batch_api"],
        polling=polling_every(settings["poll_interval"]),
    )


def run_and_report(
    batch_dir: BatchDir, config: Any, todo: Any, progress: Any, fields: dict[str, Any], as_json: bool
) -> NoReturn:
    """Run the batch; however it ends, the summary on stderr, the batch directory (or the summary
    JSON) as stdout's last line, then the exit code (with one error line when it stopped early)."""
    import asyncio

    from ..batch import run_batch
    from ..batch_record import resume_command

    started = time.perf_counter()
    stopped, interrupted = None, False
    flags: tuple[str, ...] = ()
    try:
        outcome = asyncio.run(stop_on_sigterm(run_batch(batch_dir, config, todo, progress, fields)))
        stopped, flags = outcome.stopped, outcome.resume_flags
    except (KeyboardInterrupt, asyncio.CancelledError):  # the record of what finished is written
        interrupted = True
    manifest = batch_dir.manifest()
    totals = manifest["totals"]
    progress.summary(totals, str(batch_dir.path), time.perf_counter() - started)
    summary = {"batch": str(batch_dir.path), "status": manifest["status"], "stopped": stopped, "totals": totals}
    echo(json.dumps(summary, indent=2) if as_json else str(batch_dir.path), as_json=as_json)
    if interrupted:
        fail(
            f"interrupted; what finished is saved in {batch_dir.path}; continue with '{resume_command(batch_dir)}'", 130
        )
    produced = totals["complete"] + totals["partial"]
    code = EXIT_FAILED if not produced else EXIT_PARTIAL
    if stopped:
        fail(
            f"{stopped}. The record is in {batch_dir.path}; once that is fixed, "
            f"continue with '{shlex.join([*shlex.split(resume_command(batch_dir)), *flags])}'",
            code,
        )
    if not produced:
        fail(
            f"{all_failed(batch_dir)}; see {batch_dir.path / 'batch.jsonl'}, fix that, "
            f"then '{resume_command(batch_dir)}'"
        )
    raise SystemExit(EXIT_OK if totals["complete"] == totals["articles"] == progress.total else code)


def all_failed(batch_dir: BatchDir) -> str:
    """Why no article produced a brief: the first failure's reason."""
    rows = sorted(batch_dir.rows().values(), key=lambda line: line["n"])
    first = next((line for line in rows if line["status"] == "failed"), None)
    reason = first["error"] if first and first.get("error") else "failed"
    return f"every article failed; the first ({first['source'] if first else '?'}): {reason}"
