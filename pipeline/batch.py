"""Brief a corpus in one process: every article an ordinary run, all under one concurrency limit.

Each article gets its own client (its own calls log, call budget and run record). Over HTTP every
client sends through one shared transport: the same concurrency slots, 429 back-off and HTTP
connections (llm.OpenAIClient.share_transport), so `--concurrency` bounds the requests in flight
across the whole batch with `run`'s per-request semantics. At most `window` articles are open at
once and sources are read lazily, so memory stays flat however long the corpus. A failure stays
the article's row; an endpoint that refuses the credentials or the model stops the batch at once,
and `max_failures` failed articles stop it too.

With `batch_api` every request goes to one `batch_api.BatchJobs` queue instead (kept in the batch's
folder, so a resume reuses the jobs already submitted), and every article is open at once, so each
stage of the whole corpus goes in one job.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from . import api, defaults
from .batch_record import FINISHED, NOT_STARTED, BatchDir, row
from .batch_sources import Item, ReadOptions, load_item
from .engine import Settings
from .errors import CounterpointError, ModelError, NoBatchAPI
from .llm import OpenAIClient
from .runs import RunDir, RunDirError

if TYPE_CHECKING:
    from .batch_api import BatchJobs, Polling
    from .cache import ResponseCache

PROGRESS_EVERY = 0.5  # seconds between progress updates


@dataclass(frozen=True)
class BatchConfig:
    """How every article of a batch runs: `settings.concurrency` is the limit across all of them."""

    settings: Settings
    client: api.ClientOptions
    read: ReadOptions
    runs_dir: Path
    max_failures: int | None = None
    window: int | None = None  # articles open at once; default: twice the concurrency
    force: bool = False  # resume runs whose record differs (as `run --resume --force`)
    batch_api: bool = False  # every model call through the provider's Batch API
    polling: Polling | None = None  # how the Batch API jobs are checked (None: batch_api.Polling())

    @property
    def open_articles(self) -> int:
        return self.window or 2 * self.settings.concurrency + 2

    @property
    def price_tier(self) -> str:
        return "batch" if self.batch_api else "standard"


class Reporter(Protocol):
    """What the batch tells progress (batch_progress.BatchProgress)."""

    def attempt(self, line: dict[str, Any]) -> None: ...
    def finished(self, line: dict[str, Any]) -> None: ...
    def tick(self, in_flight: int) -> None: ...
    def batch_job(self, job: dict[str, Any]) -> None: ...


@dataclass(frozen=True)
class Outcome:
    """How the batch ended: its rows by key, and why it stopped early (None: it went through)."""

    rows: dict[str, dict[str, Any]]
    stopped: str | None = None
    resume_flags: tuple[str, ...] = ()  # what a resume needs to get past why it stopped


class BatchRunner:
    def __init__(
        self,
        batch: BatchDir,
        config: BatchConfig,
        rows: dict[str, dict[str, Any]],
        reporter: Reporter,
        jobs: BatchJobs | None = None,
    ) -> None:
        self.batch = batch
        self.config = config
        self.rows = rows  # what batch.jsonl knew (on resume), updated as articles finish
        self.reporter = reporter
        self.failures = 0  # this process's new failures: an article recorded failed that fails again is not one
        self._failed_before = {key for key, line in rows.items() if line["status"] == "failed"}
        self.stopped: str | None = None
        self.resume_flags: tuple[str, ...] = ()
        self._tasks: set[asyncio.Task[None]] = set()
        self._bug: BaseException | None = None  # an unexpected error in an article: raised, never swallowed
        self.jobs = jobs  # the Batch API queue every article's requests go to (None: over HTTP)
        # Never sends itself: it holds the slots, back-off and connections every article's client
        # shares. The Batch API path sends no request over HTTP: nothing to share.
        self.transport = self._make_client() if jobs is None else None

    def _make_client(self) -> OpenAIClient:
        options = self.config.client
        return api.make_client(
            settings=self.config.settings,
            base_url=options.base_url,
            timeout=defaults.TIMEOUT if options.timeout is None else options.timeout,
            max_retries=options.max_retries,
            max_calls=options.max_calls,
            cache_dir=options.cache_dir,
            use_cache=options.use_cache,
        )

    def article_client(self, run_dir: RunDir) -> OpenAIClient:
        """The client the article in `run_dir` talks through: the one place its class is chosen. A
        Batch API client's request ids derive from the run's id (so a resume asks the same ones)."""
        if self.jobs is not None:
            from .batch_api import batch_api_client

            options = self.config.client
            return batch_api_client(
                self.jobs,
                settings=self.config.settings,
                run_id=run_dir.id,
                max_calls=options.max_calls,
                max_retries=options.max_retries,
                cache=self._cache(),
            )
        assert self.transport is not None  # made whenever there is no queue
        client = self._make_client()
        client.share_transport(self.transport)
        return client

    def _cache(self) -> ResponseCache | None:
        """The response cache an article's client uses, as `api.make_client` opens it."""
        options = self.config.client
        if not options.use_cache:
            return None
        from .cache import ResponseCache, default_cache_dir

        return ResponseCache(options.cache_dir or default_cache_dir())

    async def run(self, items: Iterator[Item]) -> Outcome:
        """Brief every item not finished before; an interrupt still records every open article."""
        window = asyncio.Semaphore(self.config.open_articles)
        ticker = asyncio.create_task(self._tick())
        try:
            for item in items:
                known = self.rows.get(item.key)
                if known is not None and known["status"] == FINISHED:
                    continue  # never asked again
                try:
                    await window.acquire()
                except asyncio.CancelledError:
                    self._not_started(item)
                    raise
                if self.stopped is not None:
                    self._not_started(item)
                    break
                task = asyncio.create_task(self._article(item, known))
                self._tasks.add(task)
                task.add_done_callback(lambda done: self._done(done, window))
            await asyncio.gather(*self._tasks, return_exceptions=True)
        finally:
            await self._cancel_open()
            ticker.cancel()
            if self.transport is not None:
                await self.transport.aclose()
            for item in items:  # the sources never reached: a row each, so the record lists every source
                self._not_started(item)
        if self._bug is not None:
            raise self._bug
        return Outcome(self.rows, self.stopped, self.resume_flags)

    def _done(self, task: asyncio.Task[None], window: asyncio.Semaphore) -> None:
        self._tasks.discard(task)
        window.release()
        if not task.cancelled() and task.exception() is not None:
            self._bug = task.exception()
            self._stop("an internal error stopped the batch")

    async def _cancel_open(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _tick(self) -> None:
        while True:
            self.reporter.tick(self.calls_in_flight)
            await asyncio.sleep(PROGRESS_EVERY)

    @property
    def calls_in_flight(self) -> int:
        """A Batch API client holds no concurrency slot: its calls in flight are the queue's."""
        if self.jobs is not None:
            return self.jobs.in_flight
        return self.transport.calls_in_flight if self.transport is not None else 0

    def _stop(self, why: str) -> None:
        """Start no new article, and stop the open ones (each records what it finished)."""
        if self.stopped is None:
            self.stopped = why
            current = asyncio.current_task()
            for task in self._tasks:
                if task is not current:
                    task.cancel()

    async def _article(self, item: Item, known: dict[str, Any] | None) -> None:
        run_dir = RunDir(Path(known["run"])) if known and known.get("run") else None
        if run_dir is not None and not run_dir.is_run():
            run_dir = None  # never got going: start it afresh
        try:
            brief = await (self._resume(run_dir) if run_dir is not None else self._new(item))
            run_dir = RunDir(brief.run_dir) if brief.run_dir else run_dir
            error = None if brief.status == FINISHED else (brief.notes or [None])[-1]
            line = row(
                item.key,
                item.n,
                item.source,
                item.id,
                status=brief.status,
                run=_path(run_dir),
                brief=brief.to_dict(),
                error=error,
            )
        except asyncio.CancelledError:
            started = self._run_of(item, run_dir)
            if started is None or started.discard_unstarted():  # nothing to record: it starts on resume
                self._not_started(item, replace=True)
            else:
                why = f"not finished: {self.stopped}" if self.stopped else "interrupted"
                self._finish(self._recorded_row(item, started, why))
            raise
        except ModelError as exc:  # the endpoint refuses the credentials or the model: no article can succeed
            self._finish(self._recorded_row(item, self._run_of(item, run_dir), str(exc)))
            if isinstance(exc, NoBatchAPI):  # --batch-api is recorded: the resume must turn it off
                self.resume_flags = ("--no-batch-api",)
            self._stop(f"{exc}; the batch stopped")
            return
        except CounterpointError as exc:  # this article's input or record: its row, the batch goes on
            line = self._recorded_row(item, self._run_of(item, run_dir), str(exc))
        self._finish(line)

    async def _new(self, item: Item) -> Any:
        article = await asyncio.to_thread(load_item, item, self.config.read)
        making = asyncio.ensure_future(asyncio.to_thread(api.new_run_dir, article, self.config.runs_dir))
        try:
            run_dir = await asyncio.shield(making)
        except asyncio.CancelledError:  # the thread makes the folder anyway: never leave it half-made
            (await making).discard_unstarted()
            raise
        self._started(item, run_dir)
        return await api.run_brief(
            article,
            self.config.settings,
            self.article_client(run_dir),
            runs_dir=None,
            run_dir=run_dir,
            on_event=self._event,
        )

    async def _resume(self, run_dir: RunDir) -> Any:
        return await api.resume_brief(
            self.config.runs_dir,
            run_dir,
            self.config.settings,
            self.article_client(run_dir),
            force=self.config.force,
            on_event=self._event,
        )

    def _started(self, item: Item, run_dir: RunDir) -> None:
        """Record which run an item went to before its first call, so a killed batch can resume it."""
        self.rows[item.key] = row(item.key, item.n, item.source, item.id, status="running", run=run_dir.path)
        self.batch.append(self.rows[item.key])

    def _not_started(self, item: Item, *, replace: bool = False) -> None:
        """Record a source the batch stopped before starting (kept as it was if the record knows it,
        unless `replace`: its row said it was running)."""
        known = self.rows.get(item.key)
        if known is not None and not (replace and known["status"] == "running"):
            return
        why = self.stopped or "interrupted"
        line = row(
            item.key, item.n, item.source, item.id, status=NOT_STARTED, error=f"stopped before it started: {why}"
        )
        self.rows[item.key] = line
        self.batch.append(line)

    def _run_of(self, item: Item, run_dir: RunDir | None) -> RunDir | None:
        if run_dir is not None:
            return run_dir
        started = self.rows.get(item.key)
        return RunDir(Path(started["run"])) if started and started.get("run") else None

    def _event(self, event: str, **data: Any) -> None:
        if event == "attempt":
            self.reporter.attempt(data)

    def _recorded_row(self, item: Item, run_dir: RunDir | None, error: str) -> dict[str, Any]:
        """The row of an article that stopped early: what its run wrote (a partial brief), else failed."""
        brief = _stored_brief(run_dir)
        status = brief["status"] if brief else "failed"
        return row(item.key, item.n, item.source, item.id, status=status, run=_path(run_dir), brief=brief, error=error)

    def _finish(self, line: dict[str, Any]) -> None:
        self.rows[line["key"]] = line
        self.batch.append(line)
        self.reporter.finished(line)
        if line["status"] == "failed" and line["key"] not in self._failed_before:
            self.failures += 1
            limit = self.config.max_failures
            if limit is not None and self.failures >= limit:
                self._stop(
                    f"{self.failures} articles failed (--max-failures {limit}); the last: {line['error'] or 'failed'}"
                )


def _path(run_dir: RunDir | None) -> Path | None:
    return run_dir.path if run_dir else None


def _stored_brief(run_dir: RunDir | None) -> dict[str, Any] | None:
    if run_dir is None or not run_dir.has_brief():
        return None
    try:
        brief = run_dir.read_brief()
    except RunDirError:
        return None
    return brief if isinstance(brief, dict) and brief.get("status") in ("complete", "partial", "failed") else None


async def run_batch(
    batch: BatchDir, config: BatchConfig, items: Iterator[Item], reporter: Reporter, manifest: dict[str, Any]
) -> Outcome:
    """Run (or continue) `batch` over `items`, holding its lock; the record is written however it ends:
    batch.jsonl with one line per source, summary.csv, index.html and the manifest with the totals."""
    started = time.perf_counter()
    with batch.lock():
        rows = batch.rows()
        batch.write_manifest("running", manifest, None)
        jobs = job_queue(batch, config, reporter) if config.batch_api else None
        runner = BatchRunner(batch, config, rows, reporter, jobs)
        status = "interrupted"
        try:
            # An exception (an interrupt) closes the queue unfinished: the answers handed out are
            # kept for the resume, which replays them instead of paying for them again.
            async with jobs or nullcontext():
                outcome = await runner.run(items)
            status = "stopped" if outcome.stopped else "finished"
        finally:
            totals = batch.finish(runner.rows, config.price_tier)
            totals["wall_s"] = round(time.perf_counter() - started, 3)
            batch.write_manifest(status, {**manifest, "stopped": runner.stopped}, totals)
    return outcome


def polling_every(seconds: float) -> Polling:
    """Checks of a job at most `seconds` apart (the first after at most 5 s). A short interval
    (a fast local batch endpoint, the tests) also shortens the pause that gathers a stage's
    requests into one job, which needs no more than the gaps between articles' requests."""
    from .batch_api import Polling

    default = Polling()
    return Polling(settle=min(default.settle, seconds), first=min(default.first, seconds), longest=seconds)


def job_queue(batch: BatchDir, config: BatchConfig, reporter: Reporter) -> BatchJobs:
    """The Batch API queue of `batch`: its record of submitted jobs lives in the batch's folder, so
    a resumed batch follows the jobs already submitted. The key is OPENAI_API_KEY, as for a run."""
    from .batch_api import BatchJobs

    def on_event(kind: str, **data: Any) -> None:
        if kind == "batch_job":
            reporter.batch_job(data)

    options = config.client
    return BatchJobs(
        base_url=options.base_url,
        api_key=None,
        state_dir=batch.path / "batch_api",
        polling=config.polling,
        timeout=defaults.TIMEOUT if options.timeout is None else options.timeout,
        attempts=options.max_retries + 1,
        on_event=on_event,
    )
