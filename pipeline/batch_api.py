"""The provider's Batch API as a model client (`--batch-api`): half the price, answers within 24 h.

`BatchJobs` (one per corpus run) gathers the chat-completions requests of every article's units.
Once no new request has come for `settle` seconds (or a job is full), it submits them as one job:
a JSONL uploaded with `files.create` (purpose `batch`), `batches.create` for
`/v1/chat/completions` with a 24h window; it polls the job with back-off, reporting progress,
downloads the output and error files and answers each request by its `custom_id`.

`BatchAPIClient` is a `ModelClient` whose HTTP attempt is a request handed to the queue. Everything
above it (response-format negotiation, re-asks of invalid answers, the calls log, the cache) is
unchanged. So with all articles running at once, all extractions go in one job, then all
rebuttals, then all syntheses, and a re-ask goes in a follow-up job.

Every submitted job is recorded at once (`batch_state.JobRecord`), and a request's `custom_id` is
deterministic (run id, unit, the unit's request number, a digest of the request): a process
started again after dying asks the same requests and is answered from the jobs already submitted.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self, TypeVar
from urllib.parse import urlsplit

from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from . import defaults
from .batch_state import JobRecord
from .endpoints import DEFAULT_BASE_URL, Endpoint
from .errors import AuthError, CounterpointError, ModelError, NoBatchAPI, UnitFailed
from .files import json_text
from .llm import CallContext, OpenAIClient, Reply, SamplingSettings, clip, reply_from, retryable_status
from .runs import utc_now

if TYPE_CHECKING:
    from .cache import ResponseCache
    from .engine import EventSink, Settings

ENDPOINT = "/v1/chat/completions"
COMPLETION_WINDOW = "24h"
FINAL_STATUSES = frozenset({"completed", "failed", "expired", "cancelled"})
MAX_REQUESTS = 50_000  # OpenAI's limit on the requests in one job
MAX_BYTES = 190_000_000  # under OpenAI's 200 MB limit on a batch input file
T = TypeVar("T")


@dataclass(frozen=True)
class Polling:
    """When to submit and how often to check a job. A job goes once no new request came for `settle`
    seconds; it is checked at once, then after `first` seconds, each wait `factor` times longer, up
    to `longest`. Tests use tiny values."""

    settle: float = 2.0
    first: float = 5.0
    factor: float = 1.5
    longest: float = 60.0

    def waits(self) -> Iterator[float]:
        wait = self.first
        while True:
            yield wait
            wait = min(wait * self.factor, self.longest)


@dataclass(frozen=True)
class Answer:
    """One request's line in a job's output or error file.

    `status` is the HTTP status the request got inside the job (None when it never ran), `body`
    the chat completion (or the error body), `error` why there is no answer at all.
    """

    job: str
    status: int | None
    body: Any = None
    error: str | None = None

    @property
    def usable(self) -> bool:
        return self.status == 200 and self.error is None


class BatchJobs:
    """The queue of requests and the jobs that answer them, for one corpus run (one endpoint).

    Use as `async with BatchJobs(...) as jobs:`. `api_key` None: OPENAI_API_KEY, as for a run (check
    the configuration first with `api.check_client`). `state_dir` (e.g. the batch's folder) holds the
    record of submitted jobs and their answers. `on_event("batch_job", job=, status=, total=,
    completed=, failed=)` reports each job's progress.
    """

    def __init__(
        self,
        *,
        base_url: str | None,
        api_key: str | None,
        state_dir: Path,
        polling: Polling | None = None,
        max_requests: int = MAX_REQUESTS,
        timeout: float = defaults.TIMEOUT,
        attempts: int = defaults.MAX_RETRIES + 1,
        on_event: EventSink | None = None,
    ) -> None:
        self.given_base_url = base_url  # None: the public default, as a run records it
        self.endpoint = Endpoint.of(base_url, None)
        self.base_url = (base_url or DEFAULT_BASE_URL).strip()
        self.host = urlsplit(self.base_url).netloc.rsplit("@", 1)[-1]
        self.record = JobRecord(state_dir)
        self.polling = polling or Polling()
        self.max_requests = max_requests
        self.attempts = attempts
        self.emit = on_event or (lambda *args, **kwargs: None)
        api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        self._secret = api_key or ""
        self._sdk_options: dict[str, Any] = {
            "api_key": api_key or "no-key",
            "base_url": self.base_url,
            "timeout": timeout,
        }
        self._sdk: Any = None
        # Not yet submitted, by model (a job's requests must all name one model): (custom_id, JSONL line).
        self._pending: dict[str, list[tuple[str, str]]] = {}
        self._pending_bytes: dict[str, int] = {}
        self._last_arrival = 0.0
        self._flusher: asyncio.Task[None] | None = None
        self._waiting: dict[str, asyncio.Future[Answer]] = {}
        self._answers: dict[str, Answer] = {}  # answered before anyone in this process asked
        self._following: set[str] = set()
        self._ended: dict[str, str | None] = {}  # job -> why it answered nothing (None: it answered)
        self._tasks: set[asyncio.Task[None]] = set()
        self._handed_out: dict[str, list[str]] = {}  # job -> requests it answered in this process

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        await self.aclose(finished=exc_type is None)

    async def aclose(self, *, finished: bool = True) -> None:
        """Stop polling (submitted jobs go on at the provider; a resume picks them up) and close.

        `finished`: every unit that was handed an answer has concluded (saved, or failed for good),
        so those answers are released and a resume asks its failed units afresh. After an
        interrupt they are kept: a resume replays them to the units it finishes, paying nothing."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        closed = UnitFailed("interrupted", "the Batch API queue closed before this request was answered")
        self._fail(list(self._waiting), closed)  # nothing would answer them now
        if finished:
            for job, custom_ids in self._handed_out.items():
                self.record.release(job, custom_ids)
            self._handed_out.clear()
        if self._sdk is not None:
            await self._sdk.close()
            self._sdk = None

    @property
    def in_flight(self) -> int:
        """Requests handed to jobs (or about to be) and not answered yet, for progress."""
        return len(self._waiting)

    def redact(self, text: str) -> str:
        return text.replace(self._secret, "[redacted]") if self._secret else text

    # -- asking ---------------------------------------------------------------------------

    async def ask(self, custom_id: str, body: dict[str, Any]) -> Answer:
        """The answer to one chat-completions request: from a job already submitted for it (this
        process's or a previous one's), else from the next job submitted."""
        answer = await self._answer(custom_id, body)
        if answer.usable:
            self._handed_out.setdefault(answer.job, []).append(custom_id)
        return answer

    async def _answer(self, custom_id: str, body: dict[str, Any]) -> Answer:
        if custom_id in self._answers:
            return self._answers.pop(custom_id)
        if custom_id in self._waiting:  # asked twice at once: one request, one answer for both
            return await asyncio.shield(self._waiting[custom_id])
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._waiting[custom_id] = future
        job = self.record.job_of(custom_id)
        if job is None:
            self._queue(custom_id, body)
        elif job in self._ended:  # asked again after the job's answers were handed out
            answer = parse_output(job, self.record.answers(job) or "").get(custom_id)
            future.set_result(
                answer or Answer(job, None, error=self._ended[job] or f"batch job {job} returned no answer")
            )
        elif job not in self._following:
            self._following.add(job)
            self._spawn(self._follow(job))
        try:
            return await future
        finally:
            self._waiting.pop(custom_id, None)

    def _queue(self, custom_id: str, body: dict[str, Any]) -> None:
        line = json_text({"custom_id": custom_id, "method": "POST", "url": ENDPOINT, "body": _wire_body(body)})
        size = len(line.encode("utf-8")) + 1
        model = str(body.get("model"))
        if self._pending.get(model) and self._pending_bytes[model] + size > MAX_BYTES:
            self._submit_pending(model)
        self._pending.setdefault(model, []).append((custom_id, line))
        self._pending_bytes[model] = self._pending_bytes.get(model, 0) + size
        self._last_arrival = time.monotonic()
        if len(self._pending[model]) >= self.max_requests:
            self._submit_pending(model)
        elif self._flusher is None or self._flusher.done():
            self._flusher = self._spawn(self._submit_when_settled())

    async def _submit_when_settled(self) -> None:
        """Wait until no request has arrived for `settle` seconds: the stage of every article is in."""
        while (wait := self._last_arrival + self.polling.settle - time.monotonic()) > 0:
            await asyncio.sleep(wait)
        for model in list(self._pending):
            self._submit_pending(model)

    def _submit_pending(self, model: str) -> None:
        requests = self._pending.pop(model, [])
        self._pending_bytes.pop(model, None)
        if requests:
            self._spawn(self._submit(requests))

    def _spawn(self, work: Awaitable[None]) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[None]) -> None:
        """A job's task ended. One that broke (a bug) must not leave the units waiting forever:
        each of them raises the error."""
        self._tasks.discard(task)
        error = None if task.cancelled() else task.exception()
        if error is not None:
            for future in self._waiting.values():
                if not future.done():
                    future.set_exception(error)

    # -- jobs -----------------------------------------------------------------------------

    async def _submit(self, requests: list[tuple[str, str]]) -> None:
        custom_ids = [custom_id for custom_id, _ in requests]
        try:
            job = await self._create(requests)
        except CounterpointError as failure:
            self._fail(custom_ids, failure)
            return
        self._following.add(job)
        await self._follow(job)

    async def _create(self, requests: list[tuple[str, str]]) -> str:
        """Upload the requests and start a job on them; recorded before anything else happens."""
        sdk = self._client()
        data = "".join(line + "\n" for _, line in requests).encode("utf-8")
        upload = await self._api(
            "uploading a batch input file",
            lambda: sdk.files.create(file=("counterpoint-batch.jsonl", data, "application/jsonl"), purpose="batch"),
            first_call=True,
        )
        job = await self._api(
            "creating a batch job",
            lambda: sdk.batches.create(input_file_id=upload.id, endpoint=ENDPOINT, completion_window=COMPLETION_WINDOW),
        )
        job_id = _id_of(job, "creating a batch job", self.host)
        self.record.add(
            job_id, _id_of(upload, "uploading a batch input file", self.host), [c for c, _ in requests], utc_now()
        )
        self.emit("batch_job", job=job_id, status=job.status, total=len(requests), completed=0, failed=0)
        return job_id

    async def _follow(self, job: str) -> None:
        """Wait for the job to end (unless a previous process already downloaded its answers),
        keep its answers, and hand each request its line."""
        try:
            text = self.record.answers(job)
            reason = self.record.reason(job)
            if text is None:
                batch = await self._poll(job)
                reason = _job_failure(batch, self.redact)
                text = await self._download(batch)
                self.record.keep_answers(job, text)
                self.record.set_status(job, batch.status, reason)
        except CounterpointError as failure:  # the job itself goes on: a resume picks it up
            self._following.discard(job)
            self._fail(self.record.requests(job), failure)
            return
        self._deliver(job, parse_output(job, text), reason)

    async def _poll(self, job: str) -> Any:
        sdk = self._client()
        seen: dict[str, Any] | None = None
        waits = self.polling.waits()
        while True:
            batch = await self._api(f"checking batch job {job}", lambda: sdk.batches.retrieve(job))
            counts = batch.request_counts
            progress = {
                "status": batch.status,
                "total": getattr(counts, "total", None),
                "completed": getattr(counts, "completed", None),
                "failed": getattr(counts, "failed", None),
            }
            if progress != seen:
                seen = progress
                self.emit("batch_job", job=job, **progress)
            if batch.status in FINAL_STATUSES:
                return batch
            await asyncio.sleep(next(waits))

    async def _download(self, batch: Any) -> str:
        sdk = self._client()
        parts = []
        for file_id in (batch.output_file_id, batch.error_file_id):
            if file_id:
                parts.append(await self._file_text(sdk, file_id))
        return "".join(parts)

    async def _file_text(self, sdk: Any, file_id: str) -> str:
        content = await self._api(f"downloading batch file {file_id}", lambda: sdk.files.content(file_id))
        return str(content.text).rstrip("\n") + "\n"

    def _deliver(self, job: str, answers: dict[str, Answer], reason: str | None) -> None:
        """Each request of the job gets its line; those without a usable one are released, so a
        resumed process asks them again."""
        requests = self.record.requests(job)
        missing = reason or f"batch job {job} returned no answer for this request"
        self._ended[job] = reason
        self._following.discard(job)
        self.record.release(job, [c for c in requests if not (c in answers and answers[c].usable)])
        for custom_id in requests:
            answer = answers.get(custom_id) or Answer(job, None, error=missing)
            future = self._waiting.pop(custom_id, None)
            if future is not None and not future.done():
                future.set_result(answer)
            elif answer.usable:
                self._answers[custom_id] = answer

    def _fail(self, custom_ids: list[str], failure: CounterpointError) -> None:
        for custom_id in custom_ids:
            future = self._waiting.pop(custom_id, None)
            if future is not None and not future.done():
                future.set_exception(failure)

    # -- talking to the endpoint ------------------------------------------------------------

    def _client(self) -> Any:
        if self._sdk is None:
            from openai import AsyncOpenAI

            self._sdk = AsyncOpenAI(**self._sdk_options, max_retries=0)  # retries are ours (tenacity)
        return self._sdk

    async def _api(self, what: str, call: Callable[[], Awaitable[T]], *, first_call: bool = False) -> T:
        """One Batch API call, retried on transport failures; any failure becomes a one-line error.
        A 404 to the `first_call` of a job means the endpoint has no Batch API."""
        import openai

        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.attempts),
            wait=wait_random_exponential(multiplier=self.polling.first, max=self.polling.longest),
            retry=retry_if_exception(_transient),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await call()
        except openai.APIStatusError as exc:
            raise self._refused(what, exc, first_call) from None
        except (openai.APITimeoutError, openai.APIConnectionError) as exc:
            kind = "timeout" if isinstance(exc, openai.APITimeoutError) else "connection error"
            raise UnitFailed(
                "transport", f"{what} at {self.host} failed: {kind} (gave up after {self.attempts} attempts)"
            ) from None
        except openai.OpenAIError as exc:  # an answer the SDK could not read
            raise UnitFailed("malformed", f"{what} at {self.host} failed: {type(exc).__name__}") from None
        raise AssertionError("unreachable: tenacity either returns or reraises")

    def _refused(self, what: str, exc: Any, first_call: bool) -> CounterpointError:
        status = exc.status_code
        if status in (401, 403):
            return AuthError(
                f"the endpoint at {self.host} refused the credentials (HTTP {status}); check OPENAI_API_KEY"
            )
        if status == 404 and first_call:
            return NoBatchAPI(
                f"{what} at {self.host} failed (HTTP 404): the endpoint has no Batch API (/v1/files and "
                "/v1/batches); run without --batch-api"
            )
        if retryable_status(status):
            return UnitFailed(
                "transport", f"{what} at {self.host} failed: HTTP {status} (gave up after {self.attempts} attempts)"
            )
        detail = self.redact(clip(_error_message(getattr(exc, "body", None)) or "no detail", 200))
        return UnitFailed("bad_request", f"{what} at {self.host} failed (HTTP {status}): {detail}")


