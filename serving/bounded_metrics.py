"""Keep /metrics bounded: BentoML labels every request's metrics with its raw path, so each unknown path a
client invents (`GET /x7f3…`) adds a histogram's worth of series that is never freed. 500 random GETs
grew /metrics from 135 KB to 2.25 MB and slowed every scrape and the requests beside it.

`install(known)` makes BentoML's traffic-metrics middleware label any path outside `known` as
``/{unmatched}``: one series for all of them, whatever the traffic. The request itself still sees its real
path, so routing, 404s and BentoML's own pages behave as before.

It replaces the class in BentoML's module before the worker builds its app (the app factory imports it
then), which rests on BentoML internals: `bentoml==1.4.40` is pinned, and tests/serving/test_metrics_bound.py
fails if a new version stops honouring it.
"""

from __future__ import annotations

UNMATCHED = "/{unmatched}"
# BentoML's own routes (probes, metrics, docs, schema, the index page): all keep their own label
BENTOML_ROUTES = frozenset({"/", "/livez", "/readyz", "/healthz", "/metrics", "/docs", "/docs.json",
                            "/schema.json"})
_REAL_PATH = "gemirec.real_path"  # the scope key that carries the real path past the metrics middleware


class _RestorePath:
    """Sits just inside the metrics middleware: hands the rest of the app the real path again."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if _REAL_PATH in scope:
            scope = {k: v for k, v in scope.items() if k != _REAL_PATH} | {"path": scope[_REAL_PATH]}
        await self.app(scope, receive, send)


def install(known: frozenset[str] | set[str]) -> None:
    """Label paths outside `known` (plus BentoML's own routes) as one; idempotent."""
    from bentoml._internal.server.http import instruments

    base = instruments.RunnerTrafficMetricsMiddleware
    allowed = frozenset(known) | BENTOML_ROUTES
    if getattr(base, "gemirec_known", None) is not None:
        base.gemirec_known = allowed
        return

    class BoundedPathMetrics(base):
        gemirec_known = allowed

        def __init__(self, app, **options):
            super().__init__(_RestorePath(app), **options)

        async def __call__(self, scope, receive, send):
            if scope["type"] in ("http", "websocket") and scope["path"] not in self.gemirec_known:
                scope = {**scope, "path": UNMATCHED, _REAL_PATH: scope["path"]}
            await super().__call__(scope, receive, send)

    instruments.RunnerTrafficMetricsMiddleware = BoundedPathMetrics
