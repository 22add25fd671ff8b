"""Drift scenario: simulated traffic, with or without shifted interests, as service response logs.

    python -m monitoring.scenario prepare --out runs/scenario                   # tiny model + reference
    python -m monitoring.scenario traffic --model runs/scenario/model --logs runs/scenario/logs \
        --requests 2000 --shift 0      # then --shift 1.5: users drawn with a tilted topic mix
    python -m monitoring.scenario traffic --url http://127.0.0.1:3000 --requests 500 --shift 1.5

Users come from the simulator world the model was trained on (same seed, so the same items and topics),
but from user blocks after the training users: fresh users, as production would see. ``shift`` tilts the
topic prior toward half of the topics (``SimulatorConfig.shift``); ``seed`` picks disjoint user blocks, so
seeds are independent replays. Each request sends the first ``history_share`` of a user's sequence, the cut
the training-time reference makes for validation users. Without ``--url`` the trained model answers in
process and the responses are logged in the service's format; with ``--url`` the histories are POSTed to
the running service (best effort) which logs them itself.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from monitoring.logs import LogWriter, response_record
from monitoring.reference import attribution

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScenarioConfig:
    world_seed: int = 0  # the simulator seed the model was trained on
    n_train_users: int = 3000
    shift: float = 0.0
    seed: int = 0  # replay seed: which user blocks are replayed
    n_requests: int = 2000
    blocks_per_seed: int = 2  # 2 × 1024 fresh users per seed; users repeat when n_requests is larger
    n: int = 50
    start: str = "2025-01-01T00:00:00+00:00"
    duration_h: float = 1.0  # requests spread evenly over this span from start
    corrupt: int = 0  # corrupt lines to plant among the responses
    batch: int = 512


def prepare(out: str | Path, world_seed: int = 0, n_users: int = 3000, preset: str = "tiny") -> Path:
    """Train a GemiRec model on the simulator (no shift) and write its training-time reference."""
    from features.simulator import SimulatorConfig, simulate
    from model.config import load_config
    from model.persistence.saved import load_model
    from model.training.pipeline import train_model
    from monitoring.reference import validation_histories, write_reference

    out = Path(out)
    folder = out / "model"
    items = folder / "reference" / "items.parquet"
    if items.exists() and "interest_slot" in pq.read_schema(items).names:
        log.info("model and reference already in %s", folder)
        return folder
    inter, _ = simulate(SimulatorConfig(n_users=n_users, seed=world_seed))
    cfg = load_config(preset, ["model=gemirec"])
    if not (folder / "manifest.json").exists():
        folder = train_model(inter.events, inter.items, cfg, out, progress=False).folder
    # (re)written for a model kept from before: references now record which interest retrieved each item
    write_reference(load_model(folder), validation_histories(inter.events, inter.items, cfg.data), folder)
    return folder


def replay_histories(cfg: ScenarioConfig, history_share: float = 0.8) -> list[list[int]]:
    """Histories of ``n_requests`` requests from fresh simulated users (see the module docstring)."""
    from features.simulator import BLOCK_USERS, SimulatorConfig, iter_simulated

    first_block = -(-cfg.n_train_users // BLOCK_USERS) + cfg.seed * cfg.blocks_per_seed
    n_users = (first_block + cfg.blocks_per_seed) * BLOCK_USERS
    sim = SimulatorConfig(n_users=n_users, seed=cfg.world_seed, shift=cfg.shift)
    histories: list[list[int]] = []
    for block, (events, _) in enumerate(iter_simulated(sim, chunk_users=BLOCK_USERS)):
        if block < first_block:
            continue  # the training users (and other seeds' blocks): simulated, not replayed
        items = events["item_id"].to_numpy()
        user = events["user_id"].to_numpy()
        bounds = np.flatnonzero(np.r_[True, user[1:] != user[:-1], True])
        for a, b in zip(bounds[:-1], bounds[1:]):
            cut = min(max(int((b - a) * history_share), 1), b - a - 1)
            histories.append(items[a:a + cut].tolist())
    order = np.random.default_rng([cfg.seed, 7]).permutation(len(histories))
    reps = -(-cfg.n_requests // len(histories))
    return [histories[i] for i in np.tile(order, reps)[:cfg.n_requests]]


def _timestamps(cfg: ScenarioConfig) -> list[datetime]:
    start = datetime.fromisoformat(cfg.start)
    step = cfg.duration_h * 3600.0 / max(cfg.n_requests, 1)
    return [start + timedelta(seconds=i * step) for i in range(cfg.n_requests)]


def model_version(loaded) -> str:
    """A model_version for simulated logs: the model kind and its data hash."""
    lineage = loaded.manifest.get("lineage") or {}
    data_hash = str(lineage.get("data_hash") or loaded.manifest.get("data_fingerprint") or "")[:12]
    return f"{loaded.cfg.model}-{data_hash}" if data_hash else loaded.cfg.model


def log_recommendations(loaded, histories: list[list[int]], writer: LogWriter, stamps: list[datetime],
                        n: int = 50, batch: int = 512, corrupt_at: frozenset[int] = frozenset()) -> int:
    """Answer the histories with a loaded model and write one response line each, as the service does."""
    ids = np.concatenate([[-1], loaded.item_ids])
    version = model_version(loaded)
    for start in range(0, len(histories), batch):
        chunk = histories[start:start + batch]
        began = time.perf_counter()
        rec = loaded.recommend(chunk, n)
        latency = (time.perf_counter() - began) * 1000 / len(chunk)
        # per-interest lists hold dense ids (0 = none): to source ids, like rec.ranked already is
        per_interest = None if rec.per_interest is None else ids[np.maximum(rec.per_interest, 0)]
        via = attribution(rec.ranked, per_interest)
        for row, history in enumerate(chunk):
            i = start + row
            keep = rec.ranked[row] >= 0
            codes = [] if rec.interest_codes is None else rec.interest_codes[row]
            probs = [] if rec.interest_probs is None else rec.interest_probs[row]
            writer.write(response_record(stamps[i], uuid.uuid4().hex, None, len(history), version, codes,
                                         probs, rec.ranked[row][keep], via[row][keep], latency))
            if i in corrupt_at:
                writer.write_raw('{"ts": "not a time", "items": [1, 2' if i % 2 else "\x00garbage")
    return len(histories)


def write_traffic(model_folder: str | Path, logs: str | Path, cfg: ScenarioConfig) -> dict:
    """Answer the replayed requests with the saved model in process and log them as the service does."""
    from model.persistence.saved import load_model

    loaded = load_model(model_folder)
    histories = replay_histories(cfg, loaded.cfg.data.history_share)
    rng = np.random.default_rng([cfg.seed, 11])
    corrupt_at = frozenset(rng.choice(cfg.n_requests, size=min(cfg.corrupt, cfg.n_requests),
                                      replace=False).tolist())
    with LogWriter(logs, prefix=f"responses-{datetime.fromisoformat(cfg.start):%Y%m%dT%H%M}") as writer:
        log_recommendations(loaded, histories, writer, _timestamps(cfg), cfg.n, cfg.batch, corrupt_at)
    log.info("%d responses (%d corrupt lines planted, shift %.2f, seed %d) -> %s", len(histories),
             len(corrupt_at), cfg.shift, cfg.seed, logs)
    return {"logs": str(logs), "n_requests": len(histories), "n_corrupt": len(corrupt_at)}


def replay_to_service(url: str, cfg: ScenarioConfig, timeout_s: float = 10.0) -> dict:
    """POST the replayed histories to a running service's /recommend; failures are counted, not raised."""
    ok = failed = 0
    for history in replay_histories(cfg):
        body = json.dumps({"history": history, "n": cfg.n}).encode()
        request = urllib.request.Request(url.rstrip("/") + "/recommend", data=body,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as response:
                ok += response.status == 200
                failed += response.status != 200
        except (urllib.error.URLError, OSError) as e:
            failed += 1
            if failed == 1:
                log.warning("%s: %s", url, e)
    log.info("replayed %d requests to %s: %d ok, %d failed", ok + failed, url, ok, failed)
    return {"ok": ok, "failed": failed}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m monitoring.scenario", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare", help="train a tiny GemiRec on the simulator and write its reference")
    p.add_argument("--out", default="runs/scenario")
    p.add_argument("--world-seed", type=int, default=0)
    t = sub.add_parser("traffic", help="write (or POST) simulated traffic")
    t.add_argument("--model", default="runs/scenario/model")
    t.add_argument("--logs", default="runs/scenario/logs")
    t.add_argument("--url", default=None, help="replay against a running service instead")
    t.add_argument("--requests", type=int, default=2000)
    t.add_argument("--shift", type=float, default=0.0)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--world-seed", type=int, default=0)
    t.add_argument("--start", default=None, help="ISO time of the first request (default: now - 1 h)")
    t.add_argument("--duration-h", type=float, default=1.0)
    t.add_argument("--corrupt", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.command == "prepare":
        log.info("model folder with reference: %s", prepare(args.out, args.world_seed))
        return
    start = args.start or (datetime.now(UTC) - timedelta(hours=args.duration_h)).isoformat()
    cfg = ScenarioConfig(world_seed=args.world_seed, shift=args.shift, seed=args.seed,
                         n_requests=args.requests, start=start, duration_h=args.duration_h,
                         corrupt=args.corrupt)
    result = replay_to_service(args.url, cfg) if args.url else write_traffic(args.model, args.logs, cfg)
    log.info("%s", json.dumps(result))


if __name__ == "__main__":
    main()
