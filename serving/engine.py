"""The service's work, framework-free: validate a request against the served model, compute a batch of
recommendations with one model snapshot, and build (and log) the answers.

A request is split in three so that only the model work is batched: `prepare` (validation, the Feast read:
per request, may block on I/O), `compute` (one call to the model for many requests: what adaptive batching
merges) and `answer` (response, log line: per request).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import torch

from model.gemirec.attribution import U_QUERY, attribute
from serving.response_log import ResponseLog
from serving.runtime import ModelHolder, Snapshot
from serving.schemas import (
    Interest,
    InterestsRequest,
    InterestsResponse,
    ItemInterest,
    RecommendedItem,
    RecommendRequest,
    RecommendResponse,
    SimilarItem,
    SimilarItemsRequest,
    SimilarItemsResponse,
)

log = logging.getLogger(__name__)

GENERAL = "general taste (user vector)"
POPULAR = "most popular (cold start)"


class Rejected(Exception):
    """A request the service cannot answer as asked: becomes a 4xx (or 503) with this message."""

    def __init__(self, status: int, error: str, detail=None):
        super().__init__(error)
        self.status, self.error, self.detail = status, error, detail


@dataclass
class Prepared:
    request_id: str
    user_id: int | None
    history: list[int]  # known source item ids, oldest first, at most the model's maxlen
    unknown: list[int]
    n: int
    k: int | None
    started: float  # perf_counter at arrival: the logged latency is the service's own time
    snapshot: Snapshot  # the model version read once at arrival: compute uses this same one


@dataclass
class Computed:
    snapshot: Snapshot
    items: np.ndarray  # (n,) source ids, -1 = empty
    via: np.ndarray  # (n,) interest index k, -1 = u
    scores: np.ndarray  # (n,)
    codes: np.ndarray  # (K, C)
    probs: np.ndarray  # (K,)
    cold: bool


class Engine:
    def __init__(self, holder: ModelHolder, history_of: Callable[[int], list[int]] | None = None,
                 response_log: ResponseLog | None = None):
        self.holder = holder
        self.history_of = history_of  # user_id -> stored history (Feast); None: explicit histories only
        self.response_log = response_log
        if response_log is not None:  # its health joins the model's in /health
            holder.reporters.append(response_log.status)

    def snapshot(self) -> Snapshot:
        snap = self.holder.current
        if snap is None:
            raise Rejected(503, "no model loaded yet", self.holder.last_error)
        return snap

    # ---- per request ------------------------------------------------------------------------------
    def prepare(self, req: RecommendRequest | InterestsRequest) -> Prepared:
        started = time.perf_counter()
        snap = self.snapshot()
        if req.history is not None:
            history, explicit = list(req.history), True
        elif self.history_of is None:
            raise Rejected(422, "this service has no feature store: send the user's history explicitly")
        else:
            history, explicit = self.history_of(req.user_id), False
        dense = snap.encode(history) if history else np.zeros(0, dtype=np.int64)
        unknown = sorted({int(i) for i, d in zip(history, dense) if d == 0})
        if unknown and explicit and req.unknown_items == "reject":
            raise Rejected(404, f"{len(unknown)} history item(s) unknown to model {snap.version}",
                           {"unknown_items": unknown[:100],
                            "hint": 'send "unknown_items": "drop" to ignore them'})
        known = [int(i) for i, d in zip(history, dense) if d > 0][-snap.maxlen:]
        return Prepared(uuid.uuid4().hex, req.user_id, known, unknown, getattr(req, "n", 0), req.k, started,
                        snap)

    # ---- batched -----------------------------------------------------------------------------------
    def compute(self, batch: Sequence[Prepared]) -> list[Computed]:
        """One model call per (snapshot, k) group: each request is computed on the snapshot it was
        prepared with, so `unknown_items` and `history_len` describe the version that answered, even
        when a reload lands between prepare and compute (a batch then spans two versions, briefly)."""
        out: list[Computed | None] = [None] * len(batch)
        groups: dict[tuple[int, int | None], list[int]] = {}
        for row, p in enumerate(batch):
            if p.history and p.snapshot.item_matrix is not None:
                groups.setdefault((id(p.snapshot), p.k), []).append(row)
            else:  # no history, or a popularity model: the popular list is the answer
                out[row] = self._popular(p.snapshot, p.n, cold=not p.history)
        for (_, k), rows in groups.items():
            snap = batch[rows[0]].snapshot
            dense = snap.histories([batch[r].history for r in rows])
            n = max(batch[r].n for r in rows)
            kwargs = {"k": k} if snap.item_codes is not None else {}
            with torch.inference_mode():  # cheaper than the model's own no_grad: no version counters
                rec = snap.model.recommend(dense, snap.loaded.index, n, **kwargs)
            via, scores = attribute(rec, snap.item_matrix, rec.ranked, snap.loaded.cfg, snap.item_codes)
            items = np.where(rec.ranked > 0, snap.item_ids[np.maximum(rec.ranked, 1) - 1], -1)
            for j, r in enumerate(rows):
                m = batch[r].n
                codes = rec.interest_codes[j] if rec.interest_codes is not None else np.zeros((0, 0), int)
                probs = rec.interest_probs[j] if rec.interest_probs is not None else np.zeros(0)
                out[r] = Computed(snap, items[j, :m], via[j, :m], scores[j, :m], codes, probs, False)
        return out

    def _popular(self, snap: Snapshot, n: int, cold: bool) -> Computed:
        top = snap.popular[:n]
        return Computed(snap, snap.item_ids[top - 1], np.full(len(top), U_QUERY), snap.popular_share[:n],
                        np.zeros((0, 0), int), np.zeros(0), cold)

    def answer(self, p: Prepared, c: Computed) -> RecommendResponse:
        snap = c.snapshot
        interests = _interests(snap, c.codes, c.probs)
        keep = c.items >= 0
        items = [RecommendedItem(item_id=int(i), score=_finite(s),
                                 interest=_item_interest(interests, int(k), c.cold))
                 for i, k, s in zip(c.items[keep], c.via[keep], c.scores[keep])]
        latency = (time.perf_counter() - p.started) * 1000
        response = RecommendResponse(request_id=p.request_id, model_version=snap.version, user_id=p.user_id,
                                     cold_start=c.cold, history_len=len(p.history), unknown_items=p.unknown,
                                     interests=interests, items=items)
        if self.response_log is not None:
            self._log({
                "ts": datetime.now(UTC).isoformat(), "request_id": p.request_id, "user_id": p.user_id,
                "history_len": len(p.history), "model_version": snap.version,
                "interest_codes": [[int(x) for x in code] for code in c.codes],
                "interest_probs": [round(float(x), 6) for x in c.probs],
                "items": [int(i) for i in c.items[keep]], "item_interest": [int(k) for k in c.via[keep]],
                "latency_ms": round(latency, 3)})
        return response

    def _log(self, record: dict) -> None:
        """ResponseLog.write counts its own I/O failures; anything else it raises is logged here, never
        turned into a failed answer: the response is already computed."""
        try:
            self.response_log.write(record)
        except Exception:  # noqa: BLE001 - a log line is never worth an answer
            log.exception("response log write failed")

    # ---- the other APIs (cheap: not batched) -------------------------------------------------------
    def interests(self, req: InterestsRequest) -> InterestsResponse:
        p = self.prepare(req)
        snap = p.snapshot
        interests: list[Interest] = []
        cold = not p.history
        if not cold and snap.item_codes is not None:
            with torch.no_grad():
                dense = torch.as_tensor(snap.histories([p.history]))
                _, codes, probs = snap.model.interests(dense, p.k)
            interests = _interests(snap, codes[0].cpu().numpy(), probs[0].cpu().numpy())
        return InterestsResponse(request_id=p.request_id, model_version=snap.version, user_id=p.user_id,
                                 cold_start=cold, history_len=len(p.history), unknown_items=p.unknown,
                                 interests=interests)

    def similar_items(self, req: SimilarItemsRequest) -> SimilarItemsResponse:
        snap = self.snapshot()
        dense = int(snap.encode([req.item_id])[0])
        if dense == 0:
            raise Rejected(404, f"item {req.item_id} is unknown to model {snap.version}")
        if snap.item_matrix is None:
            raise Rejected(422, f"model {snap.version} ({snap.loaded.cfg.model}) has no item vectors")
        scores, found = snap.loaded.index.search(snap.item_matrix[dense - 1: dense], req.n + 1)
        items = []
        for s, d in zip(scores[0], found[0]):
            if d > 0 and d != dense and len(items) < req.n:
                code = snap.item_codes[d] if snap.item_codes is not None else None
                interest = (ItemInterest(index=U_QUERY, code=[int(x) for x in code], label=snap.label(code))
                            if code is not None else ItemInterest(index=U_QUERY, label=GENERAL))
                items.append(SimilarItem(item_id=int(snap.item_ids[d - 1]), score=_finite(s),
                                         interest=interest))
        return SimilarItemsResponse(model_version=snap.version, item_id=req.item_id, items=items)


def _interests(snap: Snapshot, codes: np.ndarray, probs: np.ndarray) -> list[Interest]:
    return [Interest(index=k, code=[int(x) for x in code], prob=_finite(p), label=snap.label(code))
            for k, (code, p) in enumerate(zip(codes, probs))]


def _item_interest(interests: list[Interest], k: int, cold: bool) -> ItemInterest:
    if 0 <= k < len(interests):
        it = interests[k]
        return ItemInterest(index=k, code=it.code, prob=it.prob, label=it.label)
    return ItemInterest(index=U_QUERY, label=POPULAR if cold else GENERAL)


def _finite(x) -> float:
    x = float(x)
    return x if np.isfinite(x) else 0.0  # JSON has no NaN/inf; an empty slot never reaches a client anyway
