"""The Batch API of `testing.FakeOpenAIServer`: `/v1/files` and `/v1/batches`, real HTTP.

A job's requests are answered, when it finishes, by the server's chat-completions logic (scripts,
queue, handler), so a test scripts a unit the same way whichever path asks it. A job advances one
status per retrieve (validating → in_progress → finalizing → completed, after `polls_to_finish`
retrieves); `fail_next_job` and `expire_next_job` make the next job end otherwise, `fail_calls`
refuses the next Batch API requests themselves, and a unit scripted with an error status or a
dropped connection becomes that request's error line.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from email import policy
from email.parser import BytesParser
from typing import Any

ENDPOINT = "/v1/chat/completions"
# A request body -> (its unit, the HTTP status inside the job, the response body); status 0: the
# request was dropped (a connection reset), which becomes an error line.
LineAnswerer = Callable[[dict[str, Any]], tuple[str, int, Any]]
_ROUTE = re.compile(r"^(?:/v1)?/(?P<kind>files|batches)(?:/(?P<id>[^/]+))?(?:/(?P<action>content|cancel))?/?$")


@dataclass
class FakeJob:
    """One batch job as the fake holds it; `units` lists the unit of each request, in order."""

    id: str
    input_file_id: str
    lines: list[dict[str, Any]]
    units: list[str] = field(default_factory=list)
    status: str = "validating"
    polls: int = 0
    ending: tuple[str, Any] | None = None  # ("failed", message) or ("expired", how many lines answered)
    problem: str | None = None  # why the input file is refused (the job fails as it validates)
    output_file_id: str | None = None
    error_file_id: str | None = None
    completed: int = 0
    failed: int = 0
    created_at: int = field(default_factory=lambda: int(time.time()))


class FakeBatchAPI:
    """`/v1/files` (upload, content) and `/v1/batches` (create, retrieve, cancel) for the fake server.

    `calls` records each Batch API request as (method, path); `jobs` every job by id.
    """

    def __init__(self, answer: LineAnswerer, *, polls_to_finish: int = 3) -> None:
        self.answer = answer
        self.polls_to_finish = polls_to_finish
        self.files: dict[str, tuple[str, bytes]] = {}  # id -> (purpose, bytes)
        self.jobs: dict[str, FakeJob] = {}
        self.calls: list[tuple[str, str]] = []
        self._endings: deque[tuple[str, Any]] = deque()
        self._refusals: deque[int] = deque()
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    # -- test hooks -------------------------------------------------------------------------

    def fail_next_job(self, message: str = "the batch failed at the provider") -> None:
        """The next job created ends `failed` with this message, answering nothing."""
        with self._lock:
            self._endings.append(("failed", message))

    def expire_next_job(self, answered: int = 0) -> None:
        """The next job created ends `expired` after answering its first `answered` requests."""
        with self._lock:
            self._endings.append(("expired", answered))

    def fail_calls(self, status: int, times: int = 1) -> None:
        """The next `times` Batch API requests (uploads, creates, retrieves, downloads) get HTTP `status`."""
        with self._lock:
            self._refusals.extend([status] * times)

    def count(self, method: str, path: str) -> int:
        """How many Batch API requests went to `path` (e.g. "/files", "/batches") with `method`."""
        with self._lock:
            return sum(1 for call in self.calls if call == (method, path))

    # -- HTTP -------------------------------------------------------------------------------

    def handle(self, http: Any, method: str) -> bool:
        """Answer `http` (the server's request handler) if its path is a Batch API route."""
        match = _ROUTE.match(http.path.split("?", 1)[0])
        if match is None:
            return False
        kind, item, action = match.group("kind", "id", "action")
        with self._lock:
            self.calls.append(
                (method, f"/{kind}" if item is None else f"/{kind}/{item}" + (f"/{action}" if action else ""))
            )
        length = int(http.headers.get("content-length") or 0)
        data = http.rfile.read(length) if length else b""
        with self._lock:
            refusal = self._refusals.popleft() if self._refusals else None
        if refusal is not None:
            http._send(refusal, _error(f"scripted HTTP {refusal}"))
            return True
        status, payload, content_type = self._route(method, kind, item, action, data, http.headers)
        http._send(status, payload, content_type=content_type)
        return True

    def _route(
        self, method: str, kind: str, item: str | None, action: str | None, data: bytes, headers: Any
    ) -> tuple[int, Any, str]:
        json_type = "application/json"
        if kind == "files" and method == "POST" and item is None:
            return (*self._upload(data, headers.get("content-type") or ""), json_type)
        if kind == "files" and method == "GET" and item and action == "content":
            with self._lock:
                stored = self.files.get(item)
            if stored is None:
                return 404, _error(f"no file {item}"), json_type
            return 200, stored[1], "application/octet-stream"
        if kind == "batches" and method == "POST" and item is None:
            return (*self._create(data), json_type)
        if kind == "batches" and item and method in ("GET", "POST"):
            with self._lock:
                job = self.jobs.get(item)
            if job is None:
                return 404, _error(f"no batch {item}"), json_type
            if method == "POST" and action == "cancel":
                return 200, self._cancel(job), json_type
            if method == "GET" and action is None:
                return 200, self._retrieve(job), json_type
        return 404, _error(f"no route {method} /{kind}"), json_type

    def _upload(self, data: bytes, content_type: str) -> tuple[int, Any]:
        message = BytesParser(policy=policy.HTTP).parsebytes(
            b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + data
        )
        if not message.is_multipart():
            return 400, _error("a file upload is multipart/form-data")
        fields: dict[str, tuple[str | None, bytes]] = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True)
            if isinstance(name, str) and isinstance(payload, bytes):
                fields[name] = (part.get_filename(), payload)
        if "file" not in fields or fields.get("purpose", (None, b""))[1] != b"batch":
            return 400, _error("upload a file with purpose 'batch'")
        file_id = f"file-fake{next(self._ids)}"
        filename, content = fields["file"]
        with self._lock:
            self.files[file_id] = ("batch", content)
        return 200, _file_object(file_id, filename or "upload.jsonl", len(content), "batch")

    def _create(self, data: bytes) -> tuple[int, Any]:
        try:
            request = json.loads(data or b"{}")
        except ValueError:
            return 400, _error("body is not JSON")
        with self._lock:
            stored = self.files.get(request.get("input_file_id") or "")
        if stored is None:
            return 400, _error("input_file_id names no uploaded file")
        if request.get("endpoint") != ENDPOINT or request.get("completion_window") != "24h":
            return 400, _error(f"this fake serves endpoint {ENDPOINT} with completion_window 24h")
        lines, problem = _read_lines(stored[1])
        job = FakeJob(f"batch_fake{next(self._ids)}", request["input_file_id"], lines, problem=problem)
        with self._lock:
            job.ending = self._endings.popleft() if self._endings else None
            self.jobs[job.id] = job
        return 200, _batch_object(job)

    def _retrieve(self, job: FakeJob) -> dict[str, Any]:
        with self._lock:
            if job.status in ("completed", "failed", "expired", "cancelled"):
                return _batch_object(job)
            job.polls += 1
            finishing = job.polls >= self.polls_to_finish or job.status == "cancelling" or job.problem
        if finishing:
            self._finish(job)
        else:
            job.status = "in_progress" if job.polls < self.polls_to_finish - 1 else "finalizing"
        return _batch_object(job)

    def _cancel(self, job: FakeJob) -> dict[str, Any]:
        if job.status not in ("completed", "failed", "expired", "cancelled"):
            job.status = "cancelling"
        return _batch_object(job)

    def _finish(self, job: FakeJob) -> None:
        """Answer the job's requests (as chat completions would be) and write its files."""
        ending = ("failed", job.problem) if job.problem else job.ending
        if job.status == "cancelling":
            ending = ("cancelled", 0)
        if ending is not None and ending[0] == "failed":
            job.status = "failed"
            return
        answered = len(job.lines) if ending is None else int(ending[1])
        job.status = "finalizing" if ending is None else ending[0]
        output, errors = [], []
        for index, line in enumerate(job.lines):
            if index >= answered:
                why = {"code": f"batch_{job.status}", "message": "not run before the batch ended"}
                errors.append(_line(line, None, why))
                continue
            unit, status, body = self.answer(line["body"])
            job.units.append(unit)
            if status == 200:
                output.append(_line(line, {"status_code": 200, "request_id": f"req_{index}", "body": body}, None))
            elif status == 0:
                errors.append(_line(line, None, {"code": "server_error", "message": "the request was dropped"}))
            else:
                errors.append(_line(line, {"status_code": status, "request_id": f"req_{index}", "body": body}, None))
        job.completed, job.failed = len(output), len(errors)
        job.output_file_id = self._store(output) if output else None
        job.error_file_id = self._store(errors) if errors else None
        job.status = "completed" if ending is None else ending[0]

    def _store(self, lines: list[dict[str, Any]]) -> str:
        file_id = f"file-fake{next(self._ids)}"
        with self._lock:
            self.files[file_id] = ("batch_output", "".join(json.dumps(line) + "\n" for line in lines).encode())
        return file_id


