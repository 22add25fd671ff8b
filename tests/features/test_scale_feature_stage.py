"""The streaming feature stage (features/sources.py, features/training_set.py) against the per-event
layout and Feast's own point-in-time join it replaces."""

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from features import sources, store
from features.datasets import TINY_SIMULATOR
from features.simulator import simulate
from tests.features.test_store import T0, interactions


def per_event_latest(inter, k):
    table = store.user_history_table(inter.events, k, T0.to_pydatetime()).to_pandas()
    return table.groupby("user_id").tail(1).reset_index(drop=True)


@pytest.mark.parametrize("batch_rows", [1, 2, 3, 1000])
def test_streamed_histories_are_the_last_per_event_row_of_each_user(tmp_path, batch_rows):
    inter = interactions()
    inter.save(tmp_path / "data")
    rows, profile = sources.write_streamed(tmp_path / "data", tmp_path / "h.parquet", 3, T0.to_pydatetime(),
                                           batch_rows=batch_rows)
    latest = pq.read_table(tmp_path / "h.parquet").to_pandas()
    expected = per_event_latest(inter, 3)
    assert rows == 4
    assert [list(x) for x in latest["item_ids"]] == [list(x) for x in expected["item_ids"]]
    assert latest["history_length"].tolist() == [4, 2, 1, 1]  # whole histories, across batch boundaries
    pd.testing.assert_series_equal(latest["last_event_time"], expected["last_event_time"])
    old = store.item_profile_table(inter, T0.to_pydatetime()).to_pandas().drop(columns="created")
    pd.testing.assert_frame_equal(profile.to_pandas().drop(columns="created"), old)


def test_a_log_out_of_order_is_refused(tmp_path):
    inter = interactions()
    inter.events = inter.events.iloc[::-1].reset_index(drop=True)
    inter.save(tmp_path / "data")
    with pytest.raises(sources.NotCanonical):
        sources.write_streamed(tmp_path / "data", tmp_path / "h.parquet", 3, T0.to_pydatetime())


def sources_for(cfg, inter):
    store.write_sources(cfg, inter)
    store.apply(cfg)


def test_duckdb_join_matches_feasts_row_for_row(tmp_path):
    inter = simulate(TINY_SIMULATOR)[0]
    inter.events = inter.events.iloc[:4000].reset_index(drop=True)
    # derived-looking duplicates: two users sharing (item, time) must both keep their rows
    inter.events.loc[1, ["item_id", "event_timestamp"]] = inter.events.loc[0, ["item_id", "event_timestamp"]]
    ours, feasts = (store.StoreConfig(tmp_path / name, offline=name) for name in ("duckdb", "file"))
    for cfg in (ours, feasts):
        sources_for(cfg, inter)
    # one profile row moved past some of its events: those events must now see nothing
    profile = pq.read_table(feasts.source("item_profile")).to_pandas()
    item = inter.events["item_id"].iloc[10]
    profile.loc[profile["item_id"] == item, "event_timestamp"] = inter.events["event_timestamp"].iloc[10]
    for cfg in (ours, feasts):
        pq.write_table(pa.Table.from_pandas(profile, schema=store.SOURCE_SCHEMAS["item_profile"],
                                            preserve_index=False), cfg.source("item_profile"))
    a, b = store.training_rows(ours, inter.events), store.training_rows(feasts, inter.events)
    assert len(a) == len(inter.events) and a["category"].isna().sum() > 0
    pd.testing.assert_frame_equal(a[["user_id", "item_id", "event_timestamp"]],
                                  b[["user_id", "item_id", "event_timestamp"]])
    assert a["category"].fillna(-9).tolist() == b["category"].fillna(-9).tolist()
    assert lists(a["attributes"]) == lists(b["attributes"])


def lists(column):
    """Missing lists read None here and NaN from Feast's merge: both mean 'no feature row'."""
    return [list(x) if hasattr(x, "__len__") else None for x in column]


