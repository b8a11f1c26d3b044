"""Brief a corpus in one process: every article an ordinary run, all under one concurrency limit.

Each article gets its own client (its own calls log, call budget and run record), and every
client sends through one shared transport: the same concurrency slots, 429 back-off and HTTP
connections (llm.OpenAIClient.share_transport), so `--concurrency` bounds the requests in flight
across the whole batch with `run`'s per-request semantics. At most `window` articles are open at
once and sources are read lazily, so memory stays flat however long the corpus. A failure stays
the article's row; an endpoint that refuses the credentials or the model stops the batch at once,
and `max_failures` failed articles stop it too.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from . import api, defaults
from .batch_record import FINISHED, BatchDir, row
from .batch_sources import Item, ReadOptions, load_item
from .engine import Settings
from .errors import CounterpointError, ModelError
from .llm import OpenAIClient
from .runs import RunDir, RunDirError, read_json

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

    @property
    def open_articles(self) -> int:
        return self.window or 2 * self.settings.concurrency + 2


class Reporter(Protocol):
    """What the batch tells progress (batch_progress.BatchProgress)."""

    def attempt(self, line: dict[str, Any]) -> None: ...
    def finished(self, line: dict[str, Any]) -> None: ...
    def tick(self, in_flight: int) -> None: ...


@dataclass(frozen=True)
class Outcome:
    """How the batch ended: its rows by key, and why it stopped early (None: it went through)."""

    rows: dict[str, dict[str, Any]]
    stopped: str | None = None


class BatchRunner:
    def __init__(
        self, batch: BatchDir, config: BatchConfig, rows: dict[str, dict[str, Any]], reporter: Reporter
    ) -> None:
        self.batch = batch
        self.config = config
        self.rows = rows  # what batch.jsonl knew (on resume), updated as articles finish
        self.reporter = reporter
        self.failures = 0
        self.stopped: str | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._bug: BaseException | None = None  # an unexpected error in an article: raised, never swallowed
        # Never sends itself: it holds the slots, back-off and connections every article's client shares.
        self.transport = self._make_client()

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
        """The client the article in `run_dir` talks through: the one place its class is chosen (a
        provider Batch API client, whose request ids derive from the run's id, plugs in here)."""
        del run_dir  # an HTTP client needs only the shared transport
        client = self._make_client()
        client.share_transport(self.transport)
        return client

    async def run(self, items: Iterator[Item]) -> Outcome:
        """Brief every item not finished before; an interrupt still records every open article."""
        window = asyncio.Semaphore(self.config.open_articles)
        ticker = asyncio.create_task(self._tick())
        try:
            for item in items:
                known = self.rows.get(item.key)
                if known is not None and known["status"] == FINISHED:
                    continue  # never asked again
                await window.acquire()
                if self.stopped is not None:
                    break
                task = asyncio.create_task(self._article(item, known))
                self._tasks.add(task)
                task.add_done_callback(lambda done: self._done(done, window))
            await asyncio.gather(*self._tasks, return_exceptions=True)
        finally:
            await self._cancel_open()
            ticker.cancel()
            await self.transport.aclose()
        if self._bug is not None:
            raise self._bug
        return Outcome(self.rows, self.stopped)

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
            self.reporter.tick(self.transport.calls_in_flight)
            await asyncio.sleep(PROGRESS_EVERY)

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
        if run_dir is not None and not (run_dir.path / "manifest.json").is_file():
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
            if started is not None:  # one not started yet has nothing to record: it starts on resume
                why = f"not finished: {self.stopped}" if self.stopped else "interrupted"
                self._finish(self._recorded_row(item, started, why))
            raise
        except ModelError as exc:  # the endpoint refuses the credentials or the model: no article can succeed
            self._finish(self._recorded_row(item, self._run_of(item, run_dir), str(exc)))
            self._stop(f"{exc}; the batch stopped")
            return
        except CounterpointError as exc:  # this article's input or record: its row, the batch goes on
            line = self._recorded_row(item, self._run_of(item, run_dir), str(exc))
        self._finish(line)

    async def _new(self, item: Item) -> Any:
        article = await asyncio.to_thread(load_item, item, self.config.read)
        run_dir = await asyncio.to_thread(api.new_run_dir, article, self.config.runs_dir)
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
        if line["status"] == "failed":
            self.failures += 1
            limit = self.config.max_failures
            if limit is not None and self.failures >= limit:
                self._stop(
                    f"{self.failures} articles failed (--max-failures {limit}); the last: {line['error'] or 'failed'}"
                )


def _path(run_dir: RunDir | None) -> Path | None:
    return run_dir.path if run_dir else None


def _stored_brief(run_dir: RunDir | None) -> dict[str, Any] | None:
    if run_dir is None or not (run_dir.path / "brief.json").is_file():
        return None
    try:
        brief = read_json(run_dir.path / "brief.json")
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
        runner = BatchRunner(batch, config, rows, reporter)
        status = "interrupted"
        try:
            outcome = await runner.run(items)
            status = "stopped" if outcome.stopped else "finished"
        finally:
            totals = batch.finish(runner.rows)
            totals["wall_s"] = round(time.perf_counter() - started, 3)
            batch.write_manifest(status, {**manifest, "stopped": runner.stopped}, totals)
    return outcome
