"""The one model adapter: chat completions through the openai SDK, and the structured-output loop.

`ModelClient.send` makes one logical request (transport retries, response-format negotiation,
call budget, cache). `structured` turns replies into validated data: parse, schema, semantic
checks, re-ask with the validator's messages. Neither knows about claims or briefs.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import math
import random
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt

from . import defaults, prompts, schemas
from .endpoints import DEFAULT_BASE_URL, Endpoint
from .errors import AuthError, ModelError, ModelNotFound, UnitFailed
from .runs import Attempt
from .throttle import Slots, Throttle
from .usage import Usage, clamp_usage

if TYPE_CHECKING:
    from .cache import ResponseCache

RESPONSE_FORMATS = ("json_schema", "json_object", "prompt")
MAX_RETRY_AFTER = 60.0
# A reply longer than max_tokens × this many characters cannot be an honest answer (a token is ~4
# characters of English, rarely more than 8 even for whitespace runs) and is refused unparsed.
MAX_CHARS_PER_TOKEN = 16
MAX_MESSAGE_CHARS = 300  # each validator message, as re-asked, logged and stored in the brief
ECHO_CHARS = 8000  # how much of a bad reply a re-ask quotes back
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_KEY_LIKE = re.compile(r"\b(?:sk|rk|pk)-[A-Za-z0-9_*.-]{6,}")
_UNSUPPORTED_FORMAT = re.compile(r"response_format|json_schema|json_object|structured output", re.IGNORECASE)

Message = dict[str, str]
Choices = Mapping[str, Sequence[Any]]  # schema path -> allowed values, see schemas.narrowed
AttemptLog = Callable[[Attempt], None]
MAX_FINISH_REASON = 64  # "stop", "length", "content_filter"...: a longer one is not an answer's


@dataclass(frozen=True)
class Reply:
    """What one chat completion came back with, reduced to what the pipeline needs."""

    content: str | None
    finish_reason: str | None = "stop"
    refusal: str | None = None
    usage: Usage = field(default_factory=Usage)
    no_choices: bool = False
    cache_key: str | None = None
    cache_hit: bool = False
    latency_s: float = 0.0
    malformed: str | None = None  # why the HTTP answer is not a usable chat completion
    usage_clamped: bool = False  # the endpoint's token counts were not non-negative integers


@dataclass(frozen=True)
class CallContext:
    """Which unit of work a request belongs to, for the log, the cache and the fake server."""

    stage: str
    unit: str
    nonce: str = ""
    model: str | None = None  # the stage's model (--rebut-model...); None: the client's

    def model_of(self, client: ModelClient) -> str:
        return self.model or client.model


@dataclass(frozen=True)
class SamplingSettings:
    temperature: float | None = None
    extra_body: dict[str, Any] = field(default_factory=dict)


class ServerWatch(Protocol):
    """A model server counterpoint runs itself (llama.cpp, see local.LocalServer)."""

    def accepts(self, schema: dict[str, Any]) -> bool:
        """Whether the server can turn the schema into a decoding grammar."""

    def failure(self) -> str | None:
        """After a dropped connection: why no later attempt can succeed (its own log line), or None."""


# By host:port. A client is made from a base URL alone, after the server started (api.local_endpoint).
_WATCHED: dict[str, ServerWatch] = {}


@contextmanager
def watching(base_url: str, server: ServerWatch) -> Iterator[None]:
    """Clients made for `base_url` in this block consult `server` (see ServerWatch)."""
    host = urlsplit(base_url).netloc
    _WATCHED[host] = server
    try:
        yield
    finally:
        _WATCHED.pop(host, None)


class ModelClient:
    """Shared state of a model client: the attempt log, the call budget and the format in use.

    Subclasses implement `_request` (one attempt: an HTTP round-trip, or a fake); `send` retries
    the attempts that fail in transport (see `transport_failure`), then fails the unit.
    """

    model: str = defaults.MODEL
    endpoint_host: str = "fake"
    endpoint: Endpoint | None = None  # None for an injected fake: nothing leaves the process
    server: ServerWatch | None = None
    price_tier: str = "standard"  # which of pricing.TIER_FACTORS the provider bills this client's calls at
    retry_backoff = 0.5  # seconds: the first transport retry waits up to twice this, doubling after

    def __init__(
        self,
        *,
        response_format: str = defaults.RESPONSE_FORMAT,
        max_calls: int | None = None,
        log: AttemptLog | None = None,
        cache: ResponseCache | None = None,
        sampling: SamplingSettings | None = None,
        constrain_choices: bool = False,
        concurrency: int = defaults.CONCURRENCY,
        transport_attempts: int = defaults.MAX_RETRIES + 1,
    ) -> None:
        self.requested_format = response_format
        self.transport_attempts = transport_attempts
        # Send stages' allowed values (article sentences as quotes, known ids) as schema enums:
        # worth it where the server turns the schema into a decoding grammar (llama.cpp).
        self.constrain_choices = constrain_choices
        self.response_format = "json_schema" if response_format == "auto" else response_format
        self.max_calls = max_calls
        self.calls_made = 0
        self.log: AttemptLog = log or (lambda attempt: None)
        self.cache = cache
        self.sampling = sampling or SamplingSettings()
        self._attempts: dict[str, int] = {}
        # At most `concurrency` requests in flight at once. A slot is held for one HTTP attempt only,
        # so a unit waiting out a back-off or preparing a re-ask never holds up the others.
        self._slots = Slots(concurrency)
        # Set when the first request goes out: from then on the process mostly waits for the endpoint.
        self.request_sent = asyncio.Event()
        self.running = False  # writing a brief (api.agenerate_brief): a client logs to one record at a time

    # -- request building -------------------------------------------------------------------

    def build_request(
        self,
        messages: Sequence[Message],
        schema_name: str,
        max_tokens: int,
        response_format: str,
        choices: Choices | None = None,
        model: str | None = None,
    ) -> dict[str, Any]:
        """The exact chat-completions request body for a response-format mode (`model`: the client's if None)."""
        schema = schemas.load(schema_name)
        if choices and self.constrain_choices:
            narrowed = schemas.narrowed(schema_name, choices)
            # A server that cannot parse the narrowed grammar gets the file's schema: quotes are
            # still checked here, and it would crash on the request.
            if self.server is None or self.server.accepts(narrowed):
                schema = narrowed
        body: dict[str, Any] = {"model": model or self.model, "messages": list(messages), "max_tokens": max_tokens}
        if response_format == "json_schema":
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": schema_name, "schema": schema, "strict": True},
            }
        elif response_format == "json_object":
            # llama.cpp's server constrains decoding to an attached schema in this form.
            body["response_format"] = {"type": "json_object", "schema": schema}
        else:
            instruction = prompts.render("schema_in_prompt", schema=json.dumps(schema, indent=1))
            body["messages"] = [*messages, {"role": "user", "content": instruction}]
        if self.sampling.temperature is not None:
            body["temperature"] = self.sampling.temperature
        if self.sampling.extra_body:
            body["extra_body"] = dict(self.sampling.extra_body)
        return body

    # -- one logical request ----------------------------------------------------------------

    async def send(
        self,
        ctx: CallContext,
        messages: Sequence[Message],
        schema_name: str,
        max_tokens: int,
        choices: Choices | None = None,
    ) -> Reply:
        """One request, negotiated down the response formats when the server rejects one."""
        while True:
            fmt = self.response_format
            body = self.build_request(messages, schema_name, max_tokens, fmt, choices, ctx.model)
            key = self.cache.key(body, mask=ctx.nonce, endpoint=self.answered_by) if self.cache else None
            if self.cache and key:
                cached = self.cache.get(key, endpoint=self.answered_by)
                if cached is not None:
                    return Reply(**{**cached, "usage": Usage(), "cache_key": key, "cache_hit": True})
            try:
                reply = await self._transported(ctx, body)
            except _FormatRejected as exc:
                self._downgrade(fmt, str(exc))
                continue
            return replace(reply, cache_key=key)

    def _downgrade(self, rejected: str, why: str) -> None:
        """Step down json_schema → json_object → prompt; remembered for the rest of the run."""
        if self.requested_format != "auto" or rejected == "prompt":
            raise UnitFailed("bad_request", f"the endpoint rejected response format {rejected}: {why}")
        if self.response_format == rejected:  # another unit may have stepped down already
            self.response_format = RESPONSE_FORMATS[RESPONSE_FORMATS.index(rejected) + 1]

    def charge_call(self) -> None:
        """Count one HTTP call against --max-calls, or fail the unit when the budget is spent."""
        if self.max_calls is not None and self.calls_made >= self.max_calls:
            raise UnitFailed("budget", f"the --max-calls budget of {self.max_calls} model calls is used up")
        self.calls_made += 1

    def record(self, ctx: CallContext, *, outcome: str, reply: Reply | None = None, **extra: Any) -> None:
        """Log one attempt (to the run's calls.jsonl, see runs.Attempt)."""
        attempt = self._attempts.get(ctx.unit, 0) + 1
        self._attempts[ctx.unit] = attempt
        self.log(
            Attempt(
                stage=ctx.stage,
                unit=ctx.unit,
                attempt=attempt,
                model=ctx.model_of(self),
                outcome=outcome,
                response_format=extra.pop("response_format", self.response_format),
                latency_s=round(reply.latency_s, 4) if reply else extra.pop("latency_s", 0.0),
                usage=reply.usage if reply else Usage(),
                cache_hit=bool(reply and reply.cache_hit),
                finish_reason=reply.finish_reason if reply else None,
                raw=reply.content if reply else None,
                usage_clamped=bool(reply and reply.usage_clamped),
                extra=extra,
            )
        )

    def remember(self, reply: Reply, model: str | None = None) -> None:
        """Cache a reply once it has passed validation, so reruns reuse only good answers."""
        if self.cache and reply.cache_key and not reply.cache_hit:
            self.cache.put(
                reply.cache_key,
                {
                    "content": reply.content,
                    "finish_reason": reply.finish_reason,
                    "refusal": reply.refusal,
                },
                endpoint=self.answered_by,
                model=model or self.model,
            )

    @property
    def answered_by(self) -> str:
        """The endpoint a reply comes from, for the cache: one endpoint's answers are never another's."""
        return self.endpoint.identity if self.endpoint else self.endpoint_host

    async def _transported(self, ctx: CallContext, body: dict[str, Any]) -> Reply:
        """`_request` within the transport retries: a timeout, dropped connection, 429 or 5xx is
        tried again (after the server's Retry-After, else a growing random wait), then fails the unit."""
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.transport_attempts),
            wait=self._backoff,
            retry=retry_if_exception_type(_Retryable),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._attempt(ctx, body)
        except _Retryable as exc:
            raise UnitFailed("transport", f"{exc} (gave up after {self.transport_attempts} attempts)") from None
        raise AssertionError("unreachable: tenacity either returns or reraises")

    async def _attempt(self, ctx: CallContext, body: dict[str, Any]) -> Reply:
        """One attempt. Whatever a transport raises (an injected client's own, too) is logged and retried."""
        started = time.perf_counter()
        try:
            return await self._request(ctx, body)
        except Exception as exc:
            kind = transport_failure(exc)
            if kind is None:
                raise
            self.record(ctx, outcome=kind, latency_s=round(time.perf_counter() - started, 4), error=type(exc).__name__)
            raise _Retryable(f"{kind.replace('_', ' ')} talking to {self.endpoint_host}") from None

    def _backoff(self, retry_state: Any) -> float:
        """Honour the server's Retry-After; otherwise exponential back-off with full jitter."""
        exc = retry_state.outcome.exception()
        if isinstance(exc, _Retryable) and exc.retry_after is not None:
            return exc.retry_after
        return random.uniform(0, min(20.0, self.retry_backoff * 2**retry_state.attempt_number))

    async def _request(self, ctx: CallContext, body: dict[str, Any]) -> Reply:
        raise NotImplementedError

    async def aclose(self) -> None:
        """Release connections; nothing to do for fakes."""


