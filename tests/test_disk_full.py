"""A full disk or a closed stdin: one line that says what to do, and a run that can always be finished.

The disk is really full: the runs directory is a small tmpfs (needs root and mount(8)), so the
failure hits a different write at each size; then space is freed and the printed command is run.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import COUNTERPOINT, SEED, TEST_KEY, read_manifest


def _mount(mountpoint: Path, size: str, *options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["mount", "-t", "tmpfs", "-o", ",".join([*options, f"size={size}"]), "tmpfs", str(mountpoint)],
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """An empty tmpfs mounted at tmp_path/disk (sized by the test with `resize`)."""
    mountpoint = tmp_path / "disk"
    mountpoint.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("needs root and mount(8) to make a really full disk (a small tmpfs)")
    mounted = _mount(mountpoint, "4k")
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", str(mountpoint)], check=False)


@pytest.fixture
def runs_dir(small_disk: Path) -> Path:
    """The `cli` fixture's runs directory, on the small disk."""
    return small_disk / "runs"


def resize(mountpoint: Path, size: str) -> None:
    done = _mount(mountpoint, size, "remount")
    assert done.returncode == 0, done.stderr


def error_line(stderr: str) -> str:
    """The one error line, last on stderr (in-process, the fake server's thread may log a dropped
    connection there too)."""
    errors = [line for line in stderr.strip().splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and stderr.strip().endswith(errors[0]), stderr
    return errors[0]


# Free space for the run, and the write it runs out at. The seed run writes article.txt (1 page),
# .lock (1, its holder's pid, skipped when it does not fit), manifest.json (1, and 1 more while it is replaced), calls.jsonl (4 by the end), units/ (10),
# brief.json (5, with its verification checks), brief.md (3), brief.html (9), each at least one 4 KiB page: probed at every 4 KiB
# from 4 to 128, these sizes fall inside one write's range (the claims finish in any order).
SIZES = {
    "4k": ("manifest.json",),
    "12k": ("calls.jsonl",),
    "16k": ("units/extract.json",),
    "36k": ("units/C", "calls.jsonl"),
    "72k": ("brief.json",),
    "88k": ("brief.md",),
    "104k": ("brief.html",),
}


@pytest.mark.parametrize("size", SIZES)
def test_a_full_disk_is_one_line_and_the_run_finishes_once_space_is_free(
    cli, server, small_disk: Path, runs_dir: Path, size: str
) -> None:
    resize(small_disk, size)
    result = cli("run", str(SEED), "--no-cache")
    assert result.exit_code == 1
    line = error_line(result.stderr)
    assert "No space left on device" in line and "internal error" not in line
    assert any(f"/{name}" in line.split(" (")[0] for name in SIZES[size]), line
    saved = sorted(runs_dir.iterdir())
    if "nothing was saved" in line:  # the run never started: no folder is left to mislead `latest`
        assert line.startswith(f"error: cannot write {runs_dir}/") and saved == []
        assert line.endswith("nothing was saved: free some space (or pass --runs-dir), then run again")
        return
    (run_dir,) = saved
    assert (run_dir / "manifest.json").is_file() and (run_dir / "article.txt").is_file()
    assert f"what finished is saved in {run_dir}: free some space, then continue with '" in line
    command = shlex.split(line.split("continue with '")[1].rstrip("'"))
    assert command == ["counterpoint", "run", "--resume", run_dir.name, "--runs-dir", str(runs_dir)]
    kept_units = {path.stem for path in (run_dir / "units").glob("*.json")}
    seen = len(server.requests)

    resize(small_disk, "10m")
    resumed = cli(*command[1:], "--no-cache")
    assert resumed.exit_code == 0, resumed.stderr
    assert resumed.run_dir == run_dir
    again = {r.unit for r in server.requests[seen:]} & kept_units
    assert again == set(), f"units saved before the disk filled were asked again: {again}"
    assert read_manifest(run_dir)["status"] == "complete"
    assert cli("validate", str(run_dir)).exit_code == 0
    for line_text in (run_dir / "calls.jsonl").read_text().splitlines()[-len(server.requests[seen:]) :]:
        json.loads(line_text)  # the lines after a cut-short one are whole


def test_a_run_that_never_started_leaves_no_folder_and_latest_stays_usable(
    cli, server, small_disk: Path, runs_dir: Path
) -> None:
    resize(small_disk, "10m")
    first = cli("run", str(SEED), "--no-cache")
    assert first.exit_code == 0, first.stderr
    filler = small_disk / "filler"
    free = shutil.disk_usage(small_disk).free
    filler.write_bytes(b"\0" * (free - 4096))  # 4 KiB left: article.txt fits, the manifest does not
    failed = cli("run", str(SEED), "--no-cache")
    assert failed.exit_code == 1
    assert "nothing was saved" in error_line(failed.stderr)
    assert sorted(runs_dir.iterdir()) == [first.run_dir]
    filler.unlink()
    shown = cli("show", "latest", "--runs-dir", str(runs_dir), "--format", "path")
    assert shown.stdout.strip() == str(first.run_dir)


def test_closed_stdin_is_one_line(tmp_path: Path) -> None:
    """`counterpoint run - <&-`: file descriptor 0 is closed, not empty."""
    runs_dir = tmp_path / "runs"
    result = subprocess.run(
        [
            "sh",
            "-c",
            'exec "$0" run - --base-url http://127.0.0.1:9/v1 --runs-dir "$1" <&-',
            str(COUNTERPOINT),
            str(runs_dir),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "OPENAI_API_KEY": TEST_KEY},
        check=False,
    )
    assert result.returncode == 1
    assert error_line(result.stderr) == (
        "error: stdin is closed; pipe the article in (counterpoint run - < article.txt) or give its path"
    )
    assert not runs_dir.exists()