class BatchAPIClient(OpenAIClient):
    """A model client whose every request is answered by a Batch API job (see BatchJobs).

    Transport retries, response-format negotiation and re-asks work as for `OpenAIClient`; a retry
    or a re-ask is a new request, in a later job. Calls are priced at the batch tier.
    """

    price_tier = "batch"

    def __init__(self, jobs: BatchJobs, *, run_id: str, **kwargs: Any) -> None:
        super().__init__(base_url=jobs.given_base_url, api_key=None, **kwargs)
        self.jobs = jobs
        self.run_id = run_id
        self._asked: dict[str, int] = {}

    def custom_id(self, ctx: CallContext, body: dict[str, Any]) -> str:
        """Run id, unit, the unit's request number in this process and a digest of the request:
        the same in a resumed process that asks the same thing, so its earlier job answers it."""
        number = self._asked[ctx.unit] = self._asked.get(ctx.unit, 0) + 1
        digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode("utf-8", "backslashreplace")).hexdigest()
        return f"{self.run_id}:{ctx.unit}:{number}:{digest[:12]}"

    async def _request(self, ctx: CallContext, body: dict[str, Any]) -> Reply:
        if self._fatal is not None:  # another unit stopped the run: ask nothing new
            raise self._fatal
        self.charge_call()
        self.request_sent.set()
        started = time.perf_counter()
        answer = await self.jobs.ask(self.custom_id(ctx, body), body)
        latency = time.perf_counter() - started
        if answer.usable:
            return reply_from(_completion(answer.body), latency)
        failure = self._line_failure(answer)
        if isinstance(failure, ModelError):
            self._fatal = failure
        outcome = f"http_{answer.status}" if answer.status is not None else "batch_error"
        self.record(ctx, outcome=outcome, latency_s=round(latency, 4), error=str(failure), batch_job=answer.job)
        raise failure

    def _line_failure(self, answer: Answer) -> Exception:
        """What the normal path makes of the same failure: an error status is classified as an HTTP
        answer would be; a request the job never ran (it failed or expired) fails the unit."""
        if answer.status is not None and answer.error is None:
            return self.classify_status(answer.status, clip(_error_message(answer.body) or "no detail", 300), {})
        return UnitFailed("transport", self._redact(clip(answer.error or "the batch job gave no answer", 300)))

    def _redact(self, text: str) -> str:
        return super()._redact(self.jobs.redact(text))