class _FormatRejected(Exception):
    """The server said it does not support the response format we sent."""


class _Retryable(Exception):
    """A transport failure worth another try; carries the server's Retry-After if any."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


# Network libraries' errors that are not OSErrors, as (top-level module, class) anywhere in an
# exception's class hierarchy: matched by name, so none of them is imported to check.
_TRANSPORT_ERRORS = {
    ("httpx", "TransportError"),
    ("httpx2", "TransportError"),  # what the openai SDK is built on
    ("httpcore", "NetworkError"),
    ("httpcore", "TimeoutException"),
    ("httpcore", "ProtocolError"),
    ("h11", "ProtocolError"),
    ("openai", "APIConnectionError"),
    ("aiohttp", "ClientConnectionError"),
}


def transport_failure(exc: BaseException) -> str | None:
    """'timeout' or 'connection_error' when `exc` is what a transport raises: an OSError (such as
    ConnectionError or TimeoutError), EOFError, or a network library's connection or timeout error.
    None for anything else, which is a bug to raise, not a failure to retry."""
    classes = {(cls.__module__.partition(".")[0], cls.__name__) for cls in type(exc).__mro__}
    if not (isinstance(exc, (OSError, EOFError)) or classes & _TRANSPORT_ERRORS):
        return None
    timed_out = isinstance(exc, TimeoutError) or any("Timeout" in name for _, name in classes)
    return "timeout" if timed_out else "connection_error"


class OpenAIClient(ModelClient):
    """Chat completions over HTTP through the openai SDK (any OpenAI-compatible endpoint)."""

    def __init__(
        self,
        *,
        model: str,
        base_url: str | None,
        api_key: str | None,
        timeout: float = defaults.TIMEOUT,
        local_model: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model = model
        self.endpoint = Endpoint.of(base_url, local_model)
        base_url = (base_url or DEFAULT_BASE_URL).strip()  # as checked by Endpoint.of
        self.endpoint_host = urlsplit(base_url).netloc.rsplit("@", 1)[-1]
        self.server = _WATCHED.get(self.endpoint_host)
        self._secret = api_key or ""
        self.timeout = timeout
        self._sdk_options: dict[str, Any] = {"api_key": api_key or "no-key", "base_url": base_url, "timeout": timeout}
        self._sdk: Any = None
        self._throttle = Throttle()  # one 429 slows every concurrent unit
        self._fatal: ModelError | None = None  # once the endpoint refuses the run, no new call starts
        self._transport_owner: OpenAIClient | None = None

    def share_transport(self, owner: OpenAIClient) -> None:
        """Send through `owner`'s concurrency slots, 429 back-off and HTTP connections. The articles of
        a batch each keep their own log, budget and record; the endpoint sees one limit and one back-off."""
        self._slots, self._throttle, self._transport_owner = owner._slots, owner._throttle, owner

    @property
    def calls_in_flight(self) -> int:
        """Requests holding a concurrency slot now (with a shared transport: all its clients')."""
        return self._slots.in_use

    def _client(self) -> Any:
        """The SDK client, made on the first real request: importing openai costs most of a second,
        which `--help`, `runs` and a rerun answered entirely from the cache never pay."""
        if self._transport_owner is not None:  # its connections; closed by it, not here
            return self._transport_owner._client()
        if self._sdk is None:
            from openai import AsyncOpenAI

            # The SDK's own retries are off: one tenacity policy owns transport retries.
            self._sdk = AsyncOpenAI(**self._sdk_options, max_retries=0)
        return self._sdk

    async def aclose(self) -> None:
        if self._sdk is not None:
            await self._sdk.close()

    async def _request(self, ctx: CallContext, body: dict[str, Any]) -> Reply:
        """One HTTP attempt, in a concurrency slot and behind the shared 429 back-off."""
        async with self._slots:
            probe = await self._throttle.acquire()
            try:
                if self._fatal is not None:  # another unit stopped the run: start no new call
                    raise self._fatal
                return await self._post(ctx, body)
            finally:
                if probe:
                    self._throttle.release()

    async def _post(self, ctx: CallContext, body: dict[str, Any]) -> Reply:
        import openai

        self.charge_call()
        started = time.perf_counter()
        sdk = self._client()
        self.request_sent.set()
        try:
            # httpx's timeout bounds each read; this bounds the whole call, however slowly the body comes.
            async with asyncio.timeout(self.timeout):
                raw = await sdk.chat.completions.with_raw_response.create(**body)
        except openai.APIStatusError as exc:
            latency = time.perf_counter() - started
            failure = self._classify(exc, body["model"])
            if exc.status_code == 429:
                retry_after = failure.retry_after if isinstance(failure, _Retryable) else None
                self._throttle.rate_limited(retry_after if retry_after is not None else 1.0)
            else:
                self._throttle.answered()
            if isinstance(failure, ModelError):
                self._fatal = failure
            self.record(ctx, outcome=f"http_{exc.status_code}", latency_s=round(latency, 4), error=str(failure))
            raise failure from None
        except (TimeoutError, openai.APITimeoutError, openai.APIConnectionError) as exc:
            latency = time.perf_counter() - started
            kind = "timeout" if isinstance(exc, (TimeoutError, openai.APITimeoutError)) else "connection_error"
            self.record(ctx, outcome=kind, latency_s=round(latency, 4), error=type(exc).__name__)
            await self._raise_if_server_down()
            raise _Retryable(f"{kind.replace('_', ' ')} talking to {self.endpoint_host}") from None
        self._throttle.answered()
        return _reply_from_http(raw, time.perf_counter() - started)

    async def _raise_if_server_down(self) -> None:
        """A server counterpoint runs can tell a final failure (it crashed, or logged a grammar it
        cannot parse) from a transient one: retrying a final one only repeats the failure."""
        failure = await asyncio.to_thread(self.server.failure) if self.server else None
        if failure:
            raise UnitFailed("transport", failure) from None

    def _classify(self, exc: Any, model: str) -> Exception:
        """Map an HTTP error to: retry, step down the format, fail the unit, or stop the run."""
        return self.classify_status(exc.status_code, _error_detail(exc), exc.response.headers, model)

    def classify_status(
        self, status: int, detail: str, headers: Mapping[str, str], model: str | None = None
    ) -> Exception:
        """`_classify` for a status and the error's message however they came (an HTTP answer, or
        a line of a Batch API output file); `model` is the one the request named (default the
        client's). The message is never shown whole: some servers echo part of the key in it."""
        if status in (401, 403):
            return AuthError(
                f"the endpoint at {self.endpoint_host} refused the credentials (HTTP {status}); check OPENAI_API_KEY"
            )
        if status == 404:
            return ModelNotFound(
                f"model {model or self.model!r} was not found at {self.endpoint_host} (HTTP 404); "
                "check --model and --base-url"
            )
        if retryable_status(status):
            return _Retryable(f"HTTP {status} from {self.endpoint_host}", _retry_after_seconds(headers))
        detail = self._redact(detail)
        if status == 400 and self.response_format != "prompt" and _UNSUPPORTED_FORMAT.search(detail):
            return _FormatRejected(detail)
        return UnitFailed("bad_request", f"the endpoint rejected the request (HTTP {status}): {detail}")

    def _redact(self, text: str) -> str:
        """Servers sometimes echo the key (or part of it) in an error; never pass that on."""
        if self._secret:
            text = text.replace(self._secret, "[redacted]")
        return _KEY_LIKE.sub("[redacted]", text)


def _reply_from_http(raw: Any, latency: float) -> Reply:
    """The reply in an HTTP 200 answer; an answer that is not a chat completion is `malformed`."""
    try:
        completion = raw.parse()
    except (ValueError, RecursionError) as exc:
        return _malformed(f"the endpoint's answer is not usable JSON ({_json_problem(exc)})", latency)
    if isinstance(completion, str):  # the SDK hands back the text of a body that is not JSON
        content_type = raw.headers.get("content-type") or "no content type"
        return _malformed(
            f"the endpoint answered HTTP 200 with {clip(content_type, 60)}, not a JSON chat completion", latency
        )
    return reply_from(completion, latency)


def reply_from(completion: Any, latency: float) -> Reply:
    """A chat completion (the SDK's object) as a Reply. The SDK builds its objects without
    validating them, so every field used is checked here."""
    usage_obj = getattr(completion, "usage", None)
    details = getattr(usage_obj, "prompt_tokens_details", None)
    plain = usage_obj is None or isinstance(usage_obj, (str, int, float, list))  # not the SDK's object
    usage, clamped = clamp_usage(
        usage_obj
        if plain
        else {
            "prompt_tokens": getattr(usage_obj, "prompt_tokens", None),
            "completion_tokens": getattr(usage_obj, "completion_tokens", None),
            "cached_tokens": getattr(details, "cached_tokens", None),
        }
    )
    choices = getattr(completion, "choices", None)
    if not isinstance(choices, list):
        return _malformed(f"the answer's choices are {_kind_of(choices)}, not a list", latency, usage)
    if not choices:
        return Reply(
            content=None, finish_reason=None, usage=usage, no_choices=True, latency_s=latency, usage_clamped=clamped
        )
    message = getattr(choices[0], "message", None)
    if message is None or isinstance(message, (str, int, float, list)):  # not the SDK's message object
        return _malformed("the answer's first choice holds no message", latency, usage)
    fields = {
        "content": getattr(message, "content", None),
        "refusal": getattr(message, "refusal", None),
        "finish_reason": getattr(choices[0], "finish_reason", None),
    }
    for name, value in fields.items():
        if value is not None and not isinstance(value, str):
            return _malformed(f"the answer's {name} is {_kind_of(value)}, not a string", latency, usage)
    if len(fields["finish_reason"] or "") > MAX_FINISH_REASON:
        return _malformed("the answer's finish_reason is not a reason (too long)", latency, usage)
    return Reply(
        content=fields["content"],
        finish_reason=fields["finish_reason"],
        refusal=fields["refusal"],
        usage=usage,
        latency_s=latency,
        usage_clamped=clamped,
    )


def _malformed(why: str, latency: float, usage: Usage | None = None) -> Reply:
    return Reply(content=None, finish_reason=None, malformed=why, latency_s=latency, usage=usage or Usage())


def _kind_of(value: Any) -> str:
    names = {
        dict: "an object",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        type(None): "missing",
    }
    return names.get(type(value), "of the wrong type")


def clip(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """About `limit` characters of `text`: its head and its tail (where a validator says what is
    wrong with the value it quoted), and how much was left out between them."""
    if len(text) <= limit:
        return text
    tail = limit // 4
    return f"{text[: limit - tail]} … [{len(text) - limit:,} characters left out] … {text[-tail:]}"


def printable(text: str) -> str:
    """`text` with any lone surrogate written as its escape, so it can be stored as UTF-8."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _error_detail(exc: Any) -> str:
    body = exc.body if isinstance(exc.body, dict) else {}
    message = body.get("message") or (body.get("error") or {}).get("message") if body else None
    return re.sub(r"\s+", " ", str(message or exc.response.reason_phrase or "no detail"))[:300]


def retryable_status(status: int) -> bool:
    """Statuses worth another try (as the SDK's own retries see them): timeout, conflict, rate
    limit, server errors."""
    return status in (408, 409, 429) or status >= 500


def _retry_after_seconds(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """The wait a server asked for: `retry-after-ms`, else `Retry-After` in seconds or as an HTTP
    date. A value that does not parse is skipped, so a malformed one never hides a valid other."""
    millis, value = headers.get("retry-after-ms"), headers.get("retry-after")
    seconds = _number(millis, 0.001) if millis is not None else None
    if seconds is None and value is not None:
        seconds = _number(value, 1.0)
        if seconds is None:
            seconds = _until(value, now)
    return None if seconds is None else min(max(seconds, 0.0), MAX_RETRY_AFTER)


def _number(value: str, scale: float) -> float | None:
    try:
        seconds = float(value) * scale
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) else None


def _until(value: str, now: float | None) -> float | None:
    """Seconds from `now` to an HTTP date (RFC 9110: 'Wed, 21 Oct 2015 07:28:00 GMT')."""
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # '-0000' parses without a zone; HTTP dates are UTC
        when = when.replace(tzinfo=UTC)
    return when.timestamp() - (time.time() if now is None else now)


# -- the structured-output loop -------------------------------------------------------------

Check = Callable[[Any], list[str]]


class _Invalid(Exception):
    def __init__(self, kind: str, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.kind = kind
        self.errors = errors


async def structured(
    client: ModelClient,
    ctx: CallContext,
    messages: Sequence[Message],
    schema_name: str,
    check: Check,
    *,
    max_tokens: int,
    reasks: int = defaults.REASKS,
    choices: Choices | None = None,
) -> Any:
    """Call until the reply parses, fits the schema and passes `check`; re-ask with the errors.

    Each re-ask is a fresh message list: the original request, the bad reply, and the errors.
    Returns the data, or raises UnitFailed with the last problems.
    """
    state: dict[str, Any] = {"messages": list(messages), "tightened": False}
    size_limit = max_tokens * MAX_CHARS_PER_TOKEN

    async def attempt() -> Any:
        reply = await client.send(ctx, state["messages"], schema_name, max_tokens, choices)
        _reject_unusable(client, ctx, reply)
        if reply.finish_reason == "length":
            client.record(ctx, outcome="truncated", reply=reply)
            if state["tightened"]:
                raise UnitFailed("truncated", f"the reply hit max_tokens ({max_tokens}) twice")
            state["tightened"] = True
            state["messages"] = [*messages, {"role": "user", "content": prompts.render("truncated")}]
            raise _Invalid("truncated", ["$: the reply was cut off at max_tokens"])
        data, errors = _parse(reply.content or "", size_limit)
        if not errors:
            errors = schemas.validate(schema_name, data) or check(data)
        if errors:
            errors = [clip(printable(error)) for error in errors]  # a validator quotes the bad value whole
            client.record(ctx, outcome="invalid", reply=reply, errors=errors)
            state["messages"] = [
                *messages,
                {"role": "assistant", "content": printable((reply.content or "")[:ECHO_CHARS])},
                {"role": "user", "content": prompts.render("repair", errors="\n".join(f"- {e}" for e in errors[:20]))},
            ]
            raise _Invalid("invalid", errors)
        client.record(ctx, outcome="ok", reply=reply)
        client.remember(reply, ctx.model_of(client))
        return data

    retrying = AsyncRetrying(stop=stop_after_attempt(reasks + 1), retry=retry_if_exception_type(_Invalid), reraise=True)
    try:
        async for attempt_ in retrying:
            with attempt_:
                return await attempt()
    except _Invalid as exc:
        problems = "; ".join(exc.errors[:3])
        raise UnitFailed(exc.kind, f"no valid output after {reasks + 1} attempts: {problems}") from None
    raise AssertionError("unreachable: tenacity either returns or reraises")


def _reject_unusable(client: ModelClient, ctx: CallContext, reply: Reply) -> None:
    """Replies with nothing to check: malformed or empty (asked again as before), or a refusal (final)."""
    if reply.malformed:  # nothing usable to quote back
        client.record(ctx, outcome="malformed", reply=reply, errors=[reply.malformed])
        raise _Invalid("malformed", [f"$: {reply.malformed}"])
    if reply.no_choices:
        client.record(ctx, outcome="empty", reply=reply)
        raise _Invalid("empty", ["$: the endpoint returned no choices"])
    if reply.refusal or (reply.finish_reason != "length" and not (reply.content or "").strip()):
        client.record(ctx, outcome="refused", reply=reply)
        why = printable((reply.refusal or "empty reply").strip()[:200])
        raise UnitFailed("refused", f"the model declined: {why}")


_FENCE = re.compile(r"^\s*```(?:json)?\s*\n(?P<body>.*?)\n\s*```\s*$", re.DOTALL)


def _parse(content: str, size_limit: int) -> tuple[Any, list[str]]:
    """The reply's JSON, or why it cannot be used. A reply too long to be an answer is refused
    unparsed; one too deep to parse, or not valid Unicode, never reaches a validator or a file."""
    if len(content) > size_limit:
        return None, [
            (
                f"$: the reply is {len(content):,} characters long, more than the {size_limit:,} "
                "this answer can need; reply with the JSON object alone"
            )
        ]
    fenced = _FENCE.match(content)
    text = fenced.group("body") if fenced else content
    try:
        # strict=False accepts raw newlines and tabs inside strings, which llama.cpp's JSON grammar allows.
        data = json.loads(text, strict=False)
    except json.JSONDecodeError as exc:
        return None, [f"$: the reply is not valid JSON ({_json_problem(exc)})"]
    except (ValueError, RecursionError) as exc:
        return None, [f"$: the reply is not usable JSON ({_json_problem(exc)})"]
    # A lone surrogate outside a string is a JSON syntax error; inside one, UTF-8 cannot store it.
    if _holds_lone_surrogate(data):
        return None, ["$: a string in the reply holds a lone surrogate, which is not valid Unicode text"]
    return data, []


def _json_problem(exc: Exception) -> str:
    """What Python's JSON parser refused, in words for the user and the model."""
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} at line {exc.lineno} column {exc.colno}"
    if isinstance(exc, RecursionError):
        return "nested too deeply to read"
    return "a number with too many digits to read"  # Python's 4,300-digit limit on int()


def _holds_lone_surrogate(data: Any) -> bool:
    stack = [data]  # walked without recursion: the data may nest as deep as the parser allowed
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            stack.extend(item for pair in node.items() for item in pair)
        elif isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, str) and _LONE_SURROGATE.search(node):
            return True
    return False
