"""The one module that talks to Feast: repo config, offline sources, apply, materialization, reads.

A store is a folder (``StoreConfig.store_dir``) holding a generated ``feature_store.yaml``, the parquet
offline sources under ``data/`` that features/feature_repo/definitions.py points at, the registry and the
SQLite online store. Nothing here is global, so every test and every dataset gets its own store.

The online store is SQLite unless ``GEMIREC_ONLINE_STORE=redis`` (with ``GEMIREC_REDIS=host:port``, in
Feast's connection-string form, e.g. ``redis.internal:6379,password=...,ssl=true``) or the config says
otherwise: a Redis online store is shared by every process and machine that reads features, where
SQLite is one file on one disk. The environment is read where a StoreConfig is made without those
fields, so a serving replica picks the switch up without a code path of its own.

The offline side is Feast's parquet sources; ``GEMIREC_OFFLINE_STORE`` picks who joins and materializes:
duckdb (default; the training set streams, features/training_set.py), file (Feast's dask store, the
slower path before it) or spark (Feast's Spark offline store and compute engine, features/spark_store.py).

    cfg = StoreConfig(Path("runs/feature_store/simulator"))
    write_sources_from(cfg, data_folder)  # latest user histories, item catalogue; streamed in batches
    apply(cfg)                            # register the declarations
    materialize(cfg)                      # offline → online, incremental; a second call changes nothing
    build_training_set(cfg, data_folder, out)           # point-in-time join, one row per event, to parquet
    rows = training_rows(cfg, interactions.events)      # the same join for an in-memory frame
    online_history(cfg, [7, 8])           # {7: [...], 8: []} for an unknown user 8
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import yaml
from feast import Entity, FeatureService, FeatureStore, FeatureView
from feast.errors import FeatureServiceNotFoundException, FeatureViewNotFoundException

from features import sources, training_set
from features.events import IngestReport, Interactions, build_interactions, timestamps_ns
from features.feature_repo import definitions
from features.sources import SOURCE_SCHEMAS, TS

log = logging.getLogger(__name__)

TRAINING_SERVICE = "gemirec_training_v1"
SERVING_SERVICE = "gemirec_serving_v1"
REGISTRY_RETRIES = 3  # online reads that meet a registry mid-rewrite (see online_history)
ONLINE_STORE_ENV = "GEMIREC_ONLINE_STORE"
REDIS_ENV = "GEMIREC_REDIS"
OFFLINE_STORE_ENV = "GEMIREC_OFFLINE_STORE"
# duckdb: Feast's parquet sources, materialized by Feast, training set joined by DuckDB (streams);
# file: Feast's own file (dask) store end to end, the path before the streaming one;
# spark: Feast's Spark offline store and compute engine (features/spark_store.py)
OFFLINE_STORES = ("duckdb", "file", "spark")


def default_online() -> str:
    """The online store a StoreConfig gets unless told: GEMIREC_ONLINE_STORE, else SQLite."""
    return os.environ.get(ONLINE_STORE_ENV) or "sqlite"


def default_offline() -> str:
    """The offline engine a StoreConfig gets unless told: GEMIREC_OFFLINE_STORE, else duckdb."""
    return os.environ.get(OFFLINE_STORE_ENV) or "duckdb"


@dataclass(frozen=True)
class StoreConfig:
    store_dir: Path
    # sqlite | redis (the scale-out path, DESIGN §4, docs/scaling.md)
    online: str = field(default_factory=default_online)
    redis_connection: str = field(default_factory=lambda: os.environ.get(REDIS_ENV) or "localhost:6379")
    history_items: int = 50  # items kept per user_history row; the long preset's maxlen
    project: str = "gemirec"
    offline: str = field(default_factory=default_offline)  # one of OFFLINE_STORES
    # latest: one user_history row per user (all the online store serves); per_event: one per event,
    # the layout before the streaming stage, kept so that benchmarks.scale can measure both
    history_rows: str = "latest"

    def __post_init__(self) -> None:
        if self.offline not in OFFLINE_STORES:
            raise ValueError(f"offline store {self.offline!r}: expected one of {OFFLINE_STORES}")
        if self.history_rows not in ("latest", "per_event"):
            raise ValueError(f"history_rows {self.history_rows!r}: expected 'latest' or 'per_event'")

    @property
    def source_dir(self) -> Path:
        return Path(self.store_dir) / definitions.SOURCE_DIR

    def source(self, view: str) -> Path:
        return self.source_dir / f"{view}.parquet"


def write_repo_config(cfg: StoreConfig) -> Path:
    root = Path(cfg.store_dir).resolve()
    root.mkdir(parents=True, exist_ok=True)
    if cfg.online == "sqlite":
        online = {"type": "sqlite", "path": str(root / "online_store.db")}
    elif cfg.online == "redis":
        online = {"type": "redis", "connection_string": cfg.redis_connection}
    else:
        raise ValueError(f"online store {cfg.online!r}: expected 'sqlite' or 'redis'")
    repo = {
        "project": cfg.project,
        "provider": "local",
        "registry": {"registry_type": "file", "path": str(root / "registry.db"), "cache_ttl_seconds": 60},
        "offline_store": {"type": "file"},
        "online_store": online,
        "entity_key_serialization_version": 3,
        "auth": {"type": "no_auth"},
    }
    if cfg.offline == "spark":
        from features import spark_store

        repo.update(spark_store.repo_settings(root))
    path = root / "feature_store.yaml"
    path.write_text(yaml.safe_dump(repo, sort_keys=False))
    return path


def open_store(cfg: StoreConfig) -> FeatureStore:
    path = write_repo_config(cfg)
    store = FeatureStore(repo_path=str(path.parent), fs_yaml_file=path)
    # a training run materializing this store marks its views MATERIALIZING in the shared registry; the online
    # values stay valid meanwhile, so readers (the service, pushes) keep reading them instead of failing
    store.registry.serve_features_while_materializing = True
    return store


@contextlib.contextmanager
def _quiet():
    """Feast prints progress to stdout; keep it in the debug log instead of the flow's output."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        yield
    if buffer.getvalue().strip():
        log.debug("feast: %s", buffer.getvalue().strip())


