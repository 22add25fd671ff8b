"""One stage of the train-gemirec flow on one log, as benchmarks.scale runs it in a child process.

    python -m benchmarks.scale_stages <log> <stage> <work dir> [--path new|old]

Each stage reads what the previous ones left in the work dir and writes a small JSON of facts (counts,
epochs, metrics) to ``<work>/facts/<stage>.json``; the parent times the process and samples its memory.
``--path old`` runs the feature stages the way they ran before the streaming stage: the whole log in
pandas, one user_history row per event, Feast's file (dask) offline store for the training set.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

FEATURE_STAGES = ("sources", "apply", "materialize", "training_set")
MODEL_STAGES = ("train_epoch", "train_full", "index", "evaluate", "register")
STAGES = ("setup", "ingest", *FEATURE_STAGES, *MODEL_STAGES)
PRESET, MODEL = "long", "gemirec"  # what the flow trains by default


@dataclass(frozen=True)
class Log:
    name: str
    kind: str  # simulator | csv (simulator events written as CSV with malformed rows) | dataset
    events: int = 0  # simulator size asked for
    malformed_share: float = 0.0
    dataset: str = ""
    full_training: bool = True  # the issue bounds full training to logs up to 1M events
    feature_only: bool = False  # the malformed log checks ingest and the feature stage only


LOGS = {log.name: log for log in (
    Log("sim-0.1M", "simulator", 100_000),
    Log("sim-1M", "simulator", 1_000_000),
    # one epoch on the real log: its warm-up epochs take ~100 s (1,780 steps of 64 sessions) and GemiRec's
    # joint epochs 3-5 × that (as at sim-1M), so a full training is about an hour on 2 cores; sim-1M
    # carries the full training at this size
    Log("nowplaying-1M", "dataset", dataset="nowplaying-sessions", full_training=False),
    Log("sim-10M", "simulator", 10_000_000, full_training=False),
    Log("sim-10M-bad", "csv", 10_000_000, malformed_share=0.01, full_training=False, feature_only=True),
)}


def stages_of(log: Log) -> list[str]:
    names = [s for s in STAGES if s != "setup" or log.kind == "csv"]
    if log.feature_only:
        return [s for s in names if s not in MODEL_STAGES]
    return [s for s in names if s != "train_full" or log.full_training]


def store_config(work: Path, path: str):
    from features.store import StoreConfig

    if path == "old":
        return StoreConfig(work / "store", online="sqlite", offline="file", history_rows="per_event")
    return StoreConfig(work / "store", online="sqlite", offline="duckdb", history_rows="latest")


def write_bad_csv(log: Log, csv: Path) -> dict:
    """The simulator's events as a CSV (epoch seconds), one line in 1/share replaced by garbage."""
    import numpy as np

    from features.events import timestamps_ns
    from features.simulator import iter_simulated, scaled_config

    rng = np.random.default_rng(0)
    period = round(1 / log.malformed_share)
    bad = written = 0
    with open(csv, "w") as handle:
        handle.write("user_id,item_id,event_timestamp\n")
        for events, _ in iter_simulated(scaled_config(log.events)):
            seconds = timestamps_ns(events["event_timestamp"]) // 1_000_000_000
            lines = np.char.add(np.char.add(np.char.add(events["user_id"].to_numpy().astype(str), ","),
                                            np.char.add(events["item_id"].to_numpy().astype(str), ",")),
                                seconds.astype(str)).astype(object)
            broken = (np.arange(written, written + len(lines)) % period) == period - 1
            garbage = np.array(["not-a-user,1,1700000000", "5,,1700000000", "5,7,yesterday",
                                "5,-3,1700000000", "5,7"], dtype=object)
            lines[broken] = garbage[rng.integers(0, len(garbage), int(broken.sum()))]
            handle.write("\n".join(lines) + "\n")
            bad += int(broken.sum())
            written += len(lines)
    return {"lines": written, "planted_malformed": bad}


