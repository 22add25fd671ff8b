"""The GemiRec BentoML service: user tower + generator + FAISS index of the production model, one process.

    GEMIREC_REGISTRY_NAME=gemirec-simulator bentoml serve serving.service:GemiRec     # 127.0.0.1:3000
    curl -s 127.0.0.1:3000/recommend -H 'content-type: application/json' -d '{"history": [12, 40], "n": 10}'

APIs (POST, JSON): /recommend, /interests, /similar_items, /events (fresh interactions into the feature
store); GET /health (model version, reload state), /livez and /readyz (BentoML's probes; ready once a model
is loaded). The OpenAPI document at /docs.json (rendered at /) is serving/openapi.py's, built by the running
service: the served model version, an example per route that this model answers, every status below.
Settings come from the environment (serving/runtime.py ServingConfig): which registry or folder, the Feast
store, the response log, the token; GEMIREC_WORKERS (processes, default 1) and GEMIREC_ACCESS_LOG=1
(BentoML's per-request access log) here.

Status codes: 200; 401 bad or missing token; 404 item ids the served model does not know (or /events
without a feature store); 413 body over 1 MiB; 415 not JSON; 422 any invalid request (BentoML answers schema
violations with 400, the Guard below makes them 422 like every other input error); 429 too many requests in
flight; 503 no model yet or overloaded; 504 past the timeout. A malformed request never reaches the model, so
it cannot cause a 5xx. serving/openapi.py documents each with its `Problem` body.

The model: from a repository checkout the service follows the registry's production pointer (development);
served from a bento it loads the model version packed into that bento (serving/bento.py).

Cold start: a user the feature store does not know, an empty history, or a history of only unknown items
(with "unknown_items": "drop") gets the most popular training items, `cold_start: true` and no interests.

Batching: /recommend requests that arrive while the model is busy share its next call (serving/batcher.py;
no timer, so an idle service answers at once), applied to the model step only, so validation, the Feast
read and 4xx stay per request. GEMIREC_BATCH_MAX (16) caps a batch, 1 turns batching off;
GEMIREC_BATCH_WAIT_MS sheds a request queued longer with a 503. benchmarks/serve_bench.py measures it.
"""

from __future__ import annotations

import dataclasses
import hmac
import json
import logging
import os
from pathlib import Path

os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")

import anyio  # noqa: E402
import bentoml  # noqa: E402
import torch  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import JSONResponse  # noqa: E402
from starlette.routing import Route  # noqa: E402

from serving import bento  # noqa: E402
from serving.batcher import Batcher  # noqa: E402
from serving.bounded_metrics import install as bound_metrics_paths  # noqa: E402
from serving.engine import Engine, Prepared, Rejected  # noqa: E402
from serving.openapi import DocumentMiddleware, Served  # noqa: E402
from serving.runtime import ModelHolder, ResponseLog, ServingConfig, feast_history_reader  # noqa: E402
from serving.schemas import (  # noqa: E402
    EventsRequest,
    EventsResponse,
    InterestsRequest,
    InterestsResponse,
    RecommendRequest,
    RecommendResponse,
    SimilarItemsRequest,
    SimilarItemsResponse,
)

log = logging.getLogger(__name__)

API_ROUTES = frozenset({"/recommend", "/interests", "/similar_items", "/events"})
MAX_BODY = 1 << 20
# An oversized body is still read (and dropped) up to this size before the 413: answering while the client
# is still sending makes the server close a socket with unread data, which the kernel turns into a reset
# that can reach the client before the 413 does. Past it (a declared Content-Length, or a body that keeps
# coming), the 413 goes out at once. Either way the connection closes after it.
MAX_DRAIN = 64 << 20
CONFIG = ServingConfig.from_env()
bound_metrics_paths(API_ROUTES | {"/health"})  # /metrics: one label for every unknown path
PACKED = bento.model_reference(CONFIG.registry_home, CONFIG.registry_name)