# ---------------------------------------------------------------- offline sources


def user_history_table(events: pd.DataFrame, history_items: int, created: datetime) -> pa.Table:
    """One row per event: the user's last ``history_items`` items up to and including it. ``events`` is
    canonical (sorted by user, then time), so each user's events are one contiguous run.

    Built with index arithmetic on the flat item array, because millions of Python lists would not fit.
    """
    users = events["user_id"].to_numpy(dtype=np.int64)
    flat = events["item_id"].to_numpy(dtype=np.int64)
    times = timestamps_ns(events["event_timestamp"])
    n = len(flat)
    first_of_user = np.flatnonzero(np.r_[True, users[1:] != users[:-1]]) if n else np.zeros(0, np.int64)
    start_of_row = np.repeat(first_of_user, np.diff(np.r_[first_of_user, n]))
    position = np.arange(n) - start_of_row  # 0-based index of the event within its user
    begin = np.maximum(start_of_row, np.arange(n) - history_items + 1)
    lengths = np.arange(n) + 1 - begin
    offsets = np.r_[0, np.cumsum(lengths)]
    if offsets[-1] >= 2**31:  # pyarrow list offsets are int32; logs this size belong in a warehouse store
        raise ValueError(f"{offsets[-1]:,} history entries exceed one parquet list column; "
                         "lower history_items or use a scale-out offline store")
    gather = np.repeat(begin, lengths) + (np.arange(offsets[-1]) - np.repeat(offsets[:-1], lengths))
    when = pa.array(times // 1000, type=pa.int64()).cast(TS)
    return pa.table({
        "user_id": pa.array(users),
        "item_ids": pa.ListArray.from_arrays(pa.array(offsets, type=pa.int32()), pa.array(flat[gather])),
        "history_length": pa.array(position + 1),
        "last_event_time": when,
        "event_timestamp": when,
        "created": pa.array([created] * n, type=TS),
    }, schema=SOURCE_SCHEMAS["user_history"])


def item_profile_table(inter: Interactions, created: datetime) -> pa.Table:
    """One row per item, stamped when the item first appears so every event of it can see its profile."""
    ev = inter.events
    first_seen = ev.groupby("item_id")["event_timestamp"].min()
    counts = ev.groupby("item_id").size()
    items = inter.items[inter.items["item_id"].isin(first_seen.index)]
    ids = items["item_id"].to_numpy(dtype=np.int64)
    return pa.table({
        "item_id": pa.array(ids),
        "category": pa.array(items["category"].to_numpy(dtype=np.int64)),
        "attributes": pa.array([list(map(int, a)) for a in items["attributes"]], type=pa.list_(pa.int64())),
        "popularity": pa.array(counts.reindex(ids).to_numpy(dtype=np.int64)),
        "event_timestamp": pa.array(timestamps_ns(first_seen.reindex(ids).reset_index(drop=True)) // 1000,
                                    type=pa.int64()).cast(TS),
        "created": pa.array([created] * len(ids), type=TS),
    }, schema=SOURCE_SCHEMAS["item_profile"])


def write_sources(cfg: StoreConfig, inter: Interactions) -> dict[str, int]:
    """Rewrite the offline sources from the whole canonical log (the log is the truth, not the store)."""
    cfg.source_dir.mkdir(parents=True, exist_ok=True)
    created = datetime.now(UTC)
    history = (sources.latest_history_table if cfg.history_rows == "latest" else user_history_table)
    tables = {"user_history": history(inter.events, cfg.history_items, created),
              "item_profile": item_profile_table(inter, created)}
    for name, table in tables.items():
        _write_atomic(table, cfg.source(name))
    _ensure_item_interest(cfg)
    return {name: table.num_rows for name, table in tables.items()}


def write_sources_from(cfg: StoreConfig, data_folder: Path) -> dict[str, int]:
    """write_sources for a canonical log saved by Interactions.save, streamed in batches: memory is
    bounded by a batch plus the item catalogue, whatever the log's length (latest histories only)."""
    if cfg.history_rows != "latest":
        return write_sources(cfg, Interactions.load(data_folder))
    cfg.source_dir.mkdir(parents=True, exist_ok=True)
    history_rows, profile = sources.write_streamed(Path(data_folder), cfg.source("user_history"),
                                                   cfg.history_items, datetime.now(UTC))
    _write_atomic(profile, cfg.source("item_profile"))
    _ensure_item_interest(cfg)
    return {"user_history": history_rows, "item_profile": profile.num_rows}


def _ensure_item_interest(cfg: StoreConfig) -> None:
    if not cfg.source("item_interest").exists():  # written after training; Feast needs the file to exist
        _write_atomic(SOURCE_SCHEMAS["item_interest"].empty_table(), cfg.source("item_interest"))


def _write_atomic(table: pa.Table, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    pq.write_table(table, tmp)
    tmp.replace(path)  # a reader (serving, a concurrent run) never sees half a file


# ---------------------------------------------------------------- registry and materialization


def declarations(cfg: StoreConfig | None = None) -> list:
    """Every Feast object declared in the feature repo, as `feast apply` would collect them; on Spark the
    views read the same parquet files through Spark sources."""
    objects = [v for v in vars(definitions).values() if isinstance(v, Entity | FeatureView | FeatureService)]
    if cfg is not None and cfg.offline == "spark":
        from features import spark_store

        objects = spark_store.with_spark_sources(objects, cfg.source_dir)
    views = [fv for fv in objects if isinstance(fv, FeatureView)]
    sources = {fv.batch_source.name: fv.batch_source for fv in views}
    return objects + list(sources.values())


def apply(cfg: StoreConfig) -> list[str]:
    store = open_store(cfg)
    objects = declarations(cfg)
    with _quiet():
        store.apply(objects)
    return sorted(o.name for o in objects)


MATERIALIZE_WINDOW_ROWS = 50_000  # source rows per Feast materialize call: bounds its memory (sources.time_windows)


def materialize(cfg: StoreConfig, views: list[str] | None = None, end: datetime | None = None,
                window_rows: int = MATERIALIZE_WINDOW_ROWS) -> dict[str, str]:
    """Offline → online up to ``end`` (now). A view's first run covers its whole source, in time windows of
    about ``window_rows`` rows; later runs start at the previous end, so calling this twice writes nothing
    new the second time."""
    store = open_store(cfg)
    end = end or datetime.now(UTC)
    done = {}
    for name in views or list(SOURCE_SCHEMAS):
        view = store.get_feature_view(name)
        times = pq.read_table(cfg.source(name), columns=["event_timestamp"]).column("event_timestamp")
        if view.most_recent_end_time is None:
            if len(times) == 0:
                done[name] = "empty source, skipped"
                continue
            start = times.combine_chunks().to_pandas().min().to_pydatetime() - timedelta(seconds=1)
            windows = sources.time_windows(times, start, end, window_rows)
            for lo, hi in windows:
                with _quiet():
                    store.materialize(start_date=lo, end_date=hi, feature_views=[name])
            done[name] = f"full {start:%Y-%m-%d} → {end:%Y-%m-%d %H:%M} in {len(windows)} window(s)"
        else:
            previous = view.most_recent_end_time
            with _quiet():
                store.materialize_incremental(end_date=end, feature_views=[name])
            done[name] = f"incremental {previous:%Y-%m-%d %H:%M} → {end:%Y-%m-%d %H:%M}"
        log.info("materialized %s: %s", name, done[name])
    return done


# ---------------------------------------------------------------- reads


def training_rows(cfg: StoreConfig, events: pd.DataFrame) -> pd.DataFrame:
    """Point-in-time join of the training feature service onto every event: one row each, source order.

    On the default (duckdb) store the join is features/training_set.py's query over the same sources; on
    `file` and `spark` it is Feast's get_historical_features. Feast 0.67's file (dask) offline store loses
    entity rows in two cases: rows sharing a join key and timestamp collapse into one (feast-dev/feast#6787;
    derived timestamps make this common), and a row whose every feature row lies in its future is dropped
    instead of getting nulls. So Feast's join runs on the distinct (join keys, time) pairs and is merged
    back onto all events here, nulls included.
    """
    if cfg.offline == "duckdb":
        return training_set.rows_frame(events, cfg.source("item_profile"), Path(cfg.store_dir) / "spill")
    store = open_store(cfg)
    service = store.get_feature_service(TRAINING_SERVICE)
    keys = sorted({key for projection in service.feature_view_projections
                   for key in store.get_feature_view(projection.name).join_keys})
    on = [*keys, "event_timestamp"]
    requests = events[on].drop_duplicates(ignore_index=True)
    with _quiet():
        joined = store.get_historical_features(entity_df=requests, features=service).to_df()
    times = pd.to_datetime(joined["event_timestamp"])
    if times.dt.tz is None:  # Spark hands back naive times in its session's zone, UTC (features/spark_store.py)
        times = times.dt.tz_localize("UTC")
    joined["event_timestamp"] = times.astype(events["event_timestamp"].dtype)
    joined = joined[[*on, *training_set.SERVICE_FEATURES]]
    rows = events[["user_id", "item_id", "event_timestamp"]].merge(joined, on=on, how="left", validate="m:1")
    return rows.reset_index(drop=True)


def build_training_set(cfg: StoreConfig, data_folder: Path, out: Path) -> dict[str, int]:
    """The trainer's input folder (events, items, report; plus training_rows.parquet on duckdb) for the
    canonical log in ``data_folder``. On duckdb it streams; the others hold the log in memory."""
    out = Path(out)
    if cfg.offline == "duckdb":
        summary = training_set.write_training_set(Path(data_folder), cfg.source("item_profile"), out)
        return {"rows": summary.rows, "items": summary.items}
    logged = Interactions.load(data_folder)
    rows = training_rows(cfg, logged.events)
    trained = training_interactions(rows, logged.report)
    trained.save(out)
    return {"rows": len(rows), "items": len(trained.items)}


def training_interactions(rows: pd.DataFrame, report: IngestReport) -> Interactions:
    """Training rows → the events/items tables the trainer takes. An item's side information is the
    latest value any of its events saw; an item whose profile no event could see is unknown (-1, [])."""
    events = rows[["user_id", "item_id", "event_timestamp"]]
    seen = rows[rows["category"].notna()].drop_duplicates("item_id", keep="last")
    items = pd.DataFrame({
        "item_id": seen["item_id"].to_numpy(dtype=np.int64),
        "category": seen["category"].to_numpy(dtype=np.int64),
        "attributes": [[] if a is None else list(map(int, a)) for a in seen["attributes"]],
    })
    return build_interactions(events, items, report)


def online_history(cfg: StoreConfig, user_ids: list[int], store: FeatureStore | None = None
                   ) -> dict[int, list[int]]:
    """Recent item ids per user, oldest first; a user the store has never seen gets an empty list."""
    store = store or open_store(cfg)
    if not user_ids:
        return {}
    for attempt in range(REGISTRY_RETRIES + 1):
        try:
            out = store.get_online_features(features=store.get_feature_service(SERVING_SERVICE),
                                            entity_rows=[{"user_id": int(u)} for u in user_ids]).to_dict()
            break
        except (FeatureServiceNotFoundException, FeatureViewNotFoundException):
            # a concurrent `apply` (a training run) rewrites the file registry in place: read it again
            if attempt == REGISTRY_RETRIES:
                raise
            time.sleep(0.2 * (attempt + 1))
            store.refresh_registry()
    return {int(u): [int(i) for i in (items or [])] for u, items in zip(out["user_id"], out["item_ids"])}


def online_item_interest(cfg: StoreConfig, item_ids: list[int]) -> dict[int, list[int] | None]:
    store = open_store(cfg)
    out = store.get_online_features(features=["item_interest:interest_code"],
                                    entity_rows=[{"item_id": int(i)} for i in item_ids]).to_dict()
    return {int(i): (None if c is None else [int(x) for x in c])
            for i, c in zip(out["item_id"], out["interest_code"])}


# ---------------------------------------------------------------- after training


def write_item_interest(cfg: StoreConfig, item_codes: pd.DataFrame, model_version: str) -> int:
    """Append the production model's item → interest code table and materialize it online."""
    now = datetime.now(UTC)
    levels = sorted(c for c in item_codes.columns if c.startswith("code_l"))
    codes = item_codes[levels].to_numpy(dtype=np.int64)
    new = pa.table({
        "item_id": pa.array(item_codes["item_id"].to_numpy(dtype=np.int64)),
        "interest_code": pa.array([list(map(int, row)) for row in codes], type=pa.list_(pa.int64())),
        "model_version": pa.array([model_version] * len(codes), type=pa.string()),
        "event_timestamp": pa.array([now] * len(codes), type=TS),
        "created": pa.array([now] * len(codes), type=TS),
    }, schema=SOURCE_SCHEMAS["item_interest"])
    path = cfg.source("item_interest")
    old = pq.read_table(path) if path.exists() else SOURCE_SCHEMAS["item_interest"].empty_table()
    _write_atomic(pa.concat_tables([old.cast(new.schema), new]), path)
    materialize(cfg, ["item_interest"], end=datetime.now(UTC))  # strictly after the new rows' time
    return len(codes)
