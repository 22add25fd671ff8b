"""Simulated serving traffic for the monitoring tests, without training a model.

A stand-in for the served model keeps the tests fast: a request's K interests are the K most frequent
interests of its history, an interest being a pair of simulator topics (topic t → two-level code
(t // 8, t // 2 % 4), 12 codes), their probabilities the interests' shares, and the returned items the most
popular items of those topics. So the simulator's interest shift
(``SimulatorConfig.shift``) reaches the logged interest codes as it would through a trained GemiRec; the
benchmark (benchmarks/drift_bench.py) runs the real tiny model.
"""

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from features.simulator import BLOCK_USERS, SimulatorConfig, build_world, iter_simulated
from monitoring.distributions import ItemLookup
from monitoring.logs import LogWriter, response_record

K, N = 4, 20
START = datetime(2025, 1, 1, tzinfo=UTC)
SEEDS = range(5)  # seed s replays the users of block s; the reference those of REFERENCE_BLOCKS
REFERENCE_BLOCKS = (5, 6)


def code_of(interest: int) -> list[int]:
    return [interest // 4, interest % 4]


class StandIn:
    def __init__(self, shift: float, n_blocks: int = max(REFERENCE_BLOCKS) + 1):
        cfg = SimulatorConfig(n_users=n_blocks * BLOCK_USERS, shift=shift)
        self.world = build_world(cfg)
        self.blocks = [events for events, _ in iter_simulated(cfg, chunk_users=BLOCK_USERS)]
        order = self.world.topic_items
        topic = self.world.item_topic[order - 1]
        self.top_items = {i: order[topic // 2 == i][:N] for i in range(cfg.n_topics // 2)}

    def histories(self, blocks: tuple[int, ...], n: int, seed: int) -> list[np.ndarray]:
        events = pd.concat([self.blocks[b] for b in blocks])
        users = events.groupby("user_id", sort=False)["item_id"].apply(lambda s: s.to_numpy()).tolist()
        order = np.random.default_rng(seed).permutation(len(users))
        return [users[i][: max(1, int(len(users[i]) * 0.8))] for i in np.resize(order, n)]

    def respond(self, history: np.ndarray) -> tuple[list, list, list, list]:
        interests, counts = np.unique(self.world.item_topic[history[-20:] - 1] // 2, return_counts=True)
        best = np.argsort(-counts, kind="stable")[:K]
        probs = counts[best] / counts[best].sum()
        items, via = [], []
        for k, t in enumerate(interests[best]):
            take = self.top_items[int(t)][: max(1, int(round(probs[k] * (N - 2))))]
            items += take.tolist()
            via += [k] * len(take)
        items += self.top_items[0][:2].tolist()  # the "user vector" slot
        via += [-1, -1]
        return [code_of(int(t)) for t in interests[best]], probs.tolist(), items, via

    def write(self, folder, blocks: tuple[int, ...], n: int, seed: int, start: datetime = START,
              corrupt: tuple[str, ...] = ()) -> None:
        """n requests of distinct users (while the blocks last) as response logs in two files."""
        with LogWriter(folder, max_lines=max(n // 2, 1)) as writer:
            for i, history in enumerate(self.histories(blocks, n, seed)):
                codes, probs, items, via = self.respond(history)
                writer.write(response_record(start + timedelta(seconds=i), f"r{i}", None, len(history),
                                             "stand-in", codes, probs, items, via, 1.0))
            for line in corrupt:
                writer.write_raw(line)

    def lookup(self) -> ItemLookup:
        ids = self.world.topic_items
        topic = self.world.item_topic[ids - 1]
        rank = np.arange(len(ids)) - np.searchsorted(topic, topic)
        bucket = np.where(rank < 5, "head", np.where(rank < 40, "torso", "tail"))
        return ItemLookup(pd.Series(bucket, index=ids),
                          pd.Series(["-".join(map(str, code_of(int(t) // 2))) for t in topic], index=ids))


@pytest.fixture(scope="session")
def stand_in():
    return StandIn(0.0)


@pytest.fixture(scope="session")
def windows(stand_in, tmp_path_factory):
    """Log folders of 1000 responses per seed: {shift: [folder of seed 0, …]}."""
    tmp = tmp_path_factory.mktemp("windows")
    shifted = StandIn(1.5, n_blocks=len(SEEDS))
    out = {}
    for shift, model in ((0.0, stand_in), (1.5, shifted)):
        out[shift] = [tmp / f"shift{shift}-seed{seed}" for seed in SEEDS]
        for seed, folder in zip(SEEDS, out[shift]):
            model.write(folder, (seed,), 1000, seed)
    return out


@pytest.fixture(scope="session")
def reference_dir(stand_in, tmp_path_factory):
    from monitoring.distributions import reference_from_logs

    tmp = tmp_path_factory.mktemp("reference")
    stand_in.write(tmp / "logs", REFERENCE_BLOCKS, 2000, seed=99)
    return reference_from_logs(tmp / "logs", tmp / "tables", lookup=stand_in.lookup())


@pytest.fixture(scope="session")
def checks(reference_dir, windows):
    """check_drift of every seed's window against the reference: {shift: [(result, snapshot), …]}."""
    from monitoring.distributions import current_tables, load_tables, lookup_for
    from monitoring.drift import check_drift

    reference, lookup = load_tables(reference_dir), lookup_for(reference_dir)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    out = {}
    for shift, folders in windows.items():
        out[shift] = [check_drift(reference, current_tables(folder, lookup=lookup)[0],
                                  timestamp=start + timedelta(hours=seed + 5 * (shift > 0)))
                      for seed, folder in zip(SEEDS, folders)]
    return out
