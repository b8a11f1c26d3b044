"""A batch's progress on stderr, and its summary at the end.

On a terminal one status line is redrawn in place (articles done of total, failed, calls in
flight, tokens, cost, ETA; with --batch-api, the status of the jobs not yet ended). When stderr
is a pipe or a log, the same line is written at most every `LOG_EVERY` seconds, so a long batch
leaves a readable trail instead of a flood; `quiet` silences everything.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from .pricing import format_cost
from .terminal import clean

LOG_EVERY = 30.0  # seconds between progress lines when stderr is not a terminal
JOB_ENDED = frozenset({"completed", "failed", "expired", "cancelled"})  # as batch_api.FINAL_STATUSES


class BatchProgress:
    def __init__(
        self, total: int, done: int = 0, *, stream: TextIO | None = None, live: bool | None = None, quiet: bool = False
    ) -> None:
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.live = self.stream.isatty() if live is None else live
        self.total = total
        self.already = done  # finished by an earlier process (--resume): not part of the ETA
        self.done = self.failed = self.tokens = 0
        self.cost = 0.0
        self.unpriced = False
        self.started = time.monotonic()
        self._last_line = self.started
        self._drawn = False
        self.jobs: dict[str, dict[str, Any]] = {}  # Batch API jobs by id: their last reported progress

    def attempt(self, line: dict[str, Any]) -> None:
        usage = line.get("usage") or {}
        self.tokens += usage.get("prompt_tokens", 0) + usage.get("completion_tokens", 0)

    def finished(self, line: dict[str, Any]) -> None:
        self.done += 1
        self.failed += line["status"] == "failed"
        if line.get("run"):
            if line.get("cost_usd") is None:
                self.unpriced = True
            else:
                self.cost += line["cost_usd"]

    def batch_job(self, job: dict[str, Any]) -> None:
        """A Batch API job's progress: a line when it is first seen (submitted, or followed again on
        resume) and when it ends (rare events a log should keep), its status in the progress line
        meanwhile."""
        known = job["job"] in self.jobs
        self.jobs[job["job"]] = job
        if not known:
            total = job.get("total")
            self.say(f"batch job {job['job']} {job['status']}: {_count(total, 'request') if total else '? requests'}")
        elif job["status"] in JOB_ENDED:
            self.say(
                f"batch job {job['job']} {job['status']}: {job.get('completed') or 0} answered, "
                f"{job.get('failed') or 0} failed"
            )

    def line(self, in_flight: int) -> str:
        done = self.already + self.done
        cost = "unpriced" if self.unpriced and not self.cost else format_cost(self.cost)
        return (
            f"articles {done}/{self.total} done, {self.failed} failed, {_count(in_flight, 'call')} in flight, "
            f"{_count(self.tokens, 'token')}, {cost}, ETA {self._eta()}{self._jobs()}"
        )

    def _jobs(self) -> str:
        running = [job for job in self.jobs.values() if job["status"] not in JOB_ENDED]
        shown = ", ".join(
            f"{job['job']} {job['status']} {job.get('completed') or 0}/{job.get('total') or '?'}" for job in running[:2]
        )
        more = f" and {len(running) - 2} more" if len(running) > 2 else ""
        return f"; batch jobs: {shown}{more}" if running else ""

    def _eta(self) -> str:
        left = self.total - self.already - self.done
        if left <= 0:
            return "0:00"
        if not self.done:
            return "?"
        seconds = int((time.monotonic() - self.started) / self.done * left)
        return f"{seconds // 60}:{seconds % 60:02d}"

    def tick(self, in_flight: int) -> None:
        if self.quiet:
            return
        if self.live:
            self.stream.write("\r" + clean(self.line(in_flight), one_line=True) + "\x1b[K")
            self.stream.flush()
            self._drawn = True
        elif time.monotonic() - self._last_line >= LOG_EVERY:
            self._last_line = time.monotonic()
            self.say(self.line(in_flight))

    def say(self, text: str) -> None:
        if self.quiet:
            return
        if self._drawn:  # end the redrawn status line first
            self.stream.write("\r\x1b[K")
            self._drawn = False
        print(clean(text, one_line=True), file=self.stream, flush=True)

    def summary(self, totals: dict[str, Any], path: str, elapsed: float) -> None:
        self.say(
            f"batch: {_count(totals['articles'], 'article')}: {totals['complete']} complete, {totals['partial']} "
            f"partial, {totals['failed']} failed{_not_started(totals)}; "
            f"{_count(totals['claims_ok'], 'claim')} answered, {totals['claims_failed']} not; "
            f"{_count(totals['tokens'], 'token')}, "
            f"cost {format_cost(totals['cost_usd'])}{_at(totals)}, {elapsed:.1f}s"
        )
        self.say(f"record: {path} (index.html, summary.csv, batch.jsonl)")


def _count(number: int, noun: str) -> str:
    """'1 article', '2 articles', '1,200 tokens'."""
    return f"{number:,} {noun}{'' if number == 1 else 's'}"


def _not_started(totals: dict[str, Any]) -> str:
    """The sources a stopped or interrupted batch never reached: counted among the articles, named."""
    count = totals.get("not_started") or 0
    return f", {count} not started" if count else ""


def _at(totals: dict[str, Any]) -> str:
    tier = totals.get("price_tier", "standard")
    return "" if tier == "standard" or totals["cost_usd"] is None else f" at {tier} prices"
