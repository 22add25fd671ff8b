"""serving/batcher.py in a real event loop: concurrent requests share model calls, an idle batcher answers
at once, failures reach every waiter, overload is shed, and a cancelled request is skipped."""

import asyncio

import pytest

from serving.batcher import Batcher


class Overloaded(Exception):
    pass


def make(max_batch=16, max_wait_s=5.0, delay=0.02, fail=None):
    seen = []

    async def compute(items):
        seen.append(list(items))
        await asyncio.sleep(delay)  # the model's time, off the loop in the service
        if fail is not None:
            raise fail
        return [item * 10 for item in items]

    return Batcher(compute, max_batch, max_wait_s, Overloaded), seen


def test_requests_arriving_while_the_model_is_busy_share_its_next_call():
    async def run():
        batcher, seen = make(max_batch=4)
        results = await asyncio.gather(*(batcher(i) for i in range(9)))
        return results, seen

    results, seen = asyncio.run(run())
    assert results == [i * 10 for i in range(9)]  # each gets its own answer, in its own slot
    assert seen[0] == [0, 1, 2, 3] and [len(b) for b in seen] == [4, 4, 1]  # capped at max_batch


def test_an_idle_batcher_calls_the_model_at_once():
    async def run():
        batcher, seen = make(delay=0.0)
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert await batcher(1) == 10
        return loop.time() - started, seen

    elapsed, seen = asyncio.run(run())
    assert seen == [[1]] and elapsed < 0.05  # no timer waits for company


def test_a_failed_call_reaches_every_waiter_and_the_next_call_still_runs():
    async def run():
        batcher, _ = make(fail=RuntimeError("no model"))
        outcomes = await asyncio.gather(*(batcher(i) for i in range(3)), return_exceptions=True)
        batcher.compute = make()[0].compute
        return outcomes, await batcher(5)

    outcomes, after = asyncio.run(run())
    assert all(isinstance(o, RuntimeError) for o in outcomes) and after == 50


def test_overload_is_shed_and_a_cancelled_request_is_skipped():
    async def run():
        batcher, seen = make(max_batch=1, max_wait_s=0.03, delay=0.05)
        first = asyncio.ensure_future(batcher(1))
        await asyncio.sleep(0)
        gone = asyncio.ensure_future(batcher(2))
        late = asyncio.ensure_future(batcher(3))
        await asyncio.sleep(0.01)
        gone.cancel()
        assert await first == 10
        with pytest.raises(Overloaded):
            await late  # queued 0.05 s > 0.03 s behind the first call
        return seen

    seen = asyncio.run(run())
    assert seen == [[1]]  # neither the cancelled nor the shed request reached the model
