"""The Batch API's record in a batch folder: which jobs were submitted with which requests, what
became of them, and their downloaded answers.

It is written the moment a job is submitted, so a process that dies and is started again answers
those requests from the job already paid for instead of submitting them again, and keeps the
answers it downloaded instead of downloading them again. Requests that got no usable answer (a
failed or expired job, an error line), and those handed to units that concluded in a run that ended
normally, are released: a resumed process asks them again.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from .errors import RunDirError
from .files import atomic_write, json_text

STATE_NAME = "jobs.json"
ANSWERS_DIR = "answers"
FORMAT = 1


class JobRecord:
    """`folder`/jobs.json ({"jobs": {job id: {input_file_id, submitted, status, reason, requests}}})
    and `folder`/answers/<job id>.jsonl (the job's output and error files, as downloaded)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / STATE_NAME
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RunDirError(f"cannot create the Batch API folder {folder} ({exc.strerror}); pick another") from None
        self.jobs = self._read()
        self._job_of = {custom_id: job for job, entry in self.jobs.items() for custom_id in entry["requests"]}

    def _read(self) -> dict[str, dict[str, Any]]:
        if not self.path.exists():
            return {}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError) as exc:  # RecursionError: JSON nested too deeply
            raise self._damaged(type(exc).__name__) from None
        jobs = data.get("jobs") if isinstance(data, dict) else None
        if not isinstance(jobs, dict) or not all(_valid(entry) for entry in jobs.values()):
            raise self._damaged("not the expected layout")
        return jobs

    def _damaged(self, why: str) -> RunDirError:
        return RunDirError(
            f"the Batch API record {self.path} is damaged ({why}); it lists jobs already paid for: "
            "repair it, or move it aside to submit every unfinished request again"
        )

    def job_of(self, custom_id: str) -> str | None:
        """The submitted job that holds this request and may still answer it."""
        return self._job_of.get(custom_id)

    def requests(self, job: str) -> list[str]:
        return list(self.jobs[job]["requests"])

    def add(self, job: str, input_file_id: str, custom_ids: list[str], submitted: str) -> None:
        entry = {"input_file_id": input_file_id, "submitted": submitted, "status": "submitted", "reason": None}
        self.jobs[job] = {**entry, "requests": list(custom_ids)}
        self._job_of.update(dict.fromkeys(custom_ids, job))
        self._write()

    def set_status(self, job: str, status: str, reason: str | None = None) -> None:
        entry = self.jobs[job]
        if (entry["status"], entry.get("reason")) != (status, reason):
            entry["status"], entry["reason"] = status, reason
            self._write()

    def reason(self, job: str) -> str | None:
        """Why the job gave no answers (failed, expired, cancelled), once it ended so."""
        reason = self.jobs[job].get("reason")
        return reason if isinstance(reason, str) else None

    def release(self, job: str, custom_ids: list[str]) -> None:
        """These requests got no usable answer from `job`: a later ask submits them again."""
        gone = set(custom_ids)
        if not gone:
            return
        entry = self.jobs[job]
        entry["requests"] = [custom_id for custom_id in entry["requests"] if custom_id not in gone]
        for custom_id in gone:
            if self._job_of.get(custom_id) == job:
                del self._job_of[custom_id]
        self._write()

    def answers(self, job: str) -> str | None:
        """The job's downloaded output (and error) lines, if they were downloaded before."""
        path = self._answers_path(job)
        try:
            return path.read_text(encoding="utf-8") if path.is_file() else None
        except (OSError, UnicodeDecodeError):
            return None  # downloaded again: a damaged copy is no answer

    def keep_answers(self, job: str, text: str) -> None:
        path = self._answers_path(job)
        try:
            path.parent.mkdir(exist_ok=True)
            atomic_write(path, text)
        except OSError as exc:
            raise RunDirError(f"cannot keep the answers of batch job {job} in {path} ({exc.strerror})") from None

    def _answers_path(self, job: str) -> Path:
        return self.folder / ANSWERS_DIR / (re.sub(r"[^A-Za-z0-9_.-]", "_", job) + ".jsonl")

    def _write(self) -> None:
        try:
            atomic_write(self.path, json_text({"format": FORMAT, "jobs": self.jobs}, indent=1) + "\n")
        except OSError as exc:
            raise RunDirError(
                f"cannot write the Batch API record {self.path} ({exc.strerror}); the jobs it lists are "
                "still running at the provider: free the disk, then resume"
            ) from None


def _valid(entry: Any) -> bool:
    return (
        isinstance(entry, dict)
        and isinstance(entry.get("status"), str)
        and isinstance(entry.get("requests"), list)
        and all(isinstance(custom_id, str) for custom_id in entry["requests"])
    )
