"""The `train-gemirec` flow: events → Feast → training set → model → gate → registry → reference → report.

The flow only wires; every task is a few lines around one domain function and passes paths and small
values. Tasks that read or write files retry on I/O errors (OSError) only: bad input or a bad config fails
at once with its message. A retried training task resumes from the checkpoint the trainer left in the run
folder. Nothing is registered before the model folder is complete and verified.

    gemirec up && prefect deployment run train-gemirec/train-gemirec --watch   # see flows/server.py
"""

from __future__ import annotations

import logging
import re
from dataclasses import replace
from pathlib import Path

from prefect import flow, get_run_logger, runtime, task
from prefect.artifacts import create_image_artifact, create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from flows import report

DEFAULT_RUNS = "runs/flows"
DEFAULT_STORES = "runs/feature_store"  # one Feast store per data source below this
MIN_USERS = 10  # below this the 8:1:1 user split leaves no validation users
# Our packages' loggers; PREFECT_LOGGING_EXTRA_LOGGERS (set by `gemirec up`) sends them to the run's log.
DOMAIN_LOGGERS = ("features", "model", "serving", "monitoring")


def _io_error(task, task_run, state) -> bool:
    """Retry only what retrying can fix: a transient read/write failure, not a missing file or bad data."""
    exc = state.result(raise_on_failure=False)
    return isinstance(exc, OSError) and not isinstance(exc, FileNotFoundError)


def _not_bad_input(task, task_run, state) -> bool:
    """Training retries on anything but a ValueError (too little data, a bad setting): those recur."""
    return not isinstance(state.result(raise_on_failure=False), ValueError)


io_task = task(retries=2, retry_delay_seconds=2, retry_condition_fn=_io_error, cache_policy=NO_CACHE)


@io_task
def ingest(dataset: str, events: str | None, data_dir: str | None, out: str, store_dir: str | None = None
           ) -> dict:
    """Read and validate the log, plus the events pushed into ``store_dir`` since (features/push.py); save
    it canonically. Malformed rows are counted, never fatal."""
    from features.datasets import load_dataset, load_path
    from features.push import with_pushed
    from features.store import StoreConfig

    logger = get_run_logger()
    inter = load_path(events) if events else load_dataset(dataset, data_dir)
    n_pushed = 0
    if store_dir:
        inter, n_pushed = with_pushed(inter, StoreConfig(Path(store_dir)))
    if n_pushed:
        logger.info("%d pushed events added from %s", n_pushed, store_dir)
    r = inter.report
    if r.n_users < MIN_USERS:
        raise ValueError(f"{r.source}: {r.n_users} users after validation; need at least {MIN_USERS}")
    inter.save(out)
    (logger.warning if r.n_malformed else logger.info)(
        "%s: %d valid events, %d malformed rows skipped%s", r.source, r.n_valid, r.n_malformed,
        "".join(f"\n  {e}" for e in r.malformed_examples))
    return {"path": out, "source": r.source, "n_valid": r.n_valid, "n_malformed": r.n_malformed,
            "malformed_examples": list(r.malformed_examples), "n_users": r.n_users, "n_items": r.n_items,
            "n_pushed": n_pushed, "data_hash": inter.data_hash()}


@io_task
def feature_store(data_path: str, store_dir: str, online: str) -> dict:
    from features import store
    from features.events import Interactions

    cfg = store.StoreConfig(Path(store_dir), online=online)
    rows = store.write_sources(cfg, Interactions.load(data_path))
    store.apply(cfg)
    done = store.materialize(cfg)
    get_run_logger().info("feature store %s: %s; materialized %s", store_dir, rows, done)
    return done


@io_task
def training_set(data_path: str, store_dir: str, online: str, out: str) -> str:
    """Events with item side information joined point-in-time from the offline store."""
    from features import store
    from features.events import Interactions

    cfg = store.StoreConfig(Path(store_dir), online=online)
    logged = Interactions.load(data_path)
    rows = store.training_rows(cfg, logged.events)
    store.training_interactions(rows, logged.report).save(out)
    return out