def run_stage(log: Log, stage: str, work: Path, path: str) -> dict:
    data, train = work / "data", work / "training_set"
    if stage == "setup":
        return write_bad_csv(log, work / "events.csv")
    if stage == "ingest":
        return ingest(log, work, data)
    cfg = store_config(work, path)
    from features import store

    if stage == "sources":
        if path == "old":
            from features.events import Interactions

            return store.write_sources(cfg, Interactions.load(data))
        return store.write_sources_from(cfg, data)
    if stage == "apply":
        return {"objects": len(store.apply(cfg))}
    if stage == "materialize":
        return store.materialize(cfg)
    if stage == "training_set":
        return store.build_training_set(cfg, data, train)
    return model_stage(stage, work, train)


def ingest(log: Log, work: Path, data: Path) -> dict:
    if log.kind == "simulator":
        from features.simulator import scaled_config, write_simulated

        report = write_simulated(scaled_config(log.events), data)
    elif log.kind == "csv":
        from features.stream_ingest import ingest_csv

        report = ingest_csv(work / "events.csv", data)
    else:
        from features.datasets import load_dataset

        loaded = load_dataset(log.dataset)
        loaded.save(data)
        report = loaded.report
    return {k: getattr(report, k) for k in ("n_rows", "n_valid", "n_malformed", "n_users", "n_items")}


def model_stage(stage: str, work: Path, train: Path) -> dict:
    import torch

    from model.config import load_config

    torch.set_num_threads(2)
    if stage in ("train_epoch", "train_full"):
        from model.training.pipeline import train_folder

        # the preset's 600 s wall-clock budget would cut a big log's full training short: here only early
        # stopping (train.patience) or max_epochs ends it, which is what "full training" measures
        overrides = [f"model={MODEL}", "train.threads=2", "train.max_time_s=86400"]
        if stage == "train_epoch":
            overrides += ["train.max_epochs=1", "train.min_epochs=1", "gemirec.warmup_epochs=1",
                          "gemirec.min_warmup_epochs=1"]
        # a run killed earlier left a checkpoint that training would resume from, and the timing would be
        # that of the rest of the run only: a stage that is not cached starts from scratch
        shutil.rmtree(work / stage, ignore_errors=True)
        outcome = train_folder(train, load_config(PRESET, overrides), work / stage, progress=False)
        return {"epochs": outcome.fit.epochs_run, "stopped": outcome.fit.stopped,
                "val_recall@50": outcome.metrics["val"]["recall@50"],
                "test_recall@50": outcome.metrics["test"]["recall@50"]}
    folder = trained_folder(work)
    if stage == "register":
        from serving import registry

        reg = registry.Registry(work / "bentoml", f"scale-{work.name}")
        version = registry.register(reg, folder, {"source": work.name}, {"benchmark": "scale"})
        return {"tag": str(version.tag), "folder": str(folder)}
    from model.evaluation.evaluate import build_index, evaluate
    from model.persistence.saved import load_model

    loaded = load_model(folder)
    if stage == "index":
        index = build_index(loaded.model)
        return {"items": int(index.index.ntotal), "kind": index.kind, "folder": str(folder)}
    from model.sequences import SequenceData

    sequences = SequenceData.from_parquet(train / "events.parquet", train / "items.parquet", loaded.cfg.data)
    metrics = evaluate(loaded.model, sequences, 2, index=loaded.index).metrics
    return {"test_recall@50": metrics["recall@50"], "folder": str(folder)}


def trained_folder(work: Path) -> Path:
    """The fully trained model where the log has one, else the one-epoch model."""
    full = work / "train_full" / "model"
    return full if full.exists() else work / "train_epoch" / "model"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("log", choices=list(LOGS))
    parser.add_argument("stage", choices=STAGES)
    parser.add_argument("work", type=Path)
    parser.add_argument("--path", choices=("new", "old"), default="new")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    # imports first: Feast and torch take seconds to import on a loaded machine, a fixed cost that is not
    # the stage's; work_s times the stage itself, the parent's wall time includes them
    if args.stage in MODEL_STAGES:
        import model.training.pipeline  # noqa: F401
        import serving.registry  # noqa: F401
    if args.stage != "setup":
        import features.store  # noqa: F401
    started = time.perf_counter()
    facts = run_stage(LOGS[args.log], args.stage, args.work, args.path)
    facts = {"work_s": round(time.perf_counter() - started, 2), **facts}
    (args.work / "facts").mkdir(exist_ok=True)
    (args.work / "facts" / f"{args.stage}.json").write_text(json.dumps(facts, default=str, indent=1))


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    main()
