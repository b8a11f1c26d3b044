"""Turn pipeline events into progress lines on stderr, and print the end-of-run summary."""

from __future__ import annotations

import sys
from typing import Any, TextIO

_RETRY_OUTCOMES = {"invalid": "re-asking (output failed validation)", "truncated": "re-asking (reply cut off)",
                   "empty": "re-asking (no choices)", "timeout": "retrying (timeout)",
                   "connection_error": "retrying (connection error)"}


class Progress:
    """Stage, claims done out of total, and retries. Live lines only on a terminal."""

    def __init__(self, stream: TextIO | None = None, *, live: bool | None = None, quiet: bool = False) -> None:
        self.stream = stream or sys.stderr
        self.live = (self.stream.isatty() if live is None else live) and not quiet
        self.quiet = quiet

    def say(self, text: str) -> None:
        if not self.quiet:
            print(text, file=self.stream, flush=True)

    def __call__(self, event: str, **data: Any) -> None:
        if event == "warning":
            self.say(f"warning: {data['message']}")
            return
        if not self.live:
            return
        if event == "stage":
            total = f" ({data['total']} claims)" if "total" in data else ""
            self.say(f"[{data['stage']}] started{total}")
        elif event == "claim":
            self.say(f"[rebut] {data['claim']} {data['status']} ({data['done']}/{data['total']})")
        elif event == "reused":
            self.say(f"[resume] reusing {data['unit']}")
        elif event == "attempt":
            outcome = data["outcome"]
            message = _RETRY_OUTCOMES.get(outcome) or (f"retrying (HTTP {outcome[5:]})" if outcome.startswith("http_")
                                                       else None)
            if message:
                self.say(f"[{data['stage']}] {data['unit']}: {message}")

    def summary(self, brief: dict[str, Any], path: str | None, elapsed: float) -> None:
        claims = brief["claims"]
        usage = brief["run"]["usage"]
        counts = {status: sum(1 for c in claims if c["status"] == status) for status in ("ok", "failed", "refused")}
        cost = (f"${brief['run']['cost_usd']:.4f}" if brief["run"]["cost_usd"] is not None
                else f"unpriced ({brief['run']['model']} is not in the price table)")
        self.say(
            f"{brief['status']}: {len(claims)} claims ({counts['ok']} ok, {counts['failed']} failed, "
            f"{counts['refused']} refused), synthesis {brief['synthesis']['status']}; "
            f"{usage['calls']} calls ({usage['cache_hits']} cached), "
            f"{usage['prompt_tokens']:,} prompt + {usage['completion_tokens']:,} completion tokens "
            f"({usage['cached_tokens']:,} cached); cost {cost}; {elapsed:.1f}s"
            + (f"; {path}" if path else "")
        )
