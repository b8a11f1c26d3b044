"""Public fakes for testing counterpoint and tools built on it. Not needed at runtime.

- `FakeLLM`: a model client with a queue of canned replies and a history of requests, injected
  straight into the pipeline (unit tests, `generate_brief(llm=...)`).
- `FakeOpenAIServer`: a real HTTP server on 127.0.0.1 that speaks chat completions, so the real
  openai SDK is exercised end to end. Replies are scripted per request: content, status codes,
  headers, delays, refusals, truncation, empty choices, dropped connections, raw bodies of any
  content type, odd token counts, and bodies trickled out a byte at a time.
- `CounterpointFake`: what the pytest fixture `counterpoint_fake` gives a test (pipeline.pytest_plugin).

Both fakes answer a unit nothing is scripted for with a valid default answer read off the request
(pipeline.fake_answers), take per-unit failures (`fail(unit, kind, times)`, kinds in FAULT_KINDS)
and per-unit fields over the default answer (`answer(unit, **fields)`), and record every request
with its unit in `requests`.
"""

from __future__ import annotations

import json
import os
import re
import select
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NoReturn, Self

from .errors import AuthError, ModelError
from .fake_answers import FAULT_KINDS, TRANSPORT_KINDS, Fault, ScriptedUnits, unit_of
from .fake_batch_api import FakeBatchAPI
from .llm import CallContext, ModelClient, Reply, Usage, _Retryable

__all__ = [
    "FAULT_KINDS",
    "CounterpointFake",
    "FakeLLM",
    "FakeOpenAIServer",
    "FakeResponse",
    "ReceivedRequest",
    "Reply",
    "Usage",
    "max_in_flight",
    "scripted_handler",
    "unit_of",
]
HANG_LIMIT_S = 600.0  # a `timeout` fault holds its request at most this long (the client gives up first)


def _as_content(item: Any) -> str:
    return item if isinstance(item, str) else json.dumps(item)


# -- FakeLLM ---------------------------------------------------------------------------------


