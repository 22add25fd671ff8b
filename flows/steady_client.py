"""A client that keeps calling the service while the closed loop runs and records every answer: the count of
requests around a model swap, and of the ones that failed (a status other than 200, or no answer at all).

    client = SteadyClient(url, [{"user_id": 7, "n": 10}, {"history": [3, 4], "n": 10}]).begin()
    ...                                   # retrain, promote, the service reloads
    client.end()
    client.summary(since=promoted_at)     # {"requests": ..., "failed": 0, "versions": {...}, ...}
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter
from dataclasses import dataclass

import httpx


@dataclass(frozen=True)
class Answer:
    at: float  # time.time() when the answer (or the error) came
    status: int  # HTTP status; 0 when the request got no answer
    version: str | None  # the model_version that answered
    error: str | None = None


class SteadyClient:
    def __init__(self, url: str, bodies: list[dict], interval_s: float = 0.05, timeout_s: float = 30.0):
        if not bodies:
            raise ValueError("SteadyClient needs at least one request body")
        self.url, self.bodies, self.interval_s, self.timeout_s = url, bodies, interval_s, timeout_s
        self.answers: list[Answer] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="steady-client", daemon=True)

    def begin(self) -> SteadyClient:
        self._thread.start()
        return self

    def end(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.timeout_s + 5)

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=self.timeout_s) as client:
            for body in itertools.cycle(self.bodies):
                if self._stop.is_set():
                    return
                try:
                    response = client.post("/recommend", json=body)
                    version = response.json().get("model_version") if response.status_code == 200 else None
                    error = None if response.status_code == 200 else response.text[:200]
                    self.answers.append(Answer(time.time(), response.status_code, version, error))
                except (httpx.HTTPError, ValueError) as e:  # refused, reset, timed out, not JSON
                    self.answers.append(Answer(time.time(), 0, None, f"{type(e).__name__}: {e}"))
                self._stop.wait(self.interval_s)

    def summary(self, since: float | None = None, until: float | None = None) -> dict:
        """Counts over the answers that came within [since, until] (all of them by default)."""
        chosen = [a for a in list(self.answers)
                  if (since is None or a.at >= since) and (until is None or a.at <= until)]
        failed = [a for a in chosen if a.status != 200]
        return {"requests": len(chosen), "failed": len(failed),
                "versions": dict(Counter(a.version for a in chosen if a.version)),
                "failures": [f"{a.status} {a.error}" for a in failed[:5]]}

    def first_answer_from(self, version: str) -> float | None:
        return next((a.at for a in list(self.answers) if a.version == version), None)