class Guard:
    """ASGI middleware in front of the API routes: token, content type and body size are checked before
    BentoML parses anything, and BentoML's 400 for a schema violation becomes a 422."""

    def __init__(self, app, token: str | None = None):
        self.app, self.token = app, token

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] not in API_ROUTES:
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if self.token is not None:
            given = headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {self.token}".encode()):
                return await _problem(send, 401, "missing or wrong API token (Authorization: Bearer <token>)")
        media = headers.get("content-type", "application/json").split(";")[0].strip().lower()
        if media != "application/json":
            return await _problem(send, 415, f"content type {media!r}: send application/json")
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_DRAIN:  # not read at all (100-continue: never sent)
            return await _problem(send, 413, f"request body over {MAX_BODY} bytes", close=True)
        body, size, more = bytearray(), 0, True
        while more:  # read it all here, bounded, then replay it: a huge body is refused before parsing
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size <= MAX_BODY:
                body += chunk
            elif size > MAX_DRAIN:
                break
            more = message.get("more_body", False)
        if size > MAX_BODY:
            return await _problem(send, 413, f"request body over {MAX_BODY} bytes", close=True)
        replayed = False

        async def replay():
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": bytes(body), "more_body": False}

        async def send_422(message):
            if message["type"] == "http.response.start" and message["status"] == 400:
                message = {**message, "status": 422}
            await send(message)

        await self.app(scope, replay, send_422)