def batch_api_client(
    jobs: BatchJobs,
    *,
    settings: Settings,
    run_id: str,
    max_calls: int | None = None,
    max_retries: int = defaults.MAX_RETRIES,
    cache: ResponseCache | None = None,
) -> BatchAPIClient:
    """The client for one article of a corpus run through `jobs` (what `api.make_client` is for a
    run over HTTP). `run_id` (the article's run directory's id) makes its requests' custom ids;
    `api.run_brief`/`api.resume_brief` connect its attempt log to the run's record."""
    return BatchAPIClient(
        jobs,
        run_id=run_id,
        model=settings.model,
        transport_attempts=max_retries + 1,
        response_format=settings.response_format,
        cache=cache,
        max_calls=max_calls if max_calls is not None else defaults.max_calls(settings.max_claims, settings.reasks),
        sampling=SamplingSettings(temperature=settings.temperature, extra_body=settings.extra_body),
    )


def parse_output(job: str, text: str) -> dict[str, Answer]:
    """A job's output and error lines by custom_id. A line that cannot be read answers nothing
    (its request is told the job returned no answer for it)."""
    answers: dict[str, Answer] = {}
    for raw in text.splitlines():
        try:
            line = json.loads(raw) if raw.strip() else None
        except ValueError:
            continue
        if not isinstance(line, dict) or not isinstance(line.get("custom_id"), str):
            continue
        response = line["response"] if isinstance(line.get("response"), dict) else {}
        status = response.get("status_code")
        error = line.get("error")
        answers[line["custom_id"]] = Answer(
            job,
            status if isinstance(status, int) and not isinstance(status, bool) else None,
            response.get("body"),
            None if error is None and response else _line_error(job, error),
        )
    return answers