@task(retries=1, retry_delay_seconds=2, retry_condition_fn=_not_bad_input, cache_policy=NO_CACHE)
def train(training_path: str, preset: str, model: str, overrides: list[str], run_dir: str,
          lineage: dict) -> str:
    """Train, evaluate and save the model folder; a retry resumes from `<run_dir>/checkpoint`."""
    from model.config import load_config
    from model.training.pipeline import train_folder

    cfg = load_config(preset, [f"model={model}", *overrides])
    outcome = train_folder(training_path, cfg, run_dir, lineage=lineage, progress=False)
    return str(outcome.folder)


@task(cache_policy=NO_CACHE)
def evaluate(model_folder: str) -> dict:
    """Check the saved folder loads as it will be served; return its validation and test metrics."""
    from model.persistence.saved import load_model

    metrics = load_model(model_folder).manifest["metrics"]
    logger = get_run_logger()
    for part in ("val", "test"):
        logger.info("%s: %s", part, ", ".join(f"{k} {100 * v:.2f}" for k, v in metrics[part].items()
                                             if k.startswith(("recall", "ndcg"))))
    return metrics


def _registry(bentoml_home: str | None, name: str):
    from serving import registry

    return registry.Registry(Path(bentoml_home) if bentoml_home else None, name)


def hold_unfinished(decision, stage_reached: str | None):
    """A GemiRec that never left its warm-up is held whatever its recall: one code for every item, no
    interests (a warm-up-only model scores like the single-vector backbone, so recall alone could pass it)."""
    if stage_reached != "warmup":
        return decision
    return replace(decision, promote=False, reason="held: the model stopped in its warm-up stage (its "
                   f"dictionary never trained; raise train.max_epochs); {decision.reason}")


@task(cache_policy=NO_CACHE)
def quality_gate(val_recall: float, bentoml_home: str | None, name: str, tolerance: float,
                 stage_reached: str | None = None) -> dict:
    from serving import registry

    reg = _registry(bentoml_home, name)
    decision = hold_unfinished(registry.gate(val_recall, registry.production(reg), tolerance), stage_reached)
    get_run_logger().info("quality gate: %s (%s)", "promote" if decision.promote else "hold", decision.reason)
    return vars(decision)


@io_task
def reference(model_folder: str, training_path: str) -> str:
    from features.events import Interactions
    from model.persistence.saved import load_model
    from monitoring.reference import reference_histories, write_reference

    loaded = load_model(model_folder)
    data = Interactions.load(training_path)
    return str(write_reference(loaded, reference_histories(data.events, data.items, loaded.cfg.data),
                               model_folder))


@io_task
def register(model_folder: str, bentoml_home: str | None, name: str, labels: dict, metadata: dict,
             promote: bool, reason: str) -> dict:
    from serving import registry

    reg = _registry(bentoml_home, name)
    version = registry.register(reg, model_folder, labels, metadata)
    if promote:
        registry.promote(reg, version.tag, reason)
    current = registry.production(reg)
    get_run_logger().info("registered %s; production: %s", version.tag, current and current.tag)
    return {"tag": version.tag, "path": str(version.path), "production": current and current.tag}


@io_task
def publish_interests(model_folder: str, store_dir: str, online: str, tag: str) -> int:
    """The production model's item → interest codes, into Feast's item_interest view."""
    import pandas as pd

    from features import store

    codes = Path(model_folder) / "item_codes.parquet"
    if not codes.exists():
        return 0  # only GemiRec has an interest dictionary
    cfg = store.StoreConfig(Path(store_dir), online=online)
    return store.write_item_interest(cfg, pd.read_parquet(codes), tag)


@task(cache_policy=NO_CACHE)
def publish_report(run_dir: str, ingested: dict, metrics: dict, decision: dict, registered: dict) -> str:
    curve = report.plot_training_curve(Path(run_dir) / "history.json", Path(run_dir) / "training_curve.png")
    markdown = report.metrics_markdown(ingested, metrics, decision, registered["tag"],
                                       registered["production"], curve and str(curve))
    create_markdown_artifact(markdown, key="train-gemirec-metrics", description="metrics and gate decision")
    if curve:
        create_image_artifact(report.data_url(curve), key="train-gemirec-curve",
                              description="training loss and validation Recall@50 per epoch")
    return markdown


