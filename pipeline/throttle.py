"""Shared limits for one endpoint: the 429 back-off (`Throttle`), so a 429 storm is not answered
with a burst of retries, and the concurrency slots (`Slots`), which count the requests in flight.

A 429 pauses every call for its Retry-After. When the pause ends, one call goes alone as a
probe; the others wait for its answer. A 429 to the probe starts the next pause, anything else
lets every call through again. While the endpoint keeps refusing, it sees about one request per
Retry-After instead of one per call in flight.
"""

from __future__ import annotations

import asyncio
import time
from typing import Literal


class Throttle:
    def __init__(self) -> None:
        self._pause_until = 0.0
        self._limited = False  # from a 429 until the endpoint answers anything else
        self._probe: asyncio.Event | None = None  # set when the probe in flight has its answer

    def rate_limited(self, pause: float) -> None:
        """The endpoint answered 429: pause every call for `pause` seconds, then probe."""
        self._pause_until = max(self._pause_until, time.monotonic() + pause)
        self._limited = True

    def answered(self) -> None:
        """The endpoint answered something other than a 429: the storm is over."""
        self._limited = False

    async def acquire(self) -> bool:
        """Wait until a call may go. True when it goes as the probe; it must then call `release()`."""
        while True:
            delay = self._pause_until - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            elif not self._limited:
                return False
            elif self._probe is None:
                self._probe = asyncio.Event()
                return True
            else:
                await self._probe.wait()

    def release(self) -> None:
        """The probe has its answer (or failed): wake the calls waiting on it."""
        if self._probe is not None:
            self._probe.set()
            self._probe = None


class Slots(asyncio.Semaphore):
    """At most `limit` requests in flight, counting those that are (for progress: calls in flight)."""

    def __init__(self, limit: int) -> None:
        super().__init__(limit)
        self.in_use = 0

    async def acquire(self) -> Literal[True]:
        await super().acquire()
        self.in_use += 1
        return True

    def release(self) -> None:
        self.in_use -= 1
        super().release()