def _line_error(job: str, error: Any) -> str:
    message = _error_message({"error": error}) or "no answer"
    return f"batch job {job} did not run this request: {message}"


def _error_message(body: Any) -> str | None:
    """`message` (with `code`) of an OpenAI error body {"error": {...}} or of the error itself."""
    error = body.get("error", body) if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return error if isinstance(error, str) else None
    message, code = error.get("message"), error.get("code")
    text = " ".join(str(message).split()) if message else None
    return f"{code}: {text}" if code and text else text or (str(code) if code else None)


def _job_failure(batch: Any, redact: Callable[[str], str]) -> str | None:
    """Why a job that ended other than `completed` answered what it did not, in one line."""
    if batch.status == "completed":
        return None
    errors = getattr(getattr(batch, "errors", None), "data", None) or []
    first = errors[0] if errors else None
    detail = " ".join(str(getattr(first, "message", "") or "").split()) if first else ""
    line = getattr(first, "line", None) if first else None
    where = f" (input line {line})" if isinstance(line, int) else ""
    why = f": {clip(redact(detail), 200)}{where}" if detail else ""
    return f"batch job {batch.id} {batch.status}{why}"


def _id_of(item: Any, what: str, host: str) -> str:
    """The id of what the endpoint says it made: an answer without one made nothing usable."""
    item_id = getattr(item, "id", None)
    if not isinstance(item_id, str) or not item_id:
        raise UnitFailed("malformed", f"{what} at {host} failed: the answer holds no id")
    return item_id


def _completion(body: Any) -> Any:
    """The SDK's chat-completion object for a line's body, built as the SDK builds an HTTP answer's
    (without validating: `reply_from` checks every field it uses)."""
    from openai.types.chat import ChatCompletion

    return ChatCompletion.construct(**body) if isinstance(body, dict) else body


def _wire_body(body: dict[str, Any]) -> dict[str, Any]:
    """The request as it goes on the wire: `extra_body` (sampling options the SDK would merge into
    the JSON) merged in."""
    extra = body.get("extra_body") or {}
    return {**{key: value for key, value in body.items() if key != "extra_body"}, **extra}


def _transient(exc: BaseException) -> bool:
    import openai

    if isinstance(exc, openai.APIStatusError):
        return retryable_status(exc.status_code)
    return isinstance(exc, (openai.APITimeoutError, openai.APIConnectionError))