def source_slug(dataset: str, events: str | None) -> str:
    """One feature store per data source: incremental materialization only makes sense within one log."""
    name = Path(events).stem if events else dataset
    return re.sub(r"[^a-z0-9_-]+", "-", name.lower()).strip("-") or "events"


@flow(name="train-gemirec", log_prints=False)
def train_gemirec(
    dataset: str = "simulator",
    events: str | None = None,
    preset: str = "long",
    model: str = "gemirec",
    overrides: list[str] | None = None,
    tolerance: float = 0.005,
    data_dir: str | None = None,
    runs_dir: str = DEFAULT_RUNS,
    stores_dir: str = DEFAULT_STORES,
    online: str = "",
    bentoml_home: str | None = None,
    registry_name: str | None = None,
    include_pushed: bool = True,
) -> dict:
    """Train a model on a named dataset (or your own events file), gate it against production on validation
    Recall@50 (promote iff it is at least production − tolerance) and register it either way.

    Versions are registered as BentoML model `gemirec-<source>` (e.g. gemirec-simulator) unless
    `registry_name` says otherwise: the gate only compares models validated on the same users.

    Events pushed into the source's feature store (`gemirec events push`) join the log unless
    `include_pushed` is off. The version records that store (metadata `feature_store`, `online_store`), so the
    service answers `{"user_id": ...}` from it without GEMIREC_FEATURE_STORE."""
    from features.store import default_online
    from model.config import load_config

    for name in DOMAIN_LOGGERS:  # Prefect attaches its handlers to them but leaves them at WARNING
        if logging.getLogger(name).level == logging.NOTSET:
            logging.getLogger(name).setLevel(logging.INFO)
    overrides = list(overrides or [])
    online = online or default_online()  # "" = as the service reads it: GEMIREC_ONLINE_STORE, else sqlite
    cfg = load_config(preset, [f"model={model}", *overrides])  # a bad preset or override fails here, first
    run_dir = Path(runs_dir) / f"{runtime.flow_run.name or 'local'}-{str(runtime.flow_run.id)[:8]}"
    slug = source_slug(dataset, events)
    store_dir = str((Path(stores_dir) / slug).resolve())  # absolute: the service opens it from its own cwd
    registry_name = registry_name or f"gemirec-{slug}"

    ingested = ingest(dataset, events, data_dir, str(run_dir / "data"), store_dir if include_pushed else None)
    feature_store(ingested["path"], store_dir, online)
    training_path = training_set(ingested["path"], store_dir, online, str(run_dir / "training_set"))
    lineage = {"source": ingested["source"], "data_hash": ingested["data_hash"], "preset": preset,
               "feature_store": store_dir, "feature_service": "gemirec_training_v1",
               "flow_run": str(runtime.flow_run.id)}
    folder = train(training_path, preset, model, overrides, str(run_dir), lineage)
    metrics = evaluate(folder)
    decision = quality_gate(metrics["val"]["recall@50"], bentoml_home, registry_name, tolerance,
                            metrics.get("stage_reached"))
    reference(folder, training_path)  # before registering, so the version carries its reference
    labels = {"model": cfg.model, "preset": preset, "source": slug,
              "data_hash": ingested["data_hash"][:12], "gate": "promoted" if decision["promote"] else "held",
              "online_store": online}
    metadata = {"data_hash": ingested["data_hash"], "config": cfg.to_dict(), "gate": decision,
                "n_malformed": ingested["n_malformed"], "n_pushed": ingested["n_pushed"], "online_store": online,
                "reference": "reference/", **lineage}
    registered = register(folder, bentoml_home, registry_name, labels, metadata, decision["promote"],
                          decision["reason"])
    if decision["promote"]:
        publish_interests(folder, store_dir, online, registered["tag"])
    publish_report(str(run_dir), ingested, metrics, decision, registered)
    return {"tag": registered["tag"], "promoted": decision["promote"], "production": registered["production"],
            "val_recall@50": metrics["val"]["recall@50"], "test_recall@50": metrics["test"]["recall@50"],
            "n_malformed": ingested["n_malformed"], "run_dir": str(run_dir), "store_dir": store_dir}
