"""New users of a simulator world: the events a running product receives after its model was trained.

    events = fresh_users(SimulatorConfig(), n_users=500, shift=1.5)   # drifted newcomers of the default world
    write_world(cfg, "runs/loop/world.parquet")                      # a world's training log as an events file

The world (items, topics, topic graph) is fixed by the config's seed, so fresh users interact with the items
the model knows. Their ids follow the training users' (whole blocks of ``BLOCK_USERS`` later, the blocks the
simulator would have drawn next), so they are new to the feature store and to the model. ``shift`` tilts
their topic prior (``SimulatorConfig.shift``): the drift the monitor should see.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from features.events import events_to_arrow
from features.simulator import BLOCK_USERS, SimulatorConfig, iter_simulated


def fresh_users(world: SimulatorConfig, n_users: int, shift: float = 0.0, seed: int = 0) -> pd.DataFrame:
    """Events (user_id, item_id, event_timestamp) of ``n_users`` users drawn after the world's own users;
    ``seed`` picks later blocks, so different seeds give disjoint users."""
    first_block = -(-world.n_users // BLOCK_USERS) + seed * (-(-n_users // BLOCK_USERS))
    cfg = replace(world, n_users=first_block * BLOCK_USERS + n_users, shift=shift)
    chunks = [events for block, (events, _) in enumerate(iter_simulated(cfg, chunk_users=BLOCK_USERS))
              if block >= first_block]
    return pd.concat(chunks, ignore_index=True)


def history_part(events: pd.DataFrame, share: float = 0.8) -> pd.DataFrame:
    """Each user's first ``share`` of events (at least one): what has happened before a request."""
    position = events.groupby("user_id", sort=False).cumcount()
    length = events.groupby("user_id", sort=False)["item_id"].transform("size")
    return events[position < (length * share).clip(lower=1)].reset_index(drop=True)


def write_world(world: SimulatorConfig, path: str | Path) -> Path:
    """The world's training log as a parquet events file (what `train-gemirec --events` reads)."""
    from features.simulator import simulate

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(events_to_arrow(simulate(world)[0].events), path)
    return path