async def _problem(send, status: int, error: str, close: bool = False) -> None:
    body = json.dumps({"error": error}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _rejected(e: Rejected) -> JSONResponse:
    return JSONResponse({"error": e.error, "detail": e.detail}, status_code=e.status)


async def health(_: Request) -> JSONResponse:
    status = bentoml.get_current_service().status()
    return JSONResponse(status, status_code=200 if status["ready"] else 503)


@bentoml.service(
    http={"host": "127.0.0.1", "port": 3000},  # local by default; expose it on purpose with --host
    workers=int(os.environ.get("GEMIREC_WORKERS", "1")),
    # admission (docs/serving.md): past max_concurrency requests in flight BentoML answers 429 at once; a
    # request with no response started after timeout s (a trickled body included) gets a 504
    traffic={"timeout": CONFIG.request_timeout_s, "max_concurrency": CONFIG.max_concurrency or None},
    # the response log already has every recommendation; a second line per request costs latency
    logging={"access": {"enabled": os.environ.get("GEMIREC_ACCESS_LOG", "0") == "1"}},
)
class GemiRec:
    if PACKED is not None:  # `bentoml build` copies this version into the bento (serving/bento.py)
        model = PACKED

    def __init__(self) -> None:
        cfg = CONFIG
        torch.set_num_threads(cfg.torch_threads)  # one worker = one core: no oversubscription
        from model.faiss_index import set_threads

        set_threads(cfg.torch_threads)
        self.holder = self._holder(cfg)
        self.response_log = ResponseLog(cfg.log_dir, cfg.log_file_mb, cfg.log_files) if cfg.log_dir else None
        history_of = feast_history_reader(cfg.feature_store) if cfg.feature_store else None
        self.engine = Engine(self.holder, history_of, self.response_log)
        self._limiter: anyio.CapacityLimiter | None = None  # one model call at a time per worker
        self._batched = None
        if cfg.batch_max > 1:  # requests that arrive while the model is busy share its next call
            self._batched = Batcher(self._compute, cfg.batch_max, cfg.batch_wait_ms / 1000, _overloaded)

    @staticmethod
    def _holder(cfg: ServingConfig) -> ModelHolder:
        """In a bento: its packed model, loaded once (a bento is one version). Elsewhere, or with
        GEMIREC_FOLLOW_REGISTRY=1: the registry's production version, reloaded when it changes."""
        if bento.bento_root() is None or PACKED is None or bento.follow_registry():
            holder = ModelHolder(cfg)
            holder.start()
            return holder
        stored = PACKED.stored  # the bento's own model store while it is served
        holder = ModelHolder(dataclasses.replace(cfg, model_folder=Path(stored.path), reload_s=0))
        holder._load(Path(stored.path), str(stored.tag), None)  # check() would label it folder:<version>
        return holder

    def __is_ready__(self) -> bool:
        return self.holder.current is not None

    def describe(self) -> Served:
        """What the OpenAPI document states: the served version, examples this model answers."""
        snap = self.holder.current
        examples = {}
        if snap is not None and len(snap.popular):
            items = [int(snap.item_ids[d - 1]) for d in snap.popular[:3]]
            examples = {"/recommend": {"history": items, "n": 10}, "/interests": {"history": items, "k": 2},
                        "/similar_items": {"item_id": items[0], "n": 10},
                        "/events": {"events": [{"user_id": 1, "item_id": items[0], "timestamp": 1767225600}]}}
        return Served(snap.version if snap else None, examples, by_user=self.engine.history_of is not None,
                      events=CONFIG.feature_store is not None, auth=CONFIG.api_token is not None)

    def status(self) -> dict:
        return {**self.holder.status(), "feature_store": str(CONFIG.feature_store or "") or None,
                "response_log": str(CONFIG.log_dir or "") or None, "batch_max": CONFIG.batch_max,
                "auth": CONFIG.api_token is not None}

    @bentoml.on_shutdown
    def _close(self) -> None:
        self.holder.stop()
        if self.response_log is not None:
            self.response_log.close()

    async def _model_thread(self, fn, *args):
        """Model work runs off the event loop, one call at a time per worker (one core each)."""
        if self._limiter is None:  # created in the worker's event loop
            self._limiter = anyio.CapacityLimiter(1)
        return await anyio.to_thread.run_sync(fn, *args, limiter=self._limiter)

    async def _compute(self, batch) -> list:
        return await self._model_thread(self.engine.compute, list(batch))

    async def _prepare(self, request: RecommendRequest | InterestsRequest) -> Prepared:
        if request.history is None:  # the Feast read blocks: off the event loop
            return await anyio.to_thread.run_sync(self.engine.prepare, request)
        return self.engine.prepare(request)

    @bentoml.api(route="/recommend")
    async def recommend(self, request: RecommendRequest, /) -> RecommendResponse:
        """Top-n items for a user (history from the feature store) or an explicit history, each with its
        score and the generated interest it came from."""
        try:
            prepared = await self._prepare(request)
            if self._batched is not None:
                computed = await self._batched(prepared)
            else:
                computed = (await self._compute([prepared]))[0]
            return self.engine.answer(prepared, computed)
        except Rejected as e:
            return _rejected(e)

    @bentoml.api(route="/interests")
    async def interests(self, request: InterestsRequest, /) -> InterestsResponse:
        """The user's generated interests: code path, probability and readable label of each."""
        try:
            return await self._model_thread(self.engine.interests, request)
        except Rejected as e:
            return _rejected(e)

    @bentoml.api(route="/similar_items")
    async def similar_items(self, request: SimilarItemsRequest, /) -> SimilarItemsResponse:
        """Items nearest to one item in the model's scoring space (exact or ANN, as the index is)."""
        try:
            return await self._model_thread(self.engine.similar_items, request)
        except Rejected as e:
            return _rejected(e)


    @bentoml.api(route="/events")
    async def events(self, request: EventsRequest, /) -> EventsResponse:
        """Fresh interactions into the feature store: each user's online history grows at once (their next
        /recommend reads it) and the events join the log the next training reads. Idempotent: an event
        pushed twice (same user, item and time) is counted as a duplicate and written once."""
        if CONFIG.feature_store is None:
            return _rejected(Rejected(404, "this service has no feature store to push events to"))
        try:
            report = await anyio.to_thread.run_sync(_push, CONFIG.feature_store, request)
        except ValueError as e:  # features.push.PushError: nothing of the batch was written
            return _rejected(Rejected(422, str(e)))
        return EventsResponse(**report.to_dict())


def _push(store_dir: Path, request: EventsRequest):
    import pandas as pd

    from features.push import push_events
    from features.store import StoreConfig

    frame = pd.DataFrame([{"user_id": e.user_id, "item_id": e.item_id, "event_timestamp": e.timestamp}
                          for e in request.events])
    return push_events(StoreConfig(Path(store_dir)), frame, time_unit="s")


def _overloaded() -> Rejected:
    return Rejected(503, "overloaded: request waited longer than GEMIREC_BATCH_WAIT_MS")


def _served() -> Served:
    return bentoml.get_current_service().describe()


GemiRec.add_asgi_middleware(Guard, token=CONFIG.api_token)
GemiRec.add_asgi_middleware(DocumentMiddleware, base=lambda: GemiRec.openapi_spec.asdict(), served=_served)
# mounted at the root, it only sees paths BentoML did not route: GET /health without a redirect
GemiRec.mount_asgi_app(Starlette(routes=[Route("/health", health, methods=["GET"])]), path="/")
