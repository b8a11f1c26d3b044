"""Shared fixtures: isolated cache and runs dirs, the seed script, the fake server, a CLI runner."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from pipeline.cli import main
from pipeline.testing import FakeOpenAIServer, scripted_handler

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT / "seeds" / "putin-assad-syria.txt"
TEST_KEY = "sk-test-Zq8vN3kLr5Tw9Yx2"  # distinctive, so a leak is easy to find


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test touches the user's cache, runs dir, key or endpoint."""
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "COUNTERPOINT_MODEL", "COUNTERPOINT_RESPONSE_FORMAT",
                 "COUNTERPOINT_CONCURRENCY", "COUNTERPOINT_RUNS_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("COUNTERPOINT_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="session")
def seed_script() -> dict[str, Any]:
    return json.loads((ROOT / "tests" / "data" / "seed_script.json").read_text(encoding="utf-8"))


@pytest.fixture
def server(seed_script: dict[str, Any]) -> Iterator[FakeOpenAIServer]:
    """A fake OpenAI-compatible server that answers every unit of the seed article correctly.

    Tests script faults on top with `server.script(unit, ...)` or `server.enqueue(...)`.
    """
    with FakeOpenAIServer(scripted_handler(seed_script)) as fake:
        yield fake


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def run_dir(self) -> Path:
        return Path(self.stdout.strip().splitlines()[-1])


@pytest.fixture
def runs_dir(tmp_path: Path) -> Path:
    return tmp_path / "runs"


@pytest.fixture
def cli(server: FakeOpenAIServer, runs_dir: Path):
    """Run `counterpoint ...` in-process (real SDK, real HTTP to the fake server)."""

    def invoke(*args: str, endpoint: bool = True, key: str | None = TEST_KEY, input: str | None = None,
               env: dict[str, str] | None = None) -> CliResult:
        argv = list(args)
        if args and args[0] == "run":
            argv += ["--runs-dir", str(runs_dir)]
            if endpoint:
                argv += ["--base-url", server.base_url]
        full_env = {"OPENAI_API_KEY": key} if key else {}
        full_env.update(env or {})
        result = CliRunner().invoke(main, argv, env=full_env, input=input, catch_exceptions=False)
        return CliResult(result.exit_code, result.stdout, result.stderr)

    return invoke


def run_subprocess(args: list[str], *, env: dict[str, str] | None = None, timeout: float = 120,
                   input: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run the installed console script in a real process (for signals and start-up behaviour)."""
    full_env = {**os.environ, **(env or {})}
    exe = Path(sys.executable).with_name("counterpoint")
    return subprocess.run([str(exe), *args], env=full_env, capture_output=True, text=True, timeout=timeout,
                          input=input, cwd=ROOT, check=False)
