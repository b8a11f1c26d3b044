"""The Python API: `generate_brief` and `agenerate_brief` (inputs, metadata, settings, event loops),
the typed `Brief`, a library call that writes nothing it was not given, transport errors from an
injected client, and the README's "Use from Python" examples run as written."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import json
import re
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest

import pipeline
from pipeline import Brief, ConfigError, InputError, RunDirError, agenerate_brief, generate_brief
from pipeline.errors import FAILURE_KINDS
from pipeline.testing import FakeLLM, FakeOpenAIServer, FakeResponse, scripted_handler

from .conftest import ROOT, SEED, TEST_KEY, read_brief, read_manifest

NEWS_PAGE = ROOT / "tests" / "data" / "web" / "news-article.html"


def readme_section(title: str) -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start = readme.index(f"\n## {title}\n")
    end = readme.find("\n## ", start + 1)
    return readme[start : end if end != -1 else None]


def files_under(folder: Path) -> set[Path]:
    return {path for path in folder.rglob("*")}


@pytest.fixture
def bare_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """HOME, the user cache dir and the working directory in an empty folder, and the CLI's cache
    variable unset, so anything a call writes on its own shows up there."""
    home = tmp_path / "home"
    (home / "cwd").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    monkeypatch.delenv("COUNTERPOINT_CACHE_DIR")
    monkeypatch.delenv("COUNTERPOINT_RUNS_DIR")
    monkeypatch.chdir(home / "cwd")
    return home


# -- the README ---------------------------------------------------------------------------------


def test_the_use_from_python_examples_run_as_written(
    server: FakeOpenAIServer, bare_home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every python block under "Use from Python", in order and in one namespace, with the endpoint
    the README says it reads ($OPENAI_BASE_URL, $OPENAI_API_KEY) pointed at the fake server."""
    cwd = bare_home / "cwd"
    (cwd / "op-ed.txt").write_text(SEED.read_text(encoding="utf-8"), encoding="utf-8")
    (cwd / "op-ed.html").write_text(NEWS_PAGE.read_text(encoding="utf-8"), encoding="utf-8")
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", TEST_KEY)
    blocks = re.findall(r"```python\n(.*?)```", readme_section("Use from Python"), re.DOTALL)
    assert len(blocks) >= 4
    namespace: dict[str, Any] = {"__name__": "readme_example"}
    for number, block in enumerate(blocks, 1):
        exec(compile(block, f"README.md (Use from Python, example {number})", "exec"), namespace)
    printed = capsys.readouterr().out
    seed = json.loads((ROOT / "tests" / "data" / "seed_script.json").read_text(encoding="utf-8"))
    assert seed["synthesize"]["counter_thesis"] in printed
    briefs = namespace["briefs"]
    assert [brief.status for brief in briefs] == ["complete", "complete"]
    assert namespace["stored"] == briefs[0] and "<mark" in namespace["html"]
    # Four briefs of ten calls each reached the fake server (the README's own test example brings its own).
    assert len(server.requests) == 40
    # Only the runs directory the gather example asked for was written, and no cache anywhere.
    runs = {path.parent for path in (cwd / "runs").glob("*/brief.json")}
    assert runs == {brief.run_dir.resolve() for brief in briefs}
    written = {path.relative_to(bare_home).parts[:2] for path in files_under(bare_home)}
    assert written == {("cwd",), ("cwd", "op-ed.txt"), ("cwd", "op-ed.html"), ("cwd", "runs")}


# -- inputs and metadata ------------------------------------------------------------------------


def test_html_goes_through_the_extractor_and_given_metadata_wins(server: FakeOpenAIServer) -> None:
    page = NEWS_PAGE.read_bytes()
    brief = generate_brief(
        html=page, base_url=server.base_url, api_key=TEST_KEY, author="Jane Doe", date="2016-03-16", title="T"
    )
    assert brief.status == "complete"
    assert (brief.article.title, brief.article.author, brief.article.date) == ("T", "Jane Doe", "2016-03-16")
    assert brief.article.site and brief.article.source == "<html>"
    assert brief.article_text is not None and "<" not in brief.article_text, "the markup never reaches the article"
    (extract,) = server.requests_for("extract")
    assert "NAV-" not in json.dumps(extract.body) and "2016-03-16" in json.dumps(extract.body)