def _read_lines(data: bytes) -> tuple[list[dict[str, Any]], str | None]:
    """The input file's requests, or why the provider would refuse it (as it validates the job)."""
    lines: list[dict[str, Any]] = []
    seen: set[str] = set()
    for number, raw in enumerate(data.decode("utf-8", "replace").splitlines(), start=1):
        try:
            line = json.loads(raw)
        except ValueError:
            return lines, f"line {number} is not JSON"
        if not isinstance(line, dict) or line.get("method") != "POST" or line.get("url") != ENDPOINT:
            return lines, f"line {number} is not a POST to {ENDPOINT}"
        custom_id = line.get("custom_id")
        if not isinstance(custom_id, str) or custom_id in seen or not isinstance(line.get("body"), dict):
            return lines, f"line {number} has no body or a missing or repeated custom_id"
        if lines and line["body"].get("model") != lines[0]["body"].get("model"):
            return lines, f"line {number} names another model than line 1 (a batch holds one model)"
        seen.add(custom_id)
        lines.append(line)
    return lines, None if lines else "the input file holds no requests"


def _line(request: dict[str, Any], response: dict[str, Any] | None, error: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "id": f"batch_req_{request['custom_id']}",
        "custom_id": request["custom_id"],
        "response": response,
        "error": error,
    }


def _error(message: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": "invalid_request_error", "code": None}}


def _file_object(file_id: str, filename: str, size: int, purpose: str) -> dict[str, Any]:
    return {
        "id": file_id,
        "object": "file",
        "bytes": size,
        "created_at": int(time.time()),
        "filename": filename,
        "purpose": purpose,
        "status": "processed",
    }


def _batch_object(job: FakeJob) -> dict[str, Any]:
    failed = job.status == "failed"
    message = job.problem or (job.ending[1] if job.ending and job.ending[0] == "failed" else None)
    return {
        "id": job.id,
        "object": "batch",
        "endpoint": ENDPOINT,
        "completion_window": "24h",
        "input_file_id": job.input_file_id,
        "created_at": job.created_at,
        "status": job.status,
        "output_file_id": job.output_file_id,
        "error_file_id": job.error_file_id,
        "errors": {"object": "list", "data": [{"code": "failed", "message": message, "line": None}]}
        if failed
        else None,
        "request_counts": {"total": len(job.lines), "completed": job.completed, "failed": job.failed},
    }