def test_streamed_training_set_gives_the_trainer_the_same_data(tmp_path):
    inter = interactions()
    inter.save(tmp_path / "data")
    cfg = store.StoreConfig(tmp_path / "store", history_items=3)
    store.write_sources_from(cfg, tmp_path / "data")
    store.apply(cfg)
    old = store.training_interactions(store.training_rows(cfg, inter.events), inter.report)
    summary = store.build_training_set(cfg, tmp_path / "data", tmp_path / "train")
    new = type(inter).load(tmp_path / "train")
    assert summary == {"rows": 8, "items": 4}
    assert new.data_hash() == old.data_hash()
    rows = pq.read_table(tmp_path / "train" / "training_rows.parquet").to_pandas()
    assert rows["category"].tolist() == [0, 1, 0, 1, 1, 1, 2, 1]


def test_latest_only_sources_materialize_the_same_online_values(tmp_path):
    inter = interactions()
    values = {}
    for layout in ("latest", "per_event"):
        cfg = store.StoreConfig(tmp_path / layout, history_items=3, history_rows=layout)
        sources_for(cfg, inter)
        store.materialize(cfg)
        values[layout] = store.online_history(cfg, [1, 2, 3, 4, 5])
        assert store.materialize(cfg)["user_history"].startswith("incremental")
        assert store.online_history(cfg, [1, 2, 3, 4, 5]) == values[layout]
    assert values["latest"] == values["per_event"] == {1: [11, 10, 12], 2: [11, 12], 3: [13], 4: [11], 5: []}
    assert pq.read_metadata(tmp_path / "latest" / "data" / "user_history.parquet").num_rows == 4


def test_materializing_in_small_windows_writes_the_same_online_values(tmp_path):
    """Windows of 2 rows: every user and item lands in a window; values equal one window over everything."""
    inter = interactions()
    values = {}
    for rows in (0, 2):
        cfg = store.StoreConfig(tmp_path / f"w{rows}", history_items=3)
        sources_for(cfg, inter)
        done = store.materialize(cfg, window_rows=rows)
        n_windows = int(done["user_history"].split(" in ")[1].split()[0])
        assert n_windows == 1 if rows == 0 else n_windows > 1
        profiles = store.open_store(cfg).get_online_features(
            ["item_profile:category", "item_profile:popularity"], [{"item_id": i} for i in (10, 11, 12, 13)],
        ).to_dict()
        values[rows] = (store.online_history(cfg, [1, 2, 3, 4, 5]), profiles)
        assert store.materialize(cfg, window_rows=rows)["user_history"].startswith("incremental")
    assert values[2] == values[0]
    assert values[0][0] == {1: [11, 10, 12], 2: [11, 12], 3: [13], 4: [11], 5: []}
    assert None not in values[0][1]["category"]  # every item's profile reached the online store


def test_time_windows_cover_every_row_once():
    import pyarrow as pa
    from datetime import UTC, datetime

    from features.sources import time_windows

    stamps = [datetime(2024, 1, d, tzinfo=UTC) for d in (5, 1, 3, 3, 3, 9, 2, 7)]
    times = pa.chunked_array([pa.array(stamps[:3], pa.timestamp("us", tz="UTC")),
                              pa.array(stamps[3:], pa.timestamp("us", tz="UTC"))])
    start, end = datetime(2023, 12, 31, tzinfo=UTC), datetime(2024, 2, 1, tzinfo=UTC)
    windows = time_windows(times, start, end, 2)
    assert windows[0][0] == start and windows[-1][1] == end
    assert all(a[1] == b[0] for a, b in zip(windows, windows[1:]))  # contiguous, no gap
    counts = [sum(lo <= t < hi for t in stamps) for lo, hi in windows]
    assert sum(counts) == len(stamps) and len(windows) >= 3
    assert time_windows(times, start, end, 100) == [(start, end)]
