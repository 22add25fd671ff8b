"""The OpenAPI document the service serves at /docs.json, which the API page at / renders.

BentoML 1.4 writes one itself, but it cannot describe this service truthfully: it flattens every `anyOf` to
its first branch (a nullable `user_id` becomes a plain integer, and the "a user_id or a history" rule is lost),
drops `additionalProperties: false`, lists 400/404/500 whatever the API answers, and titles the page with its
own placeholder and version "None". So the API routes are rewritten here from the pydantic models themselves
(serving/schemas.py), with every status the service answers and the `Problem` body of each error; BentoML's
infrastructure routes (/livez, /readyz, /metrics) are kept as it describes them.

The document is built by the running service, so it says what this process does: the served model version,
examples made of items that model knows, the bearer token only when one is required, and the user_id form of
a request only when a feature store can look users up.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass, field

from pydantic import BaseModel

from serving.schemas import (
    EventsRequest,
    EventsResponse,
    InterestsRequest,
    InterestsResponse,
    Problem,
    RecommendRequest,
    RecommendResponse,
    SimilarItemsRequest,
    SimilarItemsResponse,
    source_rule,
)

VERSION = "3.1.0"  # 3.1: JSON Schema 2020-12 as pydantic writes it (`anyOf` with "null" for a nullable field)
REF = "#/components/schemas/{model}"

DESCRIPTION = """GemiRec recommends items from a user's history with several generated interests: a user tower
and an interest generator score the catalogue through a FAISS index, and every recommended item says which
interest it came from (code, probability, readable label).

- `POST /recommend`: top-n items for a `user_id` (history read from the Feast online store) or an explicit
  `history` of item ids, oldest first. An unknown user, or a history of only unknown items with
  `"unknown_items": "drop"`, gets the most popular items and `cold_start: true`.
- `POST /interests`: the generated interests alone. `POST /similar_items`: an item's nearest items.
- `POST /events`: fresh interactions into the online store (and the log of the next training).
- `GET /health`: the served model version and its reload state. `/livez`, `/readyz`: probes.

Every error has a JSON body `{"error": "...", "detail": ...}` (schema `Problem`)."""

ERRORS = {
    401: "Missing or wrong token: send `Authorization: Bearer <token>`.",
    404: "The request names ids the served model (or the feature store) does not know; `detail` lists them.",
    413: "Body over 1 MiB.",
    415: "Body not sent as application/json.",
    422: "Invalid request: not JSON, not this schema (pydantic's errors in `detail`), or not answerable by "
         "the served model.",
    429: "Too many requests in flight (GEMIREC_MAX_CONCURRENCY): retry later.",
    503: "No model loaded yet, or overloaded: retry later.",
    504: "Not answered within GEMIREC_TIMEOUT_S.",
}


@dataclass(frozen=True)
class Route:
    request: type[BaseModel]
    response: type[BaseModel]
    errors: tuple[int, ...] = (404, 413, 415, 422, 429, 503, 504)


ROUTES = {
    "/recommend": Route(RecommendRequest, RecommendResponse),
    "/interests": Route(InterestsRequest, InterestsResponse),
    "/similar_items": Route(SimilarItemsRequest, SimilarItemsResponse),
    "/events": Route(EventsRequest, EventsResponse),
}


@dataclass(frozen=True)
class Served:
    """What the running service knows about itself, as the document states it."""

    model_version: str | None
    examples: dict[str, dict] = field(default_factory=dict)  # route -> request body that this model answers
    by_user: bool = False  # a feature store is configured: requests may name a user_id alone
    events: bool = False  # POST /events can write (a feature store is configured)
    auth: bool = False  # API calls need a bearer token


def _schema(model: type[BaseModel], components: dict, mode: str) -> dict:
    """The model's JSON schema into ``components`` (nested models too); returns a reference to it."""
    schema = model.model_json_schema(ref_template=REF, mode=mode)
    components.update(schema.pop("$defs", {}))
    components[model.__name__] = schema
    return {"$ref": REF.format(model=model.__name__)}


def document(base: dict, served: Served) -> dict:
    """BentoML's document ``base`` (its asdict()) with the API routes, info and components rewritten."""
    doc = copy.deepcopy(base)
    components: dict = {}
    problem = _schema(Problem, components, "serialization")
    routes = {path: r for path, r in ROUTES.items() if path != "/events" or served.events}
    paths = {path: item for path, item in doc["paths"].items() if path not in ROUTES}
    for path, route in routes.items():
        original = doc["paths"].get(path, {}).get("post", {})
        request = _schema(route.request, components, "validation")
        body = {"schema": request}
        if path in served.examples:
            body["example"] = served.examples[path]
        statuses = (401, *route.errors) if served.auth else route.errors
        responses = {"200": {"description": "OK", "content": {"application/json": {
            "schema": _schema(route.response, components, "serialization")}}}}
        for status in statuses:
            responses[str(status)] = {"description": ERRORS[status],
                                      "content": {"application/json": {"schema": problem}}}
        operation = {
            "tags": original.get("tags", ["Service APIs"]),
            "summary": (original.get("description") or "").split("\n")[0].strip() or path,
            "description": " ".join((original.get("description") or "").split()),
            "operationId": original.get("operationId", path.strip("/")),
            "requestBody": {"required": True, "content": {"application/json": body}},
            "responses": responses,
        }
        if served.auth:
            operation["security"] = [{"bearer": []}]
        paths[path] = {"post": operation}
    if not served.by_user:
        for model in (RecommendRequest, InterestsRequest):
            source_rule(components[model.__name__], by_user=False)
    paths["/readyz"] = _probe(paths.get("/readyz"), "Ready: a model is loaded.")
    paths["/health"] = {"get": {
        "tags": ["Infrastructure"], "summary": "Served model version, reload state, log health",
        "responses": {"200": {"description": "A model is loaded.", "content": {"application/json": {
                          "schema": {"type": "object", "properties": {"ready": {"type": "boolean"}}}}}},
                      "503": {"description": "No model loaded yet (same body).", "content": {
                          "application/json": {"schema": {"type": "object"}}}}}}}
    doc.update(openapi=VERSION, paths=paths, info={
        "title": "GemiRec", "description": DESCRIPTION,
        "version": served.model_version or "no model loaded yet"})
    doc.pop("servers", None)  # BentoML's "." resolves against the document's own URL: the same server
    doc["components"] = {"schemas": components}
    if served.auth:
        doc["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
    return doc


def _probe(item: dict | None, ok: str) -> dict:
    """A GET probe BentoML documents with 200 only: it answers 503 until the service is ready."""
    get = copy.deepcopy((item or {}).get("get", {"tags": ["Infrastructure"]}))
    get["responses"] = {"200": {"description": ok}, "503": {"description": "Not ready yet."}}
    return {"get": get}


class DocumentMiddleware:
    """ASGI middleware answering GET /docs.json with `document(...)`, built once per served model version.
    ``base`` and ``served`` are called lazily: BentoML's own document needs the finished service, and the
    served state changes with reloads."""

    def __init__(self, app, base: Callable[[], dict], served: Callable[[], Served]):
        self.app, self.base, self.served = app, base, served
        self._cache: tuple[Served, bytes] | None = None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] != "/docs.json" or scope["method"] not in ("GET", "HEAD"):
            return await self.app(scope, receive, send)
        served = self.served()
        if self._cache is None or self._cache[0] != served:
            self._cache = (served, json.dumps(document(self.base(), served)).encode())
        body = self._cache[1]
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body if scope["method"] == "GET" else b""})
