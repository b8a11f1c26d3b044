"""The pytest plugin counterpoint installs (entry point `pytest11`): the fixture `counterpoint_fake`.

Loaded only by pytest, so pytest is no dependency of counterpoint. pipeline.testing is imported
when a test asks for the fixture, not when pytest starts.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .testing import CounterpointFake

FAKE_KEY = "sk-counterpoint-fake-key"  # a dummy: the fake server takes any key


@pytest.fixture
def counterpoint_fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CounterpointFake]:
    """A fake OpenAI-compatible server on 127.0.0.1 answering every unit validly unless told otherwise.

    For the length of the test, OPENAI_BASE_URL points at it and OPENAI_API_KEY is a dummy, so
    nothing reaches a real endpoint, and COUNTERPOINT_RUNS_DIR and COUNTERPOINT_CACHE_DIR are
    the test's own folders (`runs_dir`, `cache_dir`). The server stops when the test ends.
    """
    from .testing import CounterpointFake, FakeOpenAIServer

    folder = tmp_path / "counterpoint"
    with FakeOpenAIServer() as server:
        fake = CounterpointFake(server, runs_dir=folder / "runs", cache_dir=folder / "cache")
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
        monkeypatch.setenv("COUNTERPOINT_RUNS_DIR", str(fake.runs_dir))
        monkeypatch.setenv("COUNTERPOINT_CACHE_DIR", str(fake.cache_dir))
        yield fake
