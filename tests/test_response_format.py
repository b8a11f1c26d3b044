"""Structured-output negotiation: each mode, and the auto fallback chain, against the fake server."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pipeline import schemas
from pipeline.testing import FakeOpenAIServer, FakeResponse, scripted_handler

from .conftest import SEED, read_brief, read_manifest


def picky_server(seed_script: dict[str, Any], rejects: set[str], *, fenced: bool = False) -> FakeOpenAIServer:
    """A server that answers 400 to the response-format types in `rejects`, like many local servers."""
    answer = scripted_handler(seed_script)

    def handler(unit: str, body: dict[str, Any]) -> Any:
        kind = (body.get("response_format") or {}).get("type", "none")
        if kind in rejects:
            return FakeResponse(status=400, error_message=f"response_format type '{kind}' is not supported")
        content = answer(unit, body)
        return f"```json\n{json.dumps(content)}\n```" if fenced else content

    return FakeOpenAIServer(handler)


def formats_sent(server: FakeOpenAIServer) -> list[str]:
    return [(r.body.get("response_format") or {}).get("type", "none") for r in server.requests]


def run(cli_env, server: FakeOpenAIServer, *args: str):
    return cli_env("run", str(SEED), "--base-url", server.base_url, *args)


def manifest_of(result) -> dict[str, Any]:
    return read_manifest(result.run_dir)


def test_auto_sends_strict_json_schema(cli_plain, seed_script) -> None:
    with picky_server(seed_script, set()) as server:
        result = run(cli_plain, server)
    assert result.exit_code == 0, result.stderr
    assert set(formats_sent(server)) == {"json_schema"}
    first = server.requests[0].body["response_format"]["json_schema"]
    assert first["strict"] is True and first["name"] == "claims"
    assert first["schema"] == schemas.load("claims")
    assert manifest_of(result)["response_format"] == {"requested": "auto", "used": "json_schema"}


def test_auto_falls_back_to_json_object_with_schema_and_remembers(cli_plain, seed_script) -> None:
    with picky_server(seed_script, {"json_schema"}) as server:
        result = run(cli_plain, server)
    assert result.exit_code == 0, result.stderr
    assert formats_sent(server) == ["json_schema"] + ["json_object"] * 10
    rebut = next(r for r in server.requests if r.unit == "C1")
    assert rebut.body["response_format"] == {"type": "json_object", "schema": schemas.load("rebuttal")}
    assert manifest_of(result)["response_format"] == {"requested": "auto", "used": "json_object"}
    brief = read_brief(result.run_dir)
    assert brief["run"]["response_format"] == "json_object"


def test_auto_falls_back_to_prompt_only_when_both_are_rejected(cli_plain, seed_script) -> None:
    with picky_server(seed_script, {"json_schema", "json_object"}, fenced=True) as server:
        result = run(cli_plain, server)
    assert result.exit_code == 0, result.stderr
    assert formats_sent(server) == ["json_schema", "json_object"] + ["none"] * 10
    last_message = server.requests[-1].body["messages"][-1]["content"]
    assert "validates against this JSON Schema" in last_message
    assert json.dumps(schemas.load("synthesis"), indent=1) in last_message
    assert manifest_of(result)["response_format"]["used"] == "prompt"


@pytest.mark.parametrize(
    "mode,expected", [("json_object", "json_object"), ("prompt", "none"), ("json_schema", "json_schema")]
)
def test_explicit_mode_is_used_throughout(cli_plain, seed_script, mode: str, expected: str) -> None:
    with picky_server(seed_script, set()) as server:
        result = run(cli_plain, server, "--response-format", mode)
    assert result.exit_code == 0, result.stderr
    assert set(formats_sent(server)) == {expected}
    assert manifest_of(result)["response_format"] == {"requested": mode, "used": mode}


def test_env_var_selects_the_mode(cli_plain, seed_script, monkeypatch) -> None:
    monkeypatch.setenv("COUNTERPOINT_RESPONSE_FORMAT", "json_object")
    with picky_server(seed_script, set()) as server:
        result = cli_plain("run", str(SEED), "--base-url", server.base_url)
    assert result.exit_code == 0, result.stderr
    assert set(formats_sent(server)) == {"json_object"}


def test_explicit_mode_rejected_does_not_fall_back(cli_plain, seed_script) -> None:
    with picky_server(seed_script, {"json_schema"}) as server:
        result = run(cli_plain, server, "--response-format", "json_schema")
    assert result.exit_code == 1
    assert formats_sent(server) == ["json_schema"]
    assert "response format json_schema" in result.stderr


def test_invalid_output_is_validated_the_same_in_every_mode(cli_plain, seed_script) -> None:
    with picky_server(seed_script, {"json_schema", "json_object"}) as server:
        server.script("C2", {"steelman": "only this"})
        result = run(cli_plain, server)
    assert result.exit_code == 0, result.stderr
    outcomes = [
        json.loads(line)["outcome"]
        for line in (result.run_dir / "calls.jsonl").read_text().splitlines()
        if json.loads(line)["unit"] == "C2"
    ]
    assert outcomes == ["invalid", "ok"]
