"""counterpoint.toml: team defaults under options and environment variables, one-line errors naming
the file and key, and `counterpoint doctor` saying where each value in force comes from."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline import config
from pipeline.cli.run import run as run_command
from pipeline.testing import CounterpointFake, FakeOpenAIServer

from .conftest import SEED, one_error_line, read_brief, read_manifest, run_cli, run_partially

DEAD_URL = "http://127.0.0.1:9/v1"  # nothing listens there: a request to it could not succeed


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory of the test's own, with no runs dir or endpoint in the environment."""
    folder = tmp_path / "work"
    folder.mkdir()
    monkeypatch.chdir(folder)
    for name in ("COUNTERPOINT_RUNS_DIR", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    return folder


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def user_file(tmp_path: Path) -> Path:
    return tmp_path / "config" / "counterpoint" / "counterpoint.toml"  # conftest sets XDG_CONFIG_HOME


def test_the_file_gives_the_defaults(workdir: Path) -> None:
    with FakeOpenAIServer() as fake:
        write(
            workdir / "counterpoint.toml",
            f'model = "team-model"\nbase_url = "{fake.base_url}"\nconcurrency = 2\nruns_dir = "briefs"\n',
        )
        result = run_cli("run", str(SEED))
    assert result.exit_code == 0, result.stderr
    assert result.run_dir.parent == workdir / "briefs"
    assert read_manifest(result.run_dir)["settings"]["concurrency"] == 2
    assert {request.body["model"] for request in fake.requests} == {"team-model"}


def test_options_and_environment_variables_beat_the_file(
    workdir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(workdir / "counterpoint.toml", f'model = "file-model"\nbase_url = "{DEAD_URL}"\nruns_dir = "from-file"\n')
    with FakeOpenAIServer() as fake:
        monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
        monkeypatch.setenv("COUNTERPOINT_RUNS_DIR", str(tmp_path / "from-env"))
        monkeypatch.setenv("COUNTERPOINT_MODEL", "env-model")
        by_env = run_cli("run", str(SEED))
        by_option = run_cli("run", str(SEED), "--model", "option-model", "--runs-dir", str(tmp_path / "opt"))
    assert by_env.exit_code == 0 and by_option.exit_code == 0, by_env.stderr + by_option.stderr
    assert by_env.run_dir.parent == tmp_path / "from-env" and by_option.run_dir.parent == tmp_path / "opt"
    models = [request.body["model"] for request in fake.requests]
    assert models == ["env-model"] * 5 + ["option-model"] * 5
    assert not (workdir / "from-file").exists()


def test_the_working_directory_file_wins_key_by_key_over_the_users(workdir: Path, tmp_path: Path) -> None:
    write(user_file(tmp_path), 'model = "user-model"\nconcurrency = 3\nruns_dir = "~/briefs"\n')
    write(workdir / "counterpoint.toml", 'model = "project-model"\n')
    loaded = config.load()
    assert loaded["model"] == config.Value("project-model", workdir / "counterpoint.toml")
    assert loaded["concurrency"] == config.Value(3, user_file(tmp_path))
    assert loaded["runs_dir"].value == Path("~/briefs").expanduser(), "a path may start at the home folder"


@pytest.mark.parametrize(
    "text,message",
    [
        ('modle = "x"\n', "unknown key 'modle'; the keys are model, base_url, concurrency, runs_dir"),
        ('concurrency = "4"\n', "concurrency must be a whole number, not a string ('4')"),
        ("timeout = true\n", "timeout must be a number, not a boolean (True)"),
        ("runs_dir = 3\n", "runs_dir must be a path (a string), not a number (3)"),
        ("concurrency = 0\n", "concurrency = 0 cannot be used: 0 is not in the range 1<=x<=64"),
        ('base_url = "ftp://x"\n', "base_url = 'ftp://x' cannot be used: 'ftp://x' is not an http:// or https://"),
        ('response_format = "xml"\n', "response_format = 'xml' cannot be used: 'xml' is not one of"),
        ('api_key = "sk-secret-123"\n', "api_key: an API key does not belong in a file; set OPENAI_API_KEY instead"),
    ],
)
def test_a_bad_value_is_one_line_naming_the_file_and_key(workdir: Path, text: str, message: str) -> None:
    path = write(workdir / "counterpoint.toml", text)
    with FakeOpenAIServer() as fake:
        result = run_cli("run", str(SEED), "--base-url", fake.base_url)
    assert result.exit_code == 1
    line = one_error_line(result)
    assert line.startswith(f"error: {path}: ") and message in line, line
    assert "sk-secret-123" not in line and fake.requests == []


def test_a_file_that_is_not_toml_is_one_line(workdir: Path, tmp_path: Path) -> None:
    path = write(user_file(tmp_path), "model = \n")
    result = run_cli("doctor")
    assert one_error_line(result) == (
        f"error: {path} is not valid TOML (Invalid value (at line 1, column 9)); fix it or remove it"
    )


def test_every_key_is_a_run_option_with_the_same_environment_variable() -> None:
    options = {param.name: param for param in run_command.params}
    for key in config.KEYS.values():
        assert key.name in options, key.name
        assert options[key.name].envvar == key.envvar, key.name


def test_doctor_says_where_each_value_comes_from(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(workdir / "counterpoint.toml", 'model = "fake-model"\nconcurrency = 3\n')
    monkeypatch.setenv("COUNTERPOINT_RUNS_DIR", "/srv/briefs")
    with FakeOpenAIServer() as fake:
        base_url = fake.base_url
        secret = base_url.replace("http://", "http://editor:s3cret@")
        result = run_cli("doctor", "--json", "--base-url", secret, env={"OPENAI_API_KEY": "sk-test-doctor-1"})
        text = run_cli("doctor", "--base-url", fake.base_url)
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    sources = {s["name"]: (s["value"], s["source"]) for s in report["settings"]}
    assert sources["model"] == ("fake-model", f"file {path}")
    assert sources["base_url"] == (base_url, "option --base-url"), "shown without credentials"
    assert sources["runs_dir"] == ("/srv/briefs", "env COUNTERPOINT_RUNS_DIR")
    assert sources["concurrency"] == (3, f"file {path}")
    assert sources["max_claims"] == (8, "default")
    assert report["warnings"] == [] and "s3cret" not in result.stdout and "sk-test-doctor-1" not in result.stdout
    assert f"set  concurrency = 3 (file {path})" in text.stdout.splitlines()


def test_doctor_warns_when_the_endpoint_does_not_list_the_model(workdir: Path) -> None:
    write(workdir / "counterpoint.toml", 'model = "gpt-4.1-mini"\n')
    with FakeOpenAIServer(models=["qwen2.5:7b-instruct", "llama3.1:8b"]) as fake:
        result = run_cli("doctor", "--base-url", fake.base_url)
        listed = run_cli("doctor", "--base-url", fake.base_url, "--model", "llama3.1:8b")
    assert result.exit_code == 0, result.stderr
    (warning,) = [line for line in result.stdout.splitlines() if line.startswith("warn ")]
    assert warning == (
        f"warn the endpoint does not list model 'gpt-4.1-mini' (file {workdir / 'counterpoint.toml'}); it lists: "
        "qwen2.5:7b-instruct, llama3.1:8b. A run would likely fail with HTTP 404: pass --model, or change where "
        "the model is set"
    )
    assert not [line for line in listed.stdout.splitlines() if line.startswith("warn ")]


def test_the_fixture_endpoint_beats_a_projects_file(
    counterpoint_fake: CounterpointFake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A downstream project's counterpoint.toml cannot send a test's calls anywhere but the fake."""
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "counterpoint.toml", f'base_url = "{DEAD_URL}"\nruns_dir = "project-runs"\n')
    result = run_cli("run", str(SEED))
    assert result.exit_code == 0, result.stderr
    assert result.run_dir.parent == counterpoint_fake.runs_dir
    assert read_brief(result.run_dir)["status"] == "complete" and len(counterpoint_fake.requests) == 5


def test_on_resume_the_recorded_settings_beat_the_file(cli, server, tmp_path: Path, monkeypatch) -> None:
    """A file's value is a default: resuming a run keeps the model and claim count it was started with."""
    monkeypatch.chdir(tmp_path)
    first = run_partially(cli, server, "--no-cache", "--model", "first-model")
    write(tmp_path / "counterpoint.toml", 'model = "team-model"\nmax_claims = 3\n')
    seen = len(server.requests)
    second = cli("run", "--resume", "latest", "--no-cache")
    assert second.exit_code == 0, second.stderr
    assert second.run_dir == first.run_dir
    assert {request.body["model"] for request in server.requests[seen:]} == {"first-model"}
    assert read_manifest(second.run_dir)["settings"]["max_claims"] == 8


def test_doctor_names_where_a_usable_endpoint_came_from(workdir: Path) -> None:
    with FakeOpenAIServer() as fake:
        path = write(workdir / "counterpoint.toml", f'base_url = "{fake.base_url}"\n')
        from_file = run_cli("doctor", "--json", key=None)
        given = run_cli("doctor", "--json", "--base-url", fake.base_url, key=None)
    assert from_file.exit_code == 0, from_file.stderr
    assert json.loads(from_file.stdout)["usable"][0] == f"base_url (file {path})"
    assert json.loads(given.stdout)["usable"][0] == "--base-url"
