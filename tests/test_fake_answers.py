"""The fakes' default answers and scripted failures, and the `counterpoint_fake` fixture.

Default answers must pass every schema and stage check (a brief from them is complete and
`counterpoint validate` finds nothing); each failure kind must look to counterpoint like the real
failure it names, through the real SDK (FakeOpenAIServer) and through an injected FakeLLM alike.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pipeline import generate_brief, schemas, stages
from pipeline.fake_answers import FAULT_KINDS, UNGROUNDED_QUOTE, default_answer
from pipeline.testing import CounterpointFake, FakeLLM, FakeOpenAIServer, unit_of

from .conftest import SEED, SEED_ARTICLE, read_brief, run_cli

ARTICLE = SEED.read_text(encoding="utf-8")
# What counterpoint records for each kind on the attempt it fails, and the unit's failure kind once
# every attempt failed so.
OUTCOME = {
    "refusal": "refused",
    "timeout": "timeout",
    "http_429": "http_429",
    "http_500": "http_500",
    "invalid": "invalid",
    "malformed": "invalid",
    "length": "truncated",
    "ungrounded": "invalid",
    "empty": "empty",
}
FAILURE = {**OUTCOME, "refusal": "refused", "timeout": "transport", "http_429": "transport", "http_500": "transport"}
FAST = ["--max-retries", "1", "--reasks", "1", "--timeout", "0.5"]


def run(*args: str) -> Any:
    """`counterpoint run` on the seed article with no endpoint or runs dir given: the fixture's environment says."""
    return run_cli("run", str(SEED), *args)


def calls(run_dir: Path, unit: str) -> list[str]:
    lines = [json.loads(line) for line in (run_dir / "calls.jsonl").read_text().splitlines()]
    return [line["outcome"] for line in lines if line["unit"] == unit]


