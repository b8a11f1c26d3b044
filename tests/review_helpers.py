"""Shared by the review tests: a seed run, its rebuttal ids, and `counterpoint serve` in a real process."""

from __future__ import annotations

import json
import queue
import re
import shutil
import signal
import subprocess
import threading
from pathlib import Path
from typing import Any

from .conftest import SEED, read_brief, start_counterpoint

URL_LINE = re.compile(r"^http://127\.0\.0\.1:(\d+)/\?token=([A-Za-z0-9_-]{20,})$")


def make_run(cli: Any) -> Path:
    result = cli("run", str(SEED))
    assert result.exit_code == 0, result.stderr
    return Path(result.run_dir)


def copy_run(run_dir: Path, new_id: str, title: str, status: str = "complete") -> Path:
    """Another run in the same folder: the seed run under a new id, title and status."""
    copy = run_dir.parent / new_id
    shutil.copytree(run_dir, copy)
    manifest = json.loads((copy / "manifest.json").read_text(encoding="utf-8"))
    manifest["article"]["title"], manifest["status"], manifest["run_id"] = title, status, new_id
    (copy / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return copy


def rebuttals(run_dir: Path) -> list[dict[str, Any]]:
    """Every rebuttal of the run's brief, with its claim id."""
    return [{**r, "claim": c["id"]} for c in read_brief(run_dir)["claims"] for r in c["rebuttals"]]


class Served:
    """`counterpoint serve --port 0` in a real process; `url` is its last stdout line."""

    def __init__(self, runs_dir: Path, *args: str) -> None:
        self.process = start_counterpoint(["serve", "--runs-dir", str(runs_dir), "--port", "0", *args])
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.url = self.lines.get(timeout=60).strip()
        match = URL_LINE.match(self.url)
        assert match, self.url
        self.port, self.token = int(match.group(1)), match.group(2)
        self.base = f"http://127.0.0.1:{self.port}"

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)

    def stop(self) -> str:
        """Stop with SIGINT (as Ctrl-C does); stdout printed after the address line."""
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        rest = []
        while not self.lines.empty():
            rest.append(self.lines.get())
        return "".join(rest)


def older_brief(run_dir: Path) -> dict[str, Any]:
    """The run's brief as counterpoint wrote it before verification checks and per-stage models."""
    brief: dict[str, Any] = json.loads((run_dir / "brief.json").read_text(encoding="utf-8"))
    for claim in brief["claims"]:
        for item in claim["rebuttals"] + claim["missing_context"]:
            item.pop("checks", None)
    brief["run"].pop("checks", None)
    brief["run"].pop("models", None)
    return brief
