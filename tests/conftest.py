"""Shared fixtures: isolated cache and runs dirs, the seed script, the fake server, a CLI runner."""

from __future__ import annotations

import asyncio
import copy
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

from pipeline import sources, stages
from pipeline.cli import main
from pipeline.testing import FakeLLM, FakeOpenAIServer, FakeResponse, scripted_handler

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT / "seeds" / "putin-assad-syria.txt"
TEST_KEY = "sk-test-Zq8vN3kLr5Tw9Yx2"  # distinctive, so a leak is easy to find
SEED_ARTICLE = sources.load(str(SEED))


NOWHERE = "http://127.0.0.1:9"  # the discard port: nothing listens there


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test touches the user's cache, runs dir, config, key or endpoint, or the network; a bug raises instead of hiding.

    The runs and cache dirs are the test's own (`runs_dir` is the same folder). COUNTERPOINT_DEBUG
    makes the CLI re-raise an unexpected exception (a bug) instead of printing "internal error"
    and exiting 1, so `catch_exceptions=False` lets it fail the test with its traceback; the
    one-line errors tests expect are CounterpointErrors, which are unaffected. A test of the
    "internal error" line itself unsets it.
    """
    for name in (
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "COUNTERPOINT_MODEL",
        "COUNTERPOINT_RESPONSE_FORMAT",
        "COUNTERPOINT_CONCURRENCY",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("COUNTERPOINT_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("COUNTERPOINT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("COUNTERPOINT_DEBUG", "1")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))  # no user counterpoint.toml
    # A test that forgets --base-url must fail here, not reach api.openai.com: the SDK (and every
    # child process) sends anything but loopback to a closed local port, with no DNS lookup.
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.setenv(name, NOWHERE)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost,::1")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost,::1")


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


def run_cli(
    *args: str,
    runs_dir: Path | None = None,
    base_url: str | None = None,
    key: str | None = None,
    input: str | None = None,
    env: dict[str, str] | None = None,
) -> CliResult:
    """`counterpoint ...` in-process; `run` gets `--runs-dir` and `--base-url` when they are given."""
    argv = list(args)
    if args and args[0] == "run":
        argv += ["--runs-dir", str(runs_dir)] if runs_dir else []
        argv += ["--base-url", base_url] if base_url else []
    full_env = {"OPENAI_API_KEY": key} if key else {}
    full_env.update(env or {})
    result = CliRunner().invoke(main, argv, env=full_env, input=input, catch_exceptions=False)
    return CliResult(result.exit_code, result.stdout, result.stderr)


@pytest.fixture
def cli(server: FakeOpenAIServer, runs_dir: Path):
    """Run `counterpoint ...` in-process (real SDK, real HTTP to the fake server)."""

    def invoke(
        *args: str,
        endpoint: bool = True,
        key: str | None = TEST_KEY,
        input: str | None = None,
        env: dict[str, str] | None = None,
    ) -> CliResult:
        return run_cli(
            *args, runs_dir=runs_dir, base_url=server.base_url if endpoint else None, key=key, input=input, env=env
        )

    return invoke


@pytest.fixture
def cli_plain(runs_dir: Path):
    """`counterpoint ...` in-process without the default fake server or a key, for tests that bring
    their own server (pass `--base-url`)."""

    def invoke(*args: str, input: str | None = None, env: dict[str, str] | None = None) -> CliResult:
        return run_cli(*args, runs_dir=runs_dir, input=input, env=env)

    return invoke


def run_partially(cli: Any, server: FakeOpenAIServer, *args: str) -> CliResult:
    """Run the seed article so the run is left partial (exit 3): C3 fails on two 503s with
    --max-retries 1. The 503s say Retry-After: 0, so the retry is not held up by a random back-off
    (test_faults covers that)."""
    server.script("C3", *[FakeResponse(status=503, headers={"Retry-After": "0"})] * 2)
    result: CliResult = cli("run", str(SEED), "--max-retries", "1", *args)
    assert result.exit_code == 3, result.stderr
    return result


def one_error_line(result: Any) -> str:
    """The whole of stderr, which must be exactly one 'error: ...' line."""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def read_brief(run_dir: Path) -> dict[str, Any]:
    """A run's brief.json, read strictly (UTF-8, no BOM): the tests check what the run wrote."""
    brief: dict[str, Any] = json.loads((run_dir / "brief.json").read_text(encoding="utf-8"))
    return brief


def read_manifest(run_dir: Path) -> dict[str, Any]:
    manifest: dict[str, Any] = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
    return manifest


COUNTERPOINT = Path(sys.executable).with_name("counterpoint")  # the installed console script


def _child_env(env: dict[str, str] | None, drop: tuple[str, ...]) -> dict[str, str]:
    return {name: value for name, value in {**os.environ, **(env or {})}.items() if name not in drop}


def start_counterpoint(
    args: list[str], *, env: dict[str, str] | None = None, drop: tuple[str, ...] = (), **popen: Any
) -> subprocess.Popen[Any]:
    """Start the installed console script in a real process (signals, terminals, pipes); stdout and
    stderr are text pipes unless `popen` says otherwise. `drop` removes variables from the environment."""
    options: dict[str, Any] = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True, **popen}
    return subprocess.Popen([str(COUNTERPOINT), *args], env=_child_env(env, drop), cwd=ROOT, **options)


def run_subprocess(
    args: list[str], *, env: dict[str, str] | None = None, timeout: float = 120, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the installed console script in a real process (for signals and start-up behaviour)."""
    return subprocess.run(
        [str(COUNTERPOINT), *args],
        env=_child_env(env, ()),
        capture_output=True,
        text=True,
        timeout=timeout,
        input=input,
        cwd=ROOT,
        check=False,
    )


def extract(llm: FakeLLM, max_claims: int = 8) -> dict[str, Any]:
    """The extraction stage on the seed article, with `llm` as the model."""
    base = stages.base_messages(SEED_ARTICLE, "n0nce", None)
    return asyncio.run(stages.extract_claims(llm, base, SEED_ARTICLE, "n0nce", max_claims=max_claims, reasks=2))


def extract_after_a_bad_claim(seed_script: dict[str, Any], index: int, field: str, value: Any) -> FakeLLM:
    """Extraction where the first reply has claim `index`'s `field` set to `value` and the re-ask is
    answered correctly; returns the model, whose history holds both requests."""
    bad = copy.deepcopy(seed_script["extract"])
    bad["claims"][index][field] = value
    llm = FakeLLM(bad, seed_script["extract"])
    extract(llm)
    return llm
