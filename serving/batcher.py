"""Natural batching: requests that arrive while the model is busy go into its next call together.

    batched = Batcher(compute, max_batch=16, max_wait_s=5.0, overloaded=lambda: Rejected(503, "..."))
    result = await batched(item)          # in the worker's event loop; compute(list) -> list, async

A request never waits for a timer: an idle model takes it at once, and a busy one takes everything queued
(up to `max_batch`) when its call ends. BentoML's CorkDispatcher, used before, polled its queue every
millisecond while a batch ran and could hold requests back to grow a batch; at concurrency 8 on two cores
that polling was a visible share of the service's CPU per request (benchmarks/results/serving.md). One model
call runs at a time, as one worker has one core for it. A request queued longer than `max_wait_s` (overload)
gets `overloaded()` raised instead of a late answer; one whose client went away is dropped unanswered.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any


class Batcher:
    def __init__(self, compute: Callable[[list], Awaitable[list]], max_batch: int, max_wait_s: float,
                 overloaded: Callable[[], Exception]):
        self.compute, self.max_batch, self.max_wait_s, self.overloaded = compute, max_batch, max_wait_s, overloaded
        self._queue: deque[tuple[float, Any, asyncio.Future]] = deque()
        self._running = False
        self.calls = 0  # model calls made, for tests and status

    async def __call__(self, item):
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.append((time.monotonic(), item, future))
        if not self._running:
            self._running = True
            loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch = self._take()
                if not batch:
                    continue
                self.calls += 1
                try:
                    results = await self.compute([item for item, _ in batch])
                except Exception as e:  # noqa: BLE001 - every waiter gets the failure, the loop goes on
                    results = [e] * len(batch)
                for (_, future), result in zip(batch, results):
                    if future.done():  # cancelled meanwhile: its client is gone
                        continue
                    if isinstance(result, Exception):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
        finally:  # no await between the empty-queue check and here: a new request starts a new drain
            self._running = False

    def _take(self) -> list[tuple[Any, asyncio.Future]]:
        now, batch = time.monotonic(), []
        while self._queue and len(batch) < self.max_batch:
            queued, item, future = self._queue.popleft()
            if future.done():
                continue
            if now - queued > self.max_wait_s:
                future.set_exception(self.overloaded())
                continue
            batch.append((item, future))
        return batch