def test_a_path_is_read_like_the_cli_reads_it(server: FakeOpenAIServer) -> None:
    brief = generate_brief(path=NEWS_PAGE, base_url=server.base_url, api_key=TEST_KEY)
    assert brief.status == "complete" and brief.article.date == "2016-03-15"
    assert brief.article.source == str(NEWS_PAGE)


@pytest.mark.parametrize(
    ("arguments", "error", "message"),
    [
        ({}, InputError, "no article given; pass its text=, html=, path= or url="),
        ({"text": "x", "html": "<p>x</p>"}, ConfigError, "pass one article, not text= and html="),
        ({"path": "https://example.com/a"}, ConfigError, "path= takes a file, not the URL"),
        ({"url": "op-ed.txt"}, ConfigError, "url= takes an http(s) URL"),
        ({"text": b"bytes"}, InputError, "text= takes a str, not bytes"),
        ({"text": SEED.read_text(), "date": "14/01/2015"}, InputError, "is not a calendar date as YYYY-MM-DD"),
        ({"text": SEED.read_text(), "author": "A\nB"}, InputError, "the author 'A\\nB' is empty or spans lines"),
        ({"text": SEED.read_text(), "title": 5}, InputError, "title= takes a str, not int"),
        ({"text": SEED.read_text(), "date": datetime.date(2016, 3, 15)}, InputError, "date= takes a str, not date"),
        ({"text": SEED.read_text(), "concurrency": 0}, ConfigError, "concurrency must be from 1 to 64, not 0"),
        ({"text": SEED.read_text(), "max_claims": 13}, ConfigError, "max_claims must be from 1 to 12"),
        ({"text": SEED.read_text(), "reasks": 1.5}, ConfigError, "reasks must be a whole number, not 1.5"),
        ({"text": SEED.read_text(), "temperature": float("nan")}, ConfigError, "temperature must be a finite"),
        ({"text": SEED.read_text(), "timeout": 0}, ConfigError, "timeout must be at least 0.1"),
        ({"text": SEED.read_text(), "response_format": "xml"}, ConfigError, "response_format must be one of"),
    ],
)
def test_bad_arguments_are_one_line_errors_before_anything_is_sent(
    server: FakeOpenAIServer, arguments: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as raised:
        generate_brief(**arguments, base_url=server.base_url, api_key=TEST_KEY)
    assert message in str(raised.value) and "\n" not in str(raised.value)
    assert server.requests == []


# -- the typed brief ----------------------------------------------------------------------------


def test_the_typed_brief_is_the_brief_json(seed_script: dict[str, Any], tmp_path: Path) -> None:
    llm = FakeLLM(responder=scripted_handler(seed_script))
    brief = generate_brief(SEED.read_text(encoding="utf-8"), llm=llm, runs_dir=tmp_path / "runs")
    assert brief.run_dir is not None and brief.run_dir.parent == tmp_path / "runs"
    stored = read_brief(brief.run_dir)
    assert brief.to_dict() == stored and json.loads(brief.to_json()) == stored
    assert (brief.run_dir / "brief.md").read_text(encoding="utf-8") == brief.to_markdown()
    assert (brief.run_dir / "brief.html").read_text(encoding="utf-8") == brief.to_html()
    synthesis = seed_script["synthesize"]
    assert brief.counter_thesis == synthesis["counter_thesis"] and brief.thesis == seed_script["extract"]["thesis"]
    assert [r.id for r in brief.strongest_rebuttals] == synthesis["strongest_rebuttals"]
    first = brief.strongest_rebuttals[0]
    claim = next(c for c in brief.claims if first in c.rebuttals)
    assert first.argument and first.strength in range(1, 6) and first.id.startswith(claim.id + "-")
    assert brief.claims[0].rebuttals[0].strength == stored["claims"][0]["rebuttals"][0]["strength"]
    assert brief.claims[0].missing_context[0].point == stored["claims"][0]["missing_context"][0]["point"]
    assert brief.rhetoric[0].quote == brief.article_text[brief.rhetoric[0].start : brief.rhetoric[0].end]
    assert (brief.usage.calls, brief.failures, brief.article.title) == (10, (), stored["article"]["title"])
    assert "article_text" not in repr(brief) and "_data" not in repr(brief)
    with pytest.raises(AttributeError):
        brief.status = "failed"  # type: ignore[misc]
    assert brief.to_dict() is not brief.to_dict(), "a copy: changing it changes nothing in the brief"
    by_hand = dataclasses.replace(brief, _data={})
    with pytest.raises(ValueError, match=r"make one with Brief\.from_dict or Brief\.load"):
        by_hand.to_json()


def test_brief_load_reads_a_stored_run_back(seed_script: dict[str, Any], tmp_path: Path) -> None:
    llm = FakeLLM(responder=scripted_handler(seed_script))
    brief = generate_brief(SEED.read_text(encoding="utf-8"), llm=llm, runs_dir=tmp_path / "runs")
    assert brief.run_dir is not None
    loaded = Brief.load(str(brief.run_dir))
    assert loaded == brief and loaded.to_dict() == brief.to_dict() and loaded.to_html() == brief.to_html()
    # brief.json may carry fields this version does not know (checks on rebuttals): kept and read.
    data = read_brief(brief.run_dir)
    data["claims"][0]["rebuttals"][0]["checks"] = [{"kind": "source", "text": "Kremlin troop figures"}]
    assert Brief.from_dict(data).claims[0].rebuttals[0].checks == (pipeline.Check("source", "Kremlin troop figures"),)


def test_brief_load_refuses_what_is_not_a_finished_run_in_one_line(seed_script: dict[str, Any], tmp_path: Path) -> None:
    llm = FakeLLM(responder=scripted_handler(seed_script))
    run_dir = generate_brief(SEED.read_text(encoding="utf-8"), llm=llm, runs_dir=tmp_path / "runs").run_dir
    assert run_dir is not None
    damaged = json.loads((run_dir / "brief.json").read_text(encoding="utf-8"))
    damaged["claims"][0]["centrality"] = 9
    cases = [(tmp_path / "nowhere", "is not a counterpoint run")]
    (run_dir / "brief.json").write_text(json.dumps(damaged), encoding="utf-8")
    cases.append((run_dir, "brief.json is damaged ($.claims[0].centrality"))
    for where, message in cases:
        with pytest.raises(RunDirError) as raised:
            Brief.load(where)
        assert message in str(raised.value) and "\n" not in str(raised.value)
    (run_dir / "brief.json").write_text("{", encoding="utf-8")
    with pytest.raises(RunDirError, match=r"cannot read .*brief\.json as JSON"):
        Brief.load(run_dir)
    (run_dir / "brief.json").unlink()
    with pytest.raises(RunDirError, match=r"has no brief\.json"):
        Brief.load(run_dir)


def test_failures_are_structured_for_claims_and_extraction(seed_script: dict[str, Any], tmp_path: Path) -> None:
    answer = scripted_handler(seed_script)
    llm = FakeLLM(responder=lambda unit, body: "not json" if unit == "C2" else answer(unit, body))
    brief = generate_brief(SEED.read_text(encoding="utf-8"), llm=llm, reasks=1)
    assert brief.status == "partial"
    (failure,) = brief.failures
    assert (failure.unit, failure.kind) == ("C2", "invalid") and failure.message.startswith("no valid output")
    assert brief.claims[1].error == failure and brief.claims[1].status == "failed"
    assert [entry["unit"] for entry in llm.history].count("C2") == 2, "one re-ask with reasks=1"

    refusing = FakeLLM(responder=lambda unit, body: pipeline_refusal())
    failed = generate_brief(SEED.read_text(encoding="utf-8"), llm=refusing, runs_dir=tmp_path / "runs")
    assert failed.status == "failed" and failed.claims == ()
    assert [(f.unit, f.kind) for f in failed.failures] == [("extract", "refused")]
    assert failed.run_dir is not None
    assert read_brief(failed.run_dir)["extraction_error"]["kind"] == "refused"
    assert {f.kind for f in failed.failures} <= set(FAILURE_KINDS)


def pipeline_refusal() -> Any:
    from pipeline.llm import Reply

    return Reply(content=None, refusal="I will not analyse this.")


# -- event loops --------------------------------------------------------------------------------


def test_gathered_briefs_share_nothing(tmp_path: Path) -> None:
    """Two briefs awaited together, each on its own endpoint: each record holds its own calls only,
    and the calls overlapped in time (they did run together)."""
    seed = json.loads((ROOT / "tests" / "data" / "seed_script.json").read_text(encoding="utf-8"))
    with (
        FakeOpenAIServer(scripted_handler(seed), latency=0.02) as first,
        FakeOpenAIServer(scripted_handler(seed), latency=0.02) as second,
    ):
        second.script("C1", FakeResponse(content=None, refusal="no"))

        async def both() -> list[Brief]:
            return list(
                await asyncio.gather(
                    agenerate_brief(SEED.read_text(), base_url=first.base_url, api_key=TEST_KEY, runs_dir=tmp_path),
                    agenerate_brief(path=NEWS_PAGE, base_url=second.base_url, api_key=TEST_KEY, runs_dir=tmp_path),
                )
            )

        one, two = asyncio.run(both())
        urls = {first: first.base_url, second: second.base_url}
    assert (one.status, two.status) == ("complete", "partial")
    assert [(f.unit, f.kind) for f in two.failures] == [("C1", "refused")]
    assert two.claims[0].status == "refused"
    assert one.run_dir != two.run_dir and one.run_dir is not None and two.run_dir is not None
    for brief, server in ((one, first), (two, second)):
        calls = [json.loads(line) for line in (brief.run_dir / "calls.jsonl").read_text().splitlines()]
        assert len(calls) == len(server.requests) == 10
        assert read_manifest(brief.run_dir)["endpoint"] == urls[server]
    assert [c.status for c in one.claims] == ["ok"] * 8
    assert min(r.received for r in second.requests) < max(r.answered or 0 for r in first.requests)
    assert min(r.received for r in first.requests) < max(r.answered or 0 for r in second.requests)


def test_one_injected_client_cannot_write_two_briefs_at_once(seed_script: dict[str, Any]) -> None:
    gate = asyncio.Event()

    class HeldLLM(FakeLLM):
        """Holds every request until the gate opens, so the first brief is surely still running."""

        async def _request(self, ctx: Any, body: dict[str, Any]) -> Any:
            await gate.wait()
            return await super()._request(ctx, body)

    llm = HeldLLM(responder=scripted_handler(seed_script))

    async def both() -> tuple[Any, Any]:
        first = asyncio.create_task(agenerate_brief(SEED.read_text(), llm=llm))
        while not llm.running:
            await asyncio.sleep(0.01)
        second = await asyncio.gather(agenerate_brief(SEED.read_text(), llm=llm), return_exceptions=True)
        gate.set()
        return await first, second[0]

    first, second = asyncio.run(asyncio.wait_for(both(), 60))
    assert isinstance(first, Brief) and first.status == "complete"
    assert isinstance(second, ConfigError) and "already writing another brief" in str(second)
    assert generate_brief(SEED.read_text(), llm=llm).status == "complete", "free again afterwards"


def test_generate_brief_inside_a_running_loop_runs_on_a_worker_thread(server: FakeOpenAIServer) -> None:
    events: list[str] = []

    async def handler() -> Brief:
        return generate_brief(
            SEED.read_text(), base_url=server.base_url, api_key=TEST_KEY, on_event=lambda kind, **_: events.append(kind)
        )

    brief = asyncio.run(handler())
    assert brief.status == "complete" and len(server.requests) == 10
    assert "stage" in events and "attempt" in events


# -- nothing written unless given --------------------------------------------------------------


def test_a_library_call_writes_nothing_it_was_not_given(server: FakeOpenAIServer, bare_home: Path) -> None:
    brief = generate_brief(SEED.read_text(), base_url=server.base_url, api_key=TEST_KEY)
    assert brief.status == "complete" and brief.run_dir is None and len(server.requests) == 10
    assert files_under(bare_home) == {bare_home / "cwd"}
    # A cache_dir given is used: the second call is answered from it.
    cache = bare_home / "given-cache"
    generate_brief(SEED.read_text(), base_url=server.base_url, api_key=TEST_KEY, cache_dir=cache)
    again = generate_brief(SEED.read_text(), base_url=server.base_url, api_key=TEST_KEY, cache_dir=cache)
    assert len(server.requests) == 20 and again.usage.cache_hits == 10
    assert {path.parts[len(bare_home.parts)] for path in files_under(bare_home)} == {"cwd", "given-cache"}


def test_the_cli_keeps_its_default_cache(server: FakeOpenAIServer, bare_home: Path, cli) -> None:
    result = cli("run", str(SEED))
    assert result.exit_code == 0, result.stderr
    assert list((bare_home / ".cache" / "counterpoint" / "responses").rglob("*.json"))


# -- transport errors from an injected client --------------------------------------------------


def transport_errors() -> list[BaseException]:
    request = httpx2.Request("POST", "http://127.0.0.1:9/v1/chat/completions")
    return [
        ConnectionError("reset"),
        TimeoutError(),
        OSError("network is unreachable"),
        httpx2.ConnectError("refused", request=request),
        openai.APIConnectionError(request=request),
    ]


@pytest.mark.parametrize("error", transport_errors(), ids=lambda error: type(error).__name__)
def test_a_transport_error_from_an_injected_client_is_retried(
    error: BaseException, seed_script: dict[str, Any], tmp_path: Path
) -> None:
    answer = scripted_handler(seed_script)
    pending = [error, error]
    llm = FakeLLM(responder=lambda unit, body: pending.pop() if unit == "C1" and pending else answer(unit, body))
    brief = generate_brief(SEED.read_text(), llm=llm, runs_dir=tmp_path)
    assert brief.status == "complete" and brief.run_dir is not None
    outcomes = [json.loads(line)["outcome"] for line in (brief.run_dir / "calls.jsonl").read_text().splitlines()]
    expected = "timeout" if "Timeout" in type(error).__name__ else "connection_error"
    assert outcomes.count(expected) == 2 and outcomes.count("ok") == 10


def test_a_transport_error_that_persists_fails_only_its_unit(seed_script: dict[str, Any]) -> None:
    answer = scripted_handler(seed_script)
    llm = FakeLLM(responder=lambda unit, body: ConnectionError("down") if unit == "C1" else answer(unit, body))
    brief = generate_brief(SEED.read_text(), llm=llm)
    assert brief.status == "partial"
    (failure,) = brief.failures
    assert (failure.unit, failure.kind) == ("C1", "transport") and "gave up after 5 attempts" in failure.message
    assert [entry["unit"] for entry in llm.history].count("C1") == 5


def test_the_environment_gives_the_endpoint(server: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", TEST_KEY)
    assert generate_brief(SEED.read_text()).status == "complete"
    assert {request.headers["authorization"] for request in server.requests} == {f"Bearer {TEST_KEY}"}


def test_a_bug_mid_run_leaves_the_record_failed_not_running(seed_script: dict[str, Any], tmp_path: Path) -> None:
    """An exception no stage expects (here one a fake raises) propagates, and the manifest no longer
    claims a run in progress: `latest` and `runs` must not take it for one."""
    llm = FakeLLM(seed_script["extract"], LookupError("a bug in a model adapter"))
    with pytest.raises(LookupError):
        generate_brief(SEED.read_text(encoding="utf-8"), llm=llm, runs_dir=tmp_path / "runs")
    (manifest,) = (tmp_path / "runs").glob("*/manifest.json")
    assert read_manifest(manifest.parent)["status"] == "failed"


def test_every_run_option_is_a_keyword_argument_with_the_same_default() -> None:
    """The library's settings are `counterpoint run`'s, with its defaults; the plain and the async
    call take the same arguments. (runs_dir differs on purpose: a library call records nothing
    unless given one; the rest are about resuming, printing or --local.)"""
    import inspect

    from pipeline.cli.run import run

    cli_only = {"article", "runs_dir", "no_cache", "resume_ref", "force", "as_json", "quiet"}
    cli_only |= {"use_local", "model_file", "n_ctx"}
    library = inspect.signature(agenerate_brief).parameters
    assert inspect.signature(generate_brief).parameters == library
    for option in run.params:
        if option.name in cli_only:
            continue
        assert option.name in library, option.name
        default = option.to_info_dict()["default"]  # None for an option without one
        assert library[option.name].default == (False if option.is_flag else default), option.name
        assert library[option.name].kind is inspect.Parameter.KEYWORD_ONLY


def test_a_call_with_no_endpoint_fails_before_the_article_is_fetched() -> None:
    with pytest.raises(ConfigError, match="no model endpoint configured"):
        generate_brief(url="http://127.0.0.1:9/opinion", allow_private_hosts=True)
