"""The embedded default dataset: long, mixed histories whose interests evolve.

Topics sit on a relation graph (a ring plus a few random chords). Every item belongs to one topic (its
category) with Zipf popularity inside it. A user starts with a few active topics (Dirichlet weights); each
step picks a topic (sticky to the previous one, so histories have runs) and an item from it; now and then the
user adopts a topic *related* to an active one or drops one. Later parts of a history therefore hold
interests that the start lacks: the interest evolution GemiRec's generator is meant to anticipate.

Randomness is drawn per block of ``BLOCK_USERS`` users from ``default_rng([seed, 1, block])``, so output is
identical however the users are chunked.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features.events import (
    EVENTS_SCHEMA,
    IngestReport,
    Interactions,
    events_to_arrow,
    items_to_arrow,
    timestamps_from_ns,
)

logger = logging.getLogger(__name__)

BLOCK_USERS = 1024
TRUTH_SCHEMA = pa.schema(
    [("user_id", pa.int64()), ("event_timestamp", pa.timestamp("ns", tz="UTC")), ("topic", pa.int64())]
)


@dataclass(frozen=True)
class SimulatorConfig:
    n_users: int = 3000
    n_items: int = 4000
    n_topics: int = 24
    mean_length: float = 40.0
    min_length: int = 12
    topics_per_user: tuple[int, int] = (2, 4)
    adopt_prob: float = 0.04  # chance per step to adopt a topic related to an active one
    drop_prob: float = 0.02
    zipf_a: float = 1.1
    seed: int = 0
    shift: float = 0.0  # > 0 tilts the topic prior toward another half of the topics (drift demos)
    start: str = "2024-01-01"
    # design choices (not from the paper) below: they shape how "mixed" and how long histories look
    stickiness: float = 0.5  # chance to stay on the previous topic before sampling by weight
    length_sigma: float = 0.6  # lognormal spread of (length - min_length)
    window_days: float = 60.0  # users start uniformly within this window
    mean_gap_hours: float = 6.0  # exponential gaps between a user's events (plus 1 s, so times are strict)

    def __post_init__(self) -> None:
        if self.n_items < self.n_topics or self.n_topics < 1:
            raise ValueError("need 1 <= n_topics <= n_items")
        low, high = self.topics_per_user
        if not 1 <= low <= high:
            raise ValueError("topics_per_user must be (low, high) with 1 <= low <= high")


@dataclass(frozen=True)
class World:
    """Everything shared by all users, fixed by the seed (and the shift, through ``prior`` only)."""

    neighbours: np.ndarray  # (T, T) bool, symmetric, no self-loops
    prior: np.ndarray  # (T,) topic prior, tilted by shift
    item_topic: np.ndarray  # (n_items,) topic of item id k + 1
    topic_items: np.ndarray  # item ids grouped by topic, most popular first
    cdf: np.ndarray  # topic t's items occupy (t, t + 1]: one searchsorted samples items of many topics


def build_world(cfg: SimulatorConfig) -> World:
    rng = np.random.default_rng([cfg.seed, 0])
    n_topics = cfg.n_topics
    neighbours = np.zeros((n_topics, n_topics), dtype=bool)
    if n_topics > 1:
        ring = np.arange(n_topics)
        neighbours[ring, (ring + 1) % n_topics] = True
        neighbours[(ring + 1) % n_topics, ring] = True
    for _ in range(max(1, n_topics // 4) if n_topics > 3 else 0):
        a, b = rng.choice(n_topics, size=2, replace=False)
        neighbours[a, b] = neighbours[b, a] = True
    base = rng.gamma(2.0, size=n_topics)
    favoured = np.zeros(n_topics)
    favoured[rng.permutation(n_topics)[: n_topics // 2]] = 1.0
    prior = base * np.exp(cfg.shift * (2.0 * favoured - 1.0))
    prior /= prior.sum()

    item_topic = rng.permutation(cfg.n_items) % n_topics  # balanced topics, random membership
    order = np.lexsort((rng.random(cfg.n_items), item_topic))  # random popularity rank within topic
    topic_items = (order + 1).astype("int64")
    topics_sorted = item_topic[order]
    rank = np.arange(cfg.n_items) - np.searchsorted(topics_sorted, topics_sorted, side="left")
    weight = (rank + 1.0) ** -cfg.zipf_a
    cumulative = np.zeros(cfg.n_items)
    for topic in range(n_topics):
        members = topics_sorted == topic
        share = np.cumsum(weight[members])
        share /= share[-1]
        share[-1] = 1.0  # exact, so that t + u with u < 1 never leaks into topic t + 1
        cumulative[members] = topic + share
    return World(neighbours, prior, item_topic.astype("int64"), topic_items, cumulative)


def _sample_rows(weights: np.ndarray, u: np.ndarray) -> np.ndarray:
    """One categorical draw per row, proportional to non-negative ``weights``, from uniforms ``u``."""
    cumulative = np.cumsum(weights, axis=1)
    target = u * cumulative[:, -1]
    return np.minimum((cumulative <= target[:, None]).sum(axis=1), weights.shape[1] - 1)


def _lengths(cfg: SimulatorConfig, rng: np.random.Generator, n: int) -> np.ndarray:
    extra_mean = cfg.mean_length - cfg.min_length
    if extra_mean <= 0:
        rng.lognormal(size=n)  # keep the stream's layout independent of the config's values
        return np.full(n, cfg.min_length, dtype="int64")
    mu = np.log(extra_mean) - cfg.length_sigma**2 / 2  # lognormal mean = extra_mean
    extra = np.rint(rng.lognormal(mu, cfg.length_sigma, size=n)).astype("int64")
    return np.minimum(cfg.min_length + extra, max(cfg.min_length, int(10 * cfg.mean_length)))


def _simulate_topics(
    cfg: SimulatorConfig, world: World, rng: np.random.Generator, n: int, lengths: np.ndarray
) -> np.ndarray:
    """(n, max length) planted topic per step; the evolving state is one weight row per user."""
    n_topics = cfg.n_topics
    low, high = cfg.topics_per_user
    k = np.minimum(rng.integers(low, high + 1, size=n), n_topics)
    keys = np.log(world.prior)[None, :] + rng.gumbel(size=(n, n_topics))  # Gumbel top-k: draws by prior
    rank = np.argsort(np.argsort(-keys, axis=1), axis=1)
    weights = rng.gamma(1.0, size=(n, n_topics)) * (rank < k[:, None])  # Dirichlet(1) over the active set
    # Longest histories first, so the users still running at a step are a prefix: steps cost what is alive.
    by_length = np.argsort(-lengths, kind="stable")
    weights = weights[by_length]
    alive_at = np.searchsorted(-lengths[by_length], -np.arange(int(lengths.max())), side="right")
    previous = np.full(n, -1, dtype="int64")
    topics = np.zeros((n, int(lengths.max())), dtype="int64")
    for step, m in enumerate(alive_at):
        r = rng.random((7, m))
        w, prev = weights[:m], previous[:m]  # views: updates land in weights / previous
        adopters = np.flatnonzero(r[0] < cfg.adopt_prob)
        adopted = np.zeros(m, dtype=bool)
        if adopters.size:
            source = _sample_rows(w[adopters], r[1, adopters])
            candidates = (world.neighbours[source] & (w[adopters] == 0)) * world.prior[None, :]
            has = candidates.sum(axis=1) > 0
            adopters, candidates = adopters[has], candidates[has]
            if adopters.size:
                new = _sample_rows(candidates, r[2, adopters])
                # design choice: a new interest starts as strong as the strongest one and is consumed at once
                w[adopters, new] = w[adopters].max(axis=1)
                prev[adopters] = new
                adopted[adopters] = True
        droppers = np.flatnonzero((r[3] < cfg.drop_prob) & ~adopted)
        droppers = droppers[(w[droppers] > 0).sum(axis=1) > 1]  # always keep at least one interest
        if droppers.size:
            victim = _sample_rows((w[droppers] > 0).astype(float), r[4, droppers])
            w[droppers, victim] = 0.0
        fresh = _sample_rows(w, r[5])
        stay = (prev >= 0) & (r[6] < cfg.stickiness)
        stay &= w[np.arange(m), np.maximum(prev, 0)] > 0
        stay |= adopted
        prev[:] = np.where(stay, prev, fresh)
        topics[:m, step] = prev
    out = np.empty_like(topics)
    out[by_length] = topics
    return out


def _simulate_block(cfg: SimulatorConfig, world: World, block: int) -> tuple[np.ndarray, ...]:
    """(user_id, item_id, timestamp ns, topic) for the users of one block, sorted by user then time."""
    first = block * BLOCK_USERS
    n = min(BLOCK_USERS, cfg.n_users - first)
    rng = np.random.default_rng([cfg.seed, 1, block])
    lengths = _lengths(cfg, rng, n)
    topics = _simulate_topics(cfg, world, rng, n, lengths)
    mask = np.arange(topics.shape[1])[None, :] < lengths[:, None]
    topic = topics[mask]  # row-major: user by user, steps in order
    # t + u rounds up to t + 1 for u within an ulp of 1; keep it strictly inside topic t's interval
    point = np.minimum(topic + rng.random(topic.size), np.nextafter(topic + 1.0, 0.0))
    item_id = world.topic_items[np.searchsorted(world.cdf, point, side="right")]
    offsets = rng.random(n) * cfg.window_days * 86400.0
    gaps = rng.exponential(cfg.mean_gap_hours * 3600.0, size=topics.shape) + 1.0
    seconds = np.floor(offsets[:, None] + np.cumsum(gaps, axis=1))[mask].astype("int64")
    timestamp_ns = pd.Timestamp(cfg.start, tz="UTC").value + seconds * 1_000_000_000
    user_id = np.repeat(np.arange(first + 1, first + n + 1, dtype="int64"), lengths)
    return user_id, item_id, timestamp_ns, topic


def iter_simulated(
    cfg: SimulatorConfig, chunk_users: int = 10_000
) -> Iterator[tuple[pd.DataFrame, pd.DataFrame]]:
    """(events, truth) per chunk of about ``chunk_users`` users (whole blocks of ``BLOCK_USERS``)."""
    world = build_world(cfg)
    n_blocks = -(-cfg.n_users // BLOCK_USERS)
    per_chunk = max(1, chunk_users // BLOCK_USERS)
    for start in range(0, n_blocks, per_chunk):
        parts = [_simulate_block(cfg, world, b) for b in range(start, min(start + per_chunk, n_blocks))]
        user_id, item_id, timestamp_ns, topic = (np.concatenate(column) for column in zip(*parts))
        times = timestamps_from_ns(timestamp_ns)
        events = pd.DataFrame({"user_id": user_id, "item_id": item_id, "event_timestamp": times})
        truth = pd.DataFrame({"user_id": user_id, "event_timestamp": times, "topic": topic})
        yield events, truth


def _items_frame(world: World) -> pd.DataFrame:
    n_items = world.item_topic.size
    return pd.DataFrame(
        {
            "item_id": np.arange(1, n_items + 1, dtype="int64"),
            "category": world.item_topic,
            "attributes": [[] for _ in range(n_items)],
        }
    )


def _report(cfg: SimulatorConfig, n_events: int, n_users: int, n_items: int) -> IngestReport:
    config = json.dumps(dataclasses.asdict(cfg))
    return IngestReport(
        source="simulator",
        format="simulator",
        n_rows=n_events,
        n_valid=n_events,
        n_users=n_users,
        n_items=n_items,
        notes=[f"config: {config}", "category = planted topic; truth table holds each event's topic"],
    )


def simulate(cfg: SimulatorConfig = SimulatorConfig()) -> tuple[Interactions, pd.DataFrame]:
    """All events in memory, plus the truth table (user_id, event_timestamp, topic) aligned with them."""
    chunks = list(iter_simulated(cfg))
    events = pd.concat([e for e, _ in chunks], ignore_index=True)
    truth = pd.concat([t for _, t in chunks], ignore_index=True)
    report = _report(cfg, len(events), int(events["user_id"].nunique()), int(events["item_id"].nunique()))
    return Interactions(events=events, items=_items_frame(build_world(cfg)), report=report), truth


def write_simulated(cfg: SimulatorConfig, folder: str | Path, chunk_users: int = 10_000) -> IngestReport:
    """Stream into ``folder`` (events, items, truth parquet + report), never holding all events."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    world = build_world(cfg)
    seen = np.zeros(cfg.n_items + 1, dtype=bool)
    n_events = n_users = 0
    with (
        pq.ParquetWriter(folder / "events.parquet", EVENTS_SCHEMA) as events_writer,
        pq.ParquetWriter(folder / "truth.parquet", TRUTH_SCHEMA) as truth_writer,
    ):
        for events, truth in iter_simulated(cfg, chunk_users):
            events_writer.write_table(events_to_arrow(events))
            truth_writer.write_table(pa.Table.from_pandas(truth, schema=TRUTH_SCHEMA, preserve_index=False))
            seen[events["item_id"].to_numpy()] = True
            n_events += len(events)
            n_users += int(events["user_id"].nunique())  # chunks hold disjoint users
            logger.debug("simulated %d events so far", n_events)
    pq.write_table(items_to_arrow(_items_frame(world)), folder / "items.parquet")
    report = _report(cfg, n_events, n_users, int(seen.sum()))
    (folder / "ingest_report.json").write_text(json.dumps(report.to_dict(), indent=2))
    return report


def scaled_config(n_events: int, seed: int = 0) -> SimulatorConfig:
    """The default simulator grown to about ``n_events`` events: users grow with the log (same mean
    history length), and so do the catalogue (one item per 50 events: 200k items at 10M events) and the
    topics (one per 2,000 items, at least the default 24), so that a bigger log is not the same catalogue
    read more often."""
    base = SimulatorConfig()
    n_items = max(base.n_items, n_events // 50)
    return dataclasses.replace(base, n_users=max(10, round(n_events / base.mean_length)), n_items=n_items,
                               n_topics=max(base.n_topics, n_items // 2000), seed=seed)