def as_dict(brief: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(brief.to_json())
    return data


@pytest.mark.parametrize("response_format", ["json_schema", "json_object", "prompt"])
def test_default_answers_make_a_complete_brief_that_validates(
    counterpoint_fake: CounterpointFake, response_format: str
) -> None:
    result = run("--response-format", response_format)
    assert result.exit_code == 0, result.stderr
    assert result.run_dir.parent == counterpoint_fake.runs_dir, "the fixture's runs dir is the CLI's"
    brief = read_brief(result.run_dir)
    assert brief["status"] == "complete" and [c["id"] for c in brief["claims"]] == ["C1", "C2", "C3"]
    for claim in brief["claims"]:
        assert ARTICLE.count(claim["quote"]) >= 1 and len(claim["rebuttals"]) == 2
    synthesis = brief["synthesis"]
    listed = {r["id"] for c in brief["claims"] for r in c["rebuttals"]}
    assert synthesis["strongest_rebuttals"] and set(synthesis["strongest_rebuttals"]) <= listed
    assert synthesis["rhetoric"] and synthesis["rhetoric"][0]["quote"] in ARTICLE
    checked = run_cli("validate", str(result.run_dir))
    assert checked.exit_code == 0, checked.stdout + checked.stderr
    assert sorted(counterpoint_fake.units) == ["C1", "C2", "C3", "extract", "synthesize"]
    assert any(counterpoint_fake.cache_dir.iterdir()), "the fixture's cache dir is the CLI's"


def test_default_answers_follow_the_request() -> None:
    """At most the claims asked for; a narrowed schema's allowed quotes; only the listed rebuttal ids,
    the failed claims named in a caveat."""
    llm = FakeLLM(constrain_choices=True)
    base = stages.base_messages(SEED_ARTICLE, "n0nce", None)
    body = llm.build_request(
        [*base, {"role": "user", "content": stages.prompts.render("extract_claims", max_claims=2)}],
        "claims",
        100,
        "json_object",
        {
            "claims[].quote": [
                "Putin's primary goal was to keep Syrian President Bashar al-Assad from being driven into the sea."
            ]
        },
    )
    answer = default_answer(body)
    assert answer is not None and [c["quote"] for c in answer["claims"]] == [
        "Putin's primary goal was to keep Syrian President Bashar al-Assad from being driven into the sea."
    ]
    assert len(default_answer({**body, "response_format": {"type": "json_object"}})["claims"]) == 2
    claims = [
        {
            "id": "C1",
            "status": "ok",
            "text": "t",
            "rebuttals": [
                {"id": "C1-R1", "type": "other", "strength": 2, "argument": "a"},
                {"id": "C1-R2", "type": "other", "strength": 5, "argument": "b"},
            ],
        },
        {"id": "C2", "status": "refused", "text": "u", "rebuttals": []},
    ]
    task = stages.prompts.render(
        "synthesize",
        thesis="T",
        claims_digest=stages.claims_outline(claims),
        date="2016-03-15",
        today="2026-11-29",
        failed_claims="C2",
    )
    synthesis = default_answer({"messages": [*base, {"role": "user", "content": task}]})
    assert synthesis is not None and synthesis["strongest_rebuttals"] == ["C1-R2", "C1-R1"], "strongest first"
    assert any("C2" in caveat for caveat in synthesis["caveats"]) and "2016-03-15" in synthesis["caveats"][0]
    assert stages.check_synthesis(synthesis, SEED_ARTICLE, {"C1-R1", "C1-R2"}) == []
    assert schemas.validate("synthesis", synthesis) == []


@pytest.mark.parametrize("kind", [k for k in FAULT_KINDS if k not in ("refusal", "http_401")])
def test_each_failure_once_is_retried_or_reasked(counterpoint_fake: CounterpointFake, kind: str) -> None:
    counterpoint_fake.fail("C2", kind)
    result = run(*FAST)
    assert result.exit_code == 0, result.stderr
    assert read_brief(result.run_dir)["status"] == "complete"
    assert calls(result.run_dir, "C2") == [OUTCOME[kind], "ok"]
    assert len(counterpoint_fake.requests_for("C2")) == 2


@pytest.mark.parametrize("kind", [k for k in FAULT_KINDS if k != "http_401"])
def test_each_failure_every_time_fails_the_unit_as_its_kind(counterpoint_fake: CounterpointFake, kind: str) -> None:
    counterpoint_fake.fail("C2", kind, times=2)
    result = run(*FAST)
    assert result.exit_code == 3, result.stderr
    brief = read_brief(result.run_dir)
    (failed,) = [c for c in brief["claims"] if c["status"] != "ok"]
    assert failed["id"] == "C2" and failed["error"]["kind"] == FAILURE[kind]
    assert failed["status"] == ("refused" if kind == "refusal" else "failed")


def test_a_401_stops_the_run(counterpoint_fake: CounterpointFake) -> None:
    counterpoint_fake.fail("extract", "http_401")
    result = run()
    assert result.exit_code == 1 and "refused the credentials (HTTP 401)" in result.stderr
    assert counterpoint_fake.units == ["extract"], "not retried"


def test_ungrounded_quotes_are_what_the_reask_names(counterpoint_fake: CounterpointFake) -> None:
    counterpoint_fake.fail("extract", "ungrounded").fail("synthesize", "ungrounded")
    result = run()
    assert result.exit_code == 0, result.stderr
    for unit in ("extract", "synthesize"):
        first, again = counterpoint_fake.requests_for(unit)
        assert UNGROUNDED_QUOTE in json.dumps(again.body["messages"][-2])
        assert "not found verbatim in the article" in again.body["messages"][-1]["content"]
        assert unit_of(first.body["messages"]) == unit


def test_answer_overrides_fields_of_the_default(counterpoint_fake: CounterpointFake) -> None:
    counterpoint_fake.answer("extract", thesis="Putin won in Syria.").answer("C1", steelman="The best case.")
    result = run()
    assert result.exit_code == 0, result.stderr
    brief = read_brief(result.run_dir)
    assert brief["thesis"] == "Putin won in Syria."
    assert brief["claims"][0]["steelman"] == "The best case." and brief["claims"][1]["steelman"] != "The best case."
    assert (
        "Thesis: Putin won in Syria." in counterpoint_fake.requests_for("synthesize")[0].body["messages"][-1]["content"]
    )


def test_an_unknown_kind_is_refused_with_the_kinds() -> None:
    with pytest.raises(ValueError, match="unknown fault kind 'http_503'; use one of refusal, timeout"):
        FakeLLM().fail("C1", "http_503")
    with pytest.raises(ValueError, match="times must be at least 1"):
        FakeOpenAIServer().fail("C1", "refusal", times=0)


# -- FakeLLM: the same answers and failures, without HTTP ----------------------------------


def test_fake_llm_answers_every_unit_by_default() -> None:
    llm = FakeLLM()
    brief = as_dict(generate_brief(ARTICLE, llm=llm))
    assert brief["status"] == "complete" and len(brief["claims"]) == 3
    assert sorted(request.unit for request in llm.requests) == ["C1", "C2", "C3", "extract", "synthesize"]


@pytest.mark.parametrize("kind", FAULT_KINDS)
def test_fake_llm_failures_end_as_the_real_ones_do(kind: str) -> None:
    llm = FakeLLM(transport_attempts=2).fail("C2", kind, times=2)
    if kind == "http_401":
        with pytest.raises(Exception, match=r"refused the credentials \(HTTP 401\)") as stopped:
            generate_brief(ARTICLE, llm=llm, reasks=1)
        assert type(stopped.value).__name__ == "AuthError"
        return
    brief = as_dict(generate_brief(ARTICLE, llm=llm, reasks=1))
    (failed,) = [c for c in brief["claims"] if c["status"] != "ok"]
    assert failed["id"] == "C2" and failed["error"]["kind"] == FAILURE[kind]
    assert [r.unit for r in llm.requests].count("C2") == (1 if kind == "refusal" else 2)
    statuses = {"timeout": None, "http_429": 429, "http_500": 500}
    assert next(r.status for r in llm.requests if r.unit == "C2") == statuses.get(kind, 200)


@pytest.mark.parametrize("kind", ["timeout", "http_500", "invalid", "length"])
def test_fake_llm_recovers_from_one_failure(kind: str) -> None:
    llm = FakeLLM().fail("extract", kind).answer("C3", steelman="Given.")
    brief = as_dict(generate_brief(ARTICLE, llm=llm))
    assert brief["status"] == "complete" and brief["claims"][2]["steelman"] == "Given."
    assert [r.unit for r in llm.requests][:2] == ["extract", "extract"]


def test_fake_llm_keeps_its_queue_and_responder_first(seed_script: dict[str, Any]) -> None:
    """Scripted replies still come before the defaults (tests written before them keep working)."""
    llm = FakeLLM(seed_script["extract"])
    base = stages.base_messages(SEED_ARTICLE, "n0nce", None)
    data = asyncio.run(stages.extract_claims(llm, base, SEED_ARTICLE, "n0nce", max_claims=8, reasks=0))
    assert data == seed_script["extract"]


# -- the fixture and the plugin ------------------------------------------------------------


def test_the_fixture_points_the_environment_at_the_fake(counterpoint_fake: CounterpointFake, tmp_path: Path) -> None:
    import os

    assert os.environ["OPENAI_BASE_URL"] == counterpoint_fake.base_url.rstrip("/")
    assert counterpoint_fake.base_url.startswith("http://127.0.0.1:")
    assert os.environ["OPENAI_API_KEY"] and os.environ["COUNTERPOINT_RUNS_DIR"] == str(counterpoint_fake.runs_dir)
    assert counterpoint_fake.runs_dir.is_relative_to(tmp_path) and counterpoint_fake.cache_dir.is_relative_to(tmp_path)


def test_the_models_list_is_configurable() -> None:
    import urllib.request

    with (
        FakeOpenAIServer(models=["a-model", "b-model"]) as fake,
        urllib.request.urlopen(f"{fake.base_url}/models", timeout=5) as response,
    ):
        listed = [m["id"] for m in json.loads(response.read())["data"]]
    assert listed == ["a-model", "b-model"]


def test_pytest_is_no_runtime_dependency() -> None:
    import importlib.metadata

    required = importlib.metadata.requires("counterpoint") or []
    assert not [r for r in required if r.startswith("pytest") and "extra ==" not in r]
    code = "import sys, pipeline.testing, pipeline.cli; assert 'pytest' not in sys.modules, 'pytest imported'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    (entry,) = [e for e in importlib.metadata.entry_points(group="pytest11") if e.name == "counterpoint"]
    assert entry.value == "pipeline.pytest_plugin"
