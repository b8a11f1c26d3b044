"""Where the article goes: the endpoint is checked, recorded, reused on resume, and scopes the cache."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from pipeline import api
from pipeline.cache import ResponseCache
from pipeline.engine import Settings
from pipeline.errors import ConfigError, ResumeMismatch
from pipeline.testing import FakeOpenAIServer, scripted_handler

from .conftest import SEED, TEST_KEY, read_brief, read_manifest, run_partially

BAD_BASE_URLS = [
    "",
    "   ",
    "http://[::1",
    "http://127.0.0.1:99999/v1",
    "127.0.0.1:8080/v1",
    "localhost:8080/v1",
    "ftp://127.0.0.1/v1",
    "file:///etc/passwd",
    "http:///v1",
    "http://a\nb/v1",
    "http://127.0.0.1:8080/v 1",
]


def manifest_of(run_dir: Path) -> dict:
    return read_manifest(run_dir)


def partial_run(cli, server) -> Path:
    """A run on `server` left partial: C3 failed on two 503s."""
    return run_partially(cli, server).run_dir


@pytest.mark.parametrize("url", BAD_BASE_URLS)
def test_a_malformed_base_url_is_a_usage_error_before_anything(cli, server, runs_dir: Path, url: str) -> None:
    result = cli("run", str(SEED), "--base-url", url, endpoint=False)
    assert result.exit_code == 2
    assert "Error: Invalid value for '--base-url'" in result.stderr
    assert "e.g. http://127.0.0.1:8080/v1" in result.stderr or "port" in result.stderr
    assert not runs_dir.exists() and server.requests == []


@pytest.mark.parametrize("url", BAD_BASE_URLS)
def test_the_library_refuses_the_same_base_urls(url: str) -> None:
    for call in (
        lambda: api.make_client(settings=Settings(), base_url=url, api_key=TEST_KEY),
        lambda: api.generate_brief(SEED.read_text(), base_url=url, api_key=TEST_KEY),
    ):
        with pytest.raises(ConfigError) as raised:
            call()
        assert str(raised.value).startswith("base_url= ") and "--base-url" not in str(raised.value)


def test_a_password_in_a_malformed_base_url_is_not_echoed(cli) -> None:
    result = cli("run", str(SEED), "--base-url", "http://editor:hunter2@[::1/v1", endpoint=False)
    assert result.exit_code == 2 and "'http://***@[::1/v1' is not a valid URL" in result.stderr
    assert "hunter2" not in result.stderr + result.stdout


def test_the_endpoint_is_recorded_without_credentials(cli, server) -> None:
    host = server.base_url.removeprefix("http://")
    result = cli("run", str(SEED), "--base-url", f"http://editor:hunter2@{host}/#frag", endpoint=False)
    assert result.exit_code == 0, result.stderr
    manifest = manifest_of(result.run_dir)
    assert manifest["endpoint"] == server.base_url and manifest["local"] is None and manifest["no_cache"] is False
    assert "hunter2" not in "".join(path.read_text() for path in result.run_dir.iterdir() if path.is_file())


def test_the_default_endpoint_is_written_out(tmp_path: Path) -> None:
    client = api.make_client(settings=Settings(), api_key=TEST_KEY)
    assert client.endpoint is not None and client.endpoint.record()["endpoint"] == "https://api.openai.com/v1"


def test_resume_without_base_url_goes_to_the_recorded_endpoint(cli, server) -> None:
    run_dir = partial_run(cli, server)
    seen = len(server.requests)
    # OPENAI_API_KEY is set (the cli fixture), no --base-url, no OPENAI_BASE_URL: not OpenAI, the run's server.
    result = cli("run", "--resume", "latest", endpoint=False)
    assert result.exit_code == 0, result.stderr
    assert [r.unit for r in server.requests[seen:]] == ["C3", "synthesize"]
    assert manifest_of(run_dir)["endpoint"] == server.base_url
    assert read_brief(run_dir)["run"]["endpoint_host"] == server.base_url[7:-3]


def test_resume_on_another_endpoint_is_refused_unless_forced(cli, server, seed_script) -> None:
    run_dir = partial_run(cli, server)
    seen = len(server.requests)
    with FakeOpenAIServer(scripted_handler(seed_script)) as other:
        refused = cli("run", "--resume", "latest", "--base-url", other.base_url, endpoint=False)
        assert refused.exit_code == 1
        assert refused.stderr == (
            f"error: cannot resume {run_dir.name}: the run was started on {server.base_url}, not {other.base_url}; "
            "resume without --base-url (and with OPENAI_BASE_URL unset, no --local or --model-file) to use the "
            "recorded endpoint, or pass --force to send the rest there\n"
        )
        assert other.requests == [] and len(server.requests) == seen
        from_env = cli("run", "--resume", "latest", endpoint=False, env={"OPENAI_BASE_URL": other.base_url})
        assert from_env.exit_code == 1 and from_env.stderr == refused.stderr
        assert other.requests == []

        forced = cli("run", "--resume", "latest", "--base-url", other.base_url, "--force", endpoint=False)
        assert forced.exit_code == 0, forced.stderr
        assert (
            f"warning: resuming anyway (--force): the run was started on {server.base_url}, not {other.base_url}"
        ) in forced.stderr
        assert [r.unit for r in other.requests] == ["C3", "synthesize"]
        assert manifest_of(run_dir)["endpoint"] == other.base_url  # the record says where the rest went
    assert len(server.requests) == seen


def test_an_old_run_without_a_recorded_endpoint_is_not_sent_to_openai(cli, server) -> None:
    run_dir = partial_run(cli, server)
    manifest = manifest_of(run_dir)
    for name in ("endpoint", "local", "no_cache"):
        del manifest[name]
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    seen = len(server.requests)
    refused = cli("run", "--resume", "latest", endpoint=False)
    assert refused.exit_code == 1 and len(server.requests) == seen
    assert refused.stderr == (
        f"error: run {run_dir.name} does not record its endpoint; pass --base-url (or --local) "
        "to say where to send the rest of it\n"
    )
    given = cli("run", "--resume", "latest")  # the cli fixture passes --base-url
    assert given.exit_code == 0, given.stderr
    assert manifest_of(run_dir)["endpoint"] == server.base_url


def test_the_library_resume_follows_the_same_rule(cli, server, runs_dir: Path) -> None:
    run_dir = partial_run(cli, server)
    seen = len(server.requests)
    settings = Settings(**{k: v for k, v in manifest_of(run_dir)["settings"].items() if k != "max_calls"})
    default = api.make_client(settings=settings, api_key=TEST_KEY)  # no base_url: the public default
    with pytest.raises(ResumeMismatch, match=r"started on http://127\.0\.0\.1"):
        asyncio.run(api.resume_brief(runs_dir, "latest", settings, default))
    assert len(server.requests) == seen
    same = api.make_client(settings=settings, base_url=server.base_url, api_key=TEST_KEY)
    brief = asyncio.run(api.resume_brief(runs_dir, "latest", settings, same))
    assert brief.status == "complete" and [r.unit for r in server.requests[seen:]] == ["C3", "synthesize"]


def test_no_cache_is_recorded_and_kept_on_resume(cli, server, runs_dir: Path) -> None:
    first = run_partially(cli, server, "--no-cache")
    assert manifest_of(first.run_dir)["no_cache"] is True
    assert cli("run", "--resume", "latest", endpoint=False).exit_code == 0
    assert manifest_of(first.run_dir)["no_cache"] is True
    assert not (runs_dir.parent / "cache").exists()  # nothing written to the cache either time


def test_the_cache_never_serves_one_endpoint_the_answers_of_another(cli, seed_script, runs_dir: Path) -> None:
    with (
        FakeOpenAIServer(scripted_handler(seed_script), model="same-model") as first,
        FakeOpenAIServer(scripted_handler(seed_script), model="same-model") as second,
    ):
        a = cli("run", str(SEED), "--model", "same-model", "--base-url", first.base_url, endpoint=False)
        b = cli("run", str(SEED), "--model", "same-model", "--base-url", second.base_url, endpoint=False)
        second_url = second.base_url
        again = cli("run", str(SEED), "--model", "same-model", "--base-url", second.base_url, endpoint=False)
        assert a.exit_code == b.exit_code == again.exit_code == 0
        assert len(first.requests) == len(second.requests) == 10  # `again` came from second's own answers
    manifest = manifest_of(b.run_dir)
    assert manifest["endpoint"] == second_url and manifest["cache"]["hits"] == 0
    assert read_brief(b.run_dir)["run"]["endpoint_host"] == second_url[7:-3]
    assert manifest_of(again.run_dir)["cache"]["hits"] == 10


def test_a_cache_entry_answered_by_another_endpoint_is_a_miss(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path)
    request = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    key = cache.key(request, endpoint="http://a/v1")
    assert key != cache.key(request, endpoint="http://b/v1")
    cache.put(key, {"content": "{}", "finish_reason": "stop", "refusal": None}, endpoint="http://a/v1")
    assert cache.get(key, endpoint="http://a/v1") == {"content": "{}", "finish_reason": "stop", "refusal": None}
    assert cache.get(key, endpoint="http://b/v1") is None  # e.g. an entry copied or written under a wrong key


def test_a_local_run_resumes_locally_on_its_model_file(cli, server, tmp_path: Path) -> None:
    from pipeline import local

    if local.missing_runtime():
        pytest.skip("the runtime check comes before the model file's")
    run_dir = partial_run(cli, server)
    model_file = tmp_path / "recorded.gguf"
    model_file.write_bytes(b"PK\x03\x04 not a model")  # refused before llama.cpp starts: the test stays fast
    manifest = manifest_of(run_dir)
    manifest.update(endpoint="http://127.0.0.1:9/v1", local={"model_file": str(model_file)})
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    seen = len(server.requests)

    result = cli("run", "--resume", "latest", endpoint=False)  # a key in the environment, no --base-url
    assert result.exit_code == 1
    assert "not a GGUF file" in result.stderr and str(model_file) in result.stderr
    hosted = cli("run", "--resume", "latest")  # --base-url: not where the run was started
    assert hosted.exit_code == 1
    assert f"the run was started on llama.cpp (--local) with {model_file}, not {server.base_url}" in hosted.stderr
    assert len(server.requests) == seen


def test_generate_brief_records_its_endpoint_and_locks_nothing_behind(server, runs_dir: Path) -> None:
    brief = api.generate_brief(SEED.read_text(), base_url=server.base_url, api_key=TEST_KEY, runs_dir=runs_dir)
    assert brief.status == "complete" and brief.run_dir is not None
    manifest = manifest_of(brief.run_dir)
    assert (manifest["endpoint"], manifest["local"], manifest["no_cache"]) == (server.base_url, None, True)
    # the lock is released with the run: the run can be resumed (here: nothing left to do) at once
    settings = Settings(**{k: v for k, v in manifest["settings"].items() if k != "max_calls"})
    client = api.make_client(settings=settings, base_url=server.base_url, api_key=TEST_KEY)
    again = asyncio.run(api.resume_brief(runs_dir, "latest", settings, client))
    assert again.status == "complete" and len(server.requests) == 10


@pytest.mark.local_model
def test_a_local_run_resumes_on_llama_cpp_with_its_model_file(cli, server, tmp_path: Path) -> None:
    import os

    from pipeline import local

    if local.missing_runtime():
        pytest.skip("the 'local' extra is not installed")
    run_dir = partial_run(cli, server)
    broken = tmp_path / "recorded.gguf"
    broken.write_bytes(b"GGUF" + os.urandom(4096))  # passes the magic check, so llama.cpp is started on it
    manifest = manifest_of(run_dir)
    manifest.update(endpoint="http://127.0.0.1:9/v1", local={"model_file": str(broken)})
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    seen = len(server.requests)
    result = cli("run", "--resume", "latest", endpoint=False)
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1].startswith("error: the local model server exited at start-up")
    assert (run_dir / local.LOG_NAME).is_file() and len(server.requests) == seen


def test_a_base_url_with_a_line_end_from_a_dotenv_file_works_as_the_url_alone(cli, server) -> None:
    result = cli("run", str(SEED), endpoint=False, env={"OPENAI_BASE_URL": server.base_url + "\r"})
    assert result.exit_code == 0, result.stderr
    assert manifest_of(result.run_dir)["endpoint"] == server.base_url
    assert len(server.requests) == 10