class FakeLLM(ModelClient):
    """Replies from a queue (str, JSON-able dict, Reply, or an exception to raise), or a responder,
    else the unit's default answer (see the module's docstring).

    A failure scripted with `fail` comes first, each kind as the real client meets it: `timeout`
    raises TimeoutError, `http_429` and `http_500` are logged and raised as OpenAIClient's attempt
    raises them, so `ModelClient` retries each (then fails the unit with kind `transport`), and
    `http_401` stops the run (AuthError). `history` holds every request: {"unit", "stage",
    "messages", "body"}; `requests` the same as the fake server's `ReceivedRequest`s.
    """

    retry_backoff = 0.0  # a queued transport error is retried at once: there is no server to wait for

    def __init__(
        self,
        *replies: Any,
        responder: Callable[[str, dict[str, Any]], Any] | None = None,
        model: str = "fake-model",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model = model
        self.endpoint_host = "fake-llm"
        self.queue: deque[Any] = deque(replies)
        self.responder = responder
        self.history: list[dict[str, Any]] = []
        self.requests: list[ReceivedRequest] = []
        self._units = ScriptedUnits()
        self._fatal: ModelError | None = None

    def enqueue(self, *replies: Any) -> FakeLLM:
        self.queue.extend(replies)
        return self

    def fail(self, unit: str, kind: str, times: int = 1) -> FakeLLM:
        """The next `times` requests for `unit` fail as `kind` (one of FAULT_KINDS)."""
        self._units.fail(unit, kind, times)
        return self

    def answer(self, unit: str, **fields: Any) -> FakeLLM:
        """Give these top-level fields in `unit`'s default answer."""
        self._units.answer(unit, fields)
        return self

    async def _request(self, ctx: CallContext, body: dict[str, Any]) -> Reply:
        """One attempt; ModelClient retries the transport failures."""
        if self._fatal is not None:  # as the real client: after a 401 no new call starts
            raise self._fatal
        self.charge_call()
        self.history.append({"unit": ctx.unit, "stage": ctx.stage, "messages": body["messages"], "body": body})
        fault = self._units.take_fault(ctx.unit, body)
        received = ReceivedRequest("/chat/completions", {}, body, ctx.unit, time.monotonic())
        received.status = None if fault is not None and fault.hang else (fault.status if fault else 200)
        self.requests.append(received)
        if fault is not None and fault.kind in TRANSPORT_KINDS:
            self._transport_failure(ctx, fault)
        return self._reply(ctx, body, fault)

    def _transport_failure(self, ctx: CallContext, fault: Fault) -> NoReturn:
        """Raise what the real client raises for this attempt, logged as it logs it."""
        if fault.kind == "timeout":
            raise TimeoutError(f"timeout talking to {self.endpoint_host}")  # ModelClient logs it
        if fault.kind == "http_401":
            self._fatal = AuthError(
                f"the endpoint at {self.endpoint_host} refused the credentials (HTTP 401); check OPENAI_API_KEY"
            )
            self.record(ctx, outcome="http_401", error=str(self._fatal))
            raise self._fatal
        message = f"HTTP {fault.status} from {self.endpoint_host}"
        self.record(ctx, outcome=fault.kind, error=message)
        raise _Retryable(message, retry_after=0.0)

    def _reply(self, ctx: CallContext, body: dict[str, Any], fault: Fault | None) -> Reply:
        prompt_tokens = len(json.dumps(body["messages"])) // 4
        if fault is not None:
            return Reply(
                content=fault.content,
                finish_reason=None if fault.no_choices else fault.finish_reason,
                refusal=fault.refusal,
                no_choices=fault.no_choices,
                usage=Usage(prompt_tokens, len(fault.content or "") // 4),
            )
        if self.queue:
            item = self.queue.popleft()
        else:
            item = self.responder(unit_of(body["messages"]), body) if self.responder is not None else None
            item = item if item is not None else self._units.answer_for(ctx.unit, body)
        if item is None:
            raise AssertionError(f"FakeLLM has no reply queued for {ctx.unit}")
        if isinstance(item, BaseException):
            raise item
        if isinstance(item, Reply):
            return item
        content = _as_content(item)
        return Reply(content=content, usage=Usage(prompt_tokens, len(content) // 4))


# -- FakeOpenAIServer ------------------------------------------------------------------------


@dataclass
class FakeResponse:
    """One scripted answer. `content` may be a str or a JSON-able object.

    `body` replaces the whole chat completion: bytes or str are sent as they are, anything else as
    JSON; `content_type` is the header sent with it. `usage` may hold any values (negative,
    fractional). `trickle` sends the body one byte every `trickle` seconds. `hang` holds the
    request without a word until the client gives up (a timeout).
    """

    content: Any = None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float | None = None
    finish_reason: str = "stop"
    refusal: str | None = None
    usage: dict[str, Any] | None = None
    no_choices: bool = False
    error_message: str | None = None
    reset: bool = False
    body: Any = None
    content_type: str = "application/json"
    trickle: float | None = None
    hang: bool = False


@dataclass
class ReceivedRequest:
    """One request as the server saw it (header names in lower case).

    `received` and `answered` are time.monotonic() values: when the request arrived and when its
    answer was sent (or the connection dropped), so tests can see which requests overlapped.
    """

    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    unit: str
    received: float
    reply_usage: dict[str, Any] | None = None
    answered: float | None = None
    status: int | None = None


Handler = Callable[[str, dict[str, Any]], "FakeResponse | str | dict[str, Any]"]


class _Server(ThreadingHTTPServer):
    # The default listen backlog of 5 drops connections when more arrive at once, and the client
    # then retries only after a second: a benchmark artefact, not what a real endpoint does.
    request_queue_size = 128
    fake: FakeOpenAIServer


class _Handler(BaseHTTPRequestHandler):
    """Answers as the FakeOpenAIServer that owns the listening socket says."""

    server: _Server

    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:  # keep test output clean
        return

    def do_GET(self) -> None:
        if self.server.fake.batch_api.handle(self, "GET"):
            return
        if self.path.rstrip("/").endswith("/models"):
            models = [{"id": name, "object": "model", "owned_by": "fake"} for name in self.server.fake.models]
            self._send(200, {"object": "list", "data": models})
        else:
            self._send(404, {"error": {"message": "not found", "type": "invalid_request_error"}})

    def do_POST(self) -> None:
        if self.server.fake.batch_api.handle(self, "POST"):
            return
        length = int(self.headers.get("content-length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            self._send(400, {"error": {"message": "body is not JSON"}})
            return
        unit = unit_of(body.get("messages") or [])
        headers = {name.lower(): value for name, value in self.headers.items()}
        received = ReceivedRequest(self.path, headers, body, unit, time.monotonic())
        with self.server.fake._lock:
            self.server.fake.requests.append(received)
        if not self.path.rstrip("/").endswith("/chat/completions"):
            self._send(404, {"error": {"message": f"no route {self.path}"}})
            return
        self.server.fake._answer(self, body, received)

    def _send(
        self,
        status: int,
        payload: Any,
        headers: dict[str, str] | None = None,
        *,
        content_type: str = "application/json",
        trickle: float | None = None,
    ) -> None:
        raw = _encode_body(payload)
        try:
            self.send_response(status)
            self.send_header("content-type", content_type)
            self.send_header("content-length", str(len(raw)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            if trickle is None:
                self.wfile.write(raw)
                return
            for index in range(len(raw)):
                self.wfile.write(raw[index : index + 1])
                self.wfile.flush()
                time.sleep(trickle)
        except (BrokenPipeError, ConnectionResetError):
            return  # the client gave up (a timeout test); nothing to tell it


class FakeOpenAIServer:
    """A chat-completions server on 127.0.0.1 for tests and benchmarks.

    Answers come, in order of precedence, from a failure scripted for the unit (`fail("C2",
    "http_500")`), the unit's script (`script("C2", ...)`), the shared queue (`enqueue(...)`),
    `handler(unit, body)`, and, when none of these gives one, the unit's default answer (with the
    fields given by `answer("C2", ...)`). `latency` delays every successful answer. `requests`
    records everything received. GET /models lists `models` (by default the one `model`).

    Usage is reported as a provider would, counting 4 characters of the messages as a token.
    With `prefix_cache`, the server also reports as `cached_tokens` the longest prefix of the
    messages it has already answered, like a provider's prompt cache.

    It also serves the Batch API (`/v1/files`, `/v1/batches`; `batch_api`, see fake_batch_api.py):
    a job's requests are answered as chat-completions requests are.
    """

    def __init__(
        self,
        handler: Handler | None = None,
        *,
        latency: float = 0.0,
        model: str = "fake-model",
        prefix_cache: bool = False,
        models: Sequence[str] | None = None,
    ) -> None:
        self.handler = handler
        self.models = list(models) if models is not None else [model]
        self.latency = latency
        self.model = model
        self.prefix_cache = prefix_cache
        self.requests: list[ReceivedRequest] = []
        self._answered_prompts: list[str] = []
        self._queue: deque[Any] = deque()
        self._scripts: dict[str, deque[Any]] = {}
        self._units = ScriptedUnits()
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self.batch_api = FakeBatchAPI(self._answer_line)
        self._thread: threading.Thread | None = None

    # -- scripting ------------------------------------------------------------------------

    def enqueue(self, *responses: Any) -> FakeOpenAIServer:
        with self._lock:
            self._queue.extend(responses)
        return self

    def script(self, unit: str, *responses: Any) -> FakeOpenAIServer:
        with self._lock:
            self._scripts.setdefault(unit, deque()).extend(responses)
        return self

    def fail(self, unit: str, kind: str, times: int = 1) -> FakeOpenAIServer:
        """The next `times` requests for `unit` fail as `kind` (one of FAULT_KINDS): `refusal`,
        `timeout` (held unanswered until the client gives up), `http_429`, `http_500` (both with
        Retry-After: 0, so the retry is not held up), `http_401`, `invalid` (fails the schema),
        `malformed` (not JSON), `length` (cut off at max_tokens), `ungrounded` (a quote the article
        does not hold; for a claim, a lead citing a URL), `empty` (no choices)."""
        self._units.fail(unit, kind, times)
        return self

    def answer(self, unit: str, **fields: Any) -> FakeOpenAIServer:
        """Give these top-level fields in `unit`'s default answer."""
        self._units.answer(unit, fields)
        return self

    def requests_for(self, unit: str) -> list[ReceivedRequest]:
        with self._lock:
            return [request for request in self.requests if request.unit == unit]

    def _next(self, unit: str, body: dict[str, Any]) -> FakeResponse:
        fault = self._units.take_fault(unit, body)
        if fault is not None:
            return _response_for(fault)
        with self._lock:
            script = self._scripts.get(unit)
            item = script.popleft() if script else (self._queue.popleft() if self._queue else None)
        if item is None and self.handler is not None:
            item = self.handler(unit, body)
        if item is None:
            item = self._units.answer_for(unit, body)
        if item is None:
            return FakeResponse(status=500, error_message=f"fake server: nothing scripted for unit {unit}")
        return item if isinstance(item, FakeResponse) else FakeResponse(content=item)

    # -- lifecycle ------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        assert self._server is not None, "start() the server first"
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def start(self) -> Self:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.fake = self
        self._server.daemon_threads = True
        # A short poll interval: shutdown() waits up to one interval, at the end of every test.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, name="fake-openai", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- answering ------------------------------------------------------------------------

    def _answer(self, http: Any, body: dict[str, Any], received: ReceivedRequest) -> None:
        response = self._next(received.unit, body)
        delay = response.delay if response.delay is not None else (self.latency if response.status == 200 else 0.0)
        if delay:
            time.sleep(delay)
        received.status = None if response.reset else response.status
        try:
            self._reply(http, body, received, response)
        finally:
            received.answered = time.monotonic()

    def _reply(self, http: Any, body: dict[str, Any], received: ReceivedRequest, response: FakeResponse) -> None:
        if response.hang:
            received.status = None
            self._hold(http)
            return
        if response.reset:
            # Close without a word: the client sees a dropped connection.
            http.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            http.connection.close()
            http.close_connection = True
            return
        if response.status != 200:
            http._send(response.status, _error_body(response), response.headers)
            return
        if response.body is not None:
            http._send(
                200, response.body, response.headers, content_type=response.content_type, trickle=response.trickle
            )
            return
        completion = self._completion(body, response)
        received.reply_usage = completion["usage"]
        http._send(200, completion, response.headers, content_type=response.content_type, trickle=response.trickle)

    def _answer_line(self, body: dict[str, Any]) -> tuple[str, int, Any]:
        """A Batch API job's request, answered as a chat-completions request would be (see
        fake_batch_api.LineAnswerer): its unit, the status, the body."""
        unit = unit_of(body.get("messages") or [])
        response = self._next(unit, body)
        if response.reset or response.hang:  # a line the job never answers
            return unit, 0, None
        if response.status != 200:
            return unit, response.status, _error_body(response)
        if response.body is not None:
            raw = response.body
            return unit, 200, raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        return unit, 200, self._completion(body, response)

    def _completion(self, body: dict[str, Any], response: FakeResponse) -> dict[str, Any]:
        content = None if response.content is None else _as_content(response.content)
        prompt = json.dumps(body.get("messages") or [])
        usage = response.usage or {
            "prompt_tokens": len(prompt) // 4,
            "completion_tokens": len(content or "") // 4,
            "prompt_tokens_details": {"cached_tokens": self._cached_chars(prompt) // 4},
        }
        usage.setdefault("total_tokens", usage["prompt_tokens"] + usage["completion_tokens"])
        choices = (
            []
            if response.no_choices
            else [
                {
                    "index": 0,
                    "finish_reason": response.finish_reason,
                    "logprobs": None,
                    "message": {"role": "assistant", "content": content, "refusal": response.refusal},
                }
            ]
        )
        return {
            "id": f"chatcmpl-fake-{id(response)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", self.model),
            "choices": choices,
            "usage": usage,
        }

    def _hold(self, http: Any) -> None:
        """Answer nothing until the client closes the connection (its timeout), the server stops,
        or HANG_LIMIT_S pass."""
        deadline = time.monotonic() + HANG_LIMIT_S
        connection = http.connection
        while self._server is not None and time.monotonic() < deadline:
            readable, _, _ = select.select([connection], [], [], 0.05)
            try:
                if readable and not connection.recv(1, socket.MSG_PEEK):
                    break  # the client hung up
            except OSError:
                break
        http.close_connection = True

    def _cached_chars(self, prompt: str) -> int:
        """With `prefix_cache`: the length of the longest prefix `prompt` shares with an earlier answered one."""
        if not self.prefix_cache:
            return 0
        with self._lock:
            seen = list(self._answered_prompts)
            self._answered_prompts.append(prompt)
        return max((len(os.path.commonprefix([prompt, earlier])) for earlier in seen), default=0)


def _error_body(response: FakeResponse) -> dict[str, Any]:
    """A scripted HTTP error as OpenAI words one, over HTTP or in a Batch API job's error file."""
    message = response.error_message or f"scripted HTTP {response.status}"
    return {"error": {"message": message, "type": "fake_error", "code": None}}


def _response_for(fault: Fault) -> FakeResponse:
    """A scripted failure as the server sends it."""
    if fault.status != 200:
        # Retry-After: 0 as a rate-limiting provider may send it, so a test's retry is immediate.
        headers = {"retry-after": "0"} if fault.status in (429, 500) else {}
        return FakeResponse(status=fault.status, headers=headers, error_message=f"fake {fault.kind}")
    return FakeResponse(
        content=fault.content,
        finish_reason=fault.finish_reason,
        refusal=fault.refusal,
        no_choices=fault.no_choices,
        hang=fault.hang,
    )


def _encode_body(payload: Any) -> bytes:
    if isinstance(payload, bytes):
        return payload
    if isinstance(payload, str):
        return payload.encode("utf-8")
    return json.dumps(payload).encode("utf-8")


def max_in_flight(requests: list[ReceivedRequest]) -> int:
    """The most of `requests` the server was working on at one moment (an answer ends one before
    a request arriving at the same instant starts)."""
    events = sorted([(r.received, 1) for r in requests] + [(r.answered or r.received, -1) for r in requests])
    most = current = 0
    for _, change in events:
        current += change
        most = max(most, current)
    return most


def scripted_handler(script: dict[str, Any]) -> Handler:
    """A handler answering every unit from a script: {"extract": ..., "rebuttals": {"C1": ...}, "synthesize": ...}.

    Used by the tests and bench/ with tests/data/seed_script.json.
    """

    def handler(unit: str, body: dict[str, Any]) -> Any:
        if unit == "synthesize":
            # Like a real model, cite only the rebuttals the prompt lists (failed claims have none).
            listed = set(re.findall(r"\[(C\d+-R\d+)\]", json.dumps(body.get("messages"))))
            strongest = [rid for rid in script[unit]["strongest_rebuttals"] if rid in listed]
            return {**script[unit], "strongest_rebuttals": strongest}
        if unit == "extract":
            return script[unit]
        return script["rebuttals"].get(unit)

    return handler


@dataclass
class CounterpointFake:
    """What the pytest fixture `counterpoint_fake` gives a test: a running `FakeOpenAIServer`
    (`base_url`, `requests`, `fail`, `answer`, and its scripting methods) and the runs and cache
    folders that are the test's own."""

    server: FakeOpenAIServer
    runs_dir: Path
    cache_dir: Path

    @property
    def base_url(self) -> str:
        return self.server.base_url

    @property
    def requests(self) -> list[ReceivedRequest]:
        return self.server.requests

    def fail(self, unit: str, kind: str, times: int = 1) -> CounterpointFake:
        self.server.fail(unit, kind, times)
        return self

    def answer(self, unit: str, **fields: Any) -> CounterpointFake:
        self.server.answer(unit, **fields)
        return self

    def script(self, unit: str, *responses: Any) -> CounterpointFake:
        self.server.script(unit, *responses)
        return self

    def requests_for(self, unit: str) -> list[ReceivedRequest]:
        return self.server.requests_for(unit)

    @property
    def units(self) -> list[str]:
        """The unit of every chat request received, in order."""
        return [request.unit for request in self.requests]
