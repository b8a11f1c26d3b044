"""Configuration errors are found before a run directory exists; `latest` is the run created last."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline import api, prompts, schemas
from pipeline.engine import Settings
from pipeline.errors import ConfigError

from .conftest import ROOT, SEED, TEST_KEY, read_manifest


def forget_resources() -> None:
    """Prompts and schemas are cached per process: reload them under the next command's environment."""
    prompts._template.cache_clear()
    schemas._load.cache_clear()
    schemas.validator.cache_clear()


@pytest.fixture
def fresh_resources() -> Iterator[None]:
    forget_resources()
    yield
    forget_resources()


@pytest.mark.parametrize(
    "option,value",
    [
        ("--timeout", "nan"),
        ("--timeout", "inf"),
        ("--timeout", "-inf"),
        ("--temperature", "nan"),
        ("--fetch-timeout", "nan"),
    ],
)
def test_non_finite_numbers_are_usage_errors(cli, server, runs_dir: Path, option: str, value: str) -> None:
    result = cli("run", str(SEED), option, value)
    assert result.exit_code == 2
    assert f"Error: Invalid value for '{option}'" in result.stderr
    assert "internal error" not in result.stderr
    assert not runs_dir.exists() and server.requests == []


def test_the_library_refuses_non_finite_numbers() -> None:
    with pytest.raises(ConfigError, match="timeout must be a finite number"):
        api.make_client(settings=Settings(), api_key=TEST_KEY, timeout=float("nan"))
    with pytest.raises(ConfigError, match="temperature must be a finite number"):
        api.make_client(settings=Settings(temperature=float("nan")), api_key=TEST_KEY)


def broken_schemas(tmp_path: Path) -> Path:
    folder = tmp_path / "schemas"
    shutil.copytree(ROOT / "schemas", folder)
    (folder / "rebuttal.schema.json").write_text('{"type": "object",', encoding="utf-8")
    return folder


@pytest.mark.parametrize(
    "variable,folder,expected",
    [
        (
            "COUNTERPOINT_SCHEMAS_DIR",
            lambda tmp: tmp / "absent",
            (
                "schema file {folder}/claims.schema.json cannot be "
                "read (No such file or directory); fix or unset COUNTERPOINT_SCHEMAS_DIR"
            ),
        ),
        ("COUNTERPOINT_SCHEMAS_DIR", broken_schemas, "schema file {folder}/rebuttal.schema.json is not JSON "),
        (
            "COUNTERPOINT_PROMPTS_DIR",
            lambda tmp: tmp / "absent",
            (
                "prompt file {folder}/system.md cannot be read "
                "(No such file or directory); fix or unset COUNTERPOINT_PROMPTS_DIR"
            ),
        ),
    ],
    ids=["missing-schemas", "invalid-schema", "missing-prompts"],
)
def test_a_broken_resource_folder_fails_before_a_run_directory(
    cli, server, runs_dir: Path, tmp_path: Path, fresh_resources: None, variable: str, folder, expected: str
) -> None:
    where = folder(tmp_path)
    result = cli("run", str(SEED), env={variable: str(where)})
    assert result.exit_code == 1
    assert len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith("error: " + expected.format(folder=where))
    assert list(runs_dir.glob("*")) == [] and server.requests == []
    # and an earlier, sound run stays `latest`
    forget_resources()
    good = cli("run", str(SEED))
    assert good.exit_code == 0
    forget_resources()
    assert cli("run", str(SEED), env={variable: str(where)}).exit_code == 1
    assert cli("show", "latest", "--runs-dir", str(runs_dir), "--format", "path").stdout.strip() == str(good.run_dir)


def test_latest_is_the_run_created_last_not_the_highest_id(cli, runs_dir: Path) -> None:
    older, newer = cli("run", str(SEED)).run_dir, cli("run", str(SEED)).run_dir
    # Within one second, ids differ only in their random part: make it point the wrong way.
    older = older.rename(runs_dir / "20991231T235959Z-same-second-ffffff")
    newer = newer.rename(runs_dir / "20991231T235959Z-same-second-000000")
    # A folder left without a manifest (a run that failed before it started) is no run at all.
    (runs_dir / "20991231T235959Z-same-second-zzzzzz").mkdir()
    (runs_dir / "20991231T235959Z-same-second-zzzzzz" / "article.txt").write_text("text")
    (runs_dir / "20991231T235959Z-same-second-nested").mkdir()
    (runs_dir / "20991231T235959Z-same-second-nested" / "manifest.json").write_text("[" * 100_000)
    shown = cli("show", "latest", "--runs-dir", str(runs_dir), "--format", "path")
    assert shown.exit_code == 0 and shown.stdout.strip() == str(newer)
    assert read_manifest(older)["created"] < read_manifest(newer)["created"]


@pytest.mark.parametrize("value", ["", "ftp://127.0.0.1/v1", "127.0.0.1:8080/v1", "http://[::1"])
def test_doctor_checks_the_base_url_as_run_does(cli, server, value: str) -> None:
    result = cli("doctor", "--base-url", value)
    assert result.exit_code == 2
    assert "Invalid value for '--base-url'" in result.stderr
    assert server.requests == []


def test_doctor_shows_no_credentials_from_the_url_and_probes_the_models_route(cli, server) -> None:
    port = server.base_url.split(":")[2].split("/")[0]
    secret_url = f"http://editor:s3cretpw@127.0.0.1:{port}/v1?key=sk-querysecret123"
    result = cli("doctor", "--base-url", secret_url, "--json")
    assert "s3cretpw" not in result.stdout + result.stderr
    assert "sk-querysecret123" not in result.stdout + result.stderr
    (check,) = [c for c in json.loads(result.stdout)["checks"] if c["name"] == "OpenAI-compatible endpoint"]
    assert check["ok"], check
    assert check["detail"].startswith(f"{server.base_url} answers")
