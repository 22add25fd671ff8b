"""Feast store: point-in-time training rows, idempotent materialization, online reads (features/store.py)."""

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from features import store
from features.events import IngestReport, build_interactions, complete_items

T0 = pd.Timestamp("2024-03-01", tz="UTC")


def hours(h: float) -> pd.Timestamp:
    return T0 + pd.Timedelta(hours=h)


def interactions():
    events = pd.DataFrame({
        # user 4 repeats user 1's (item 11, hour 2): distinct events that must both survive the join
        "user_id": [1, 1, 1, 1, 2, 2, 3, 4],
        "item_id": [10, 11, 10, 12, 11, 12, 13, 11],
        "event_timestamp": [hours(1), hours(2), hours(5), hours(6), hours(1), hours(3), hours(2), hours(2)],
    })
    items = pd.DataFrame({"item_id": [10, 11, 12, 13], "category": [0, 1, 1, 2],
                          "attributes": [[1], [2, 3], [], [4]]})
    return build_interactions(events, complete_items(items, events["item_id"].to_numpy()),
                              IngestReport(source="test", format="table"))


@pytest.fixture
def applied(tmp_path):
    cfg = store.StoreConfig(tmp_path / "store", history_items=3)
    inter = interactions()
    store.write_sources(cfg, inter)
    store.apply(cfg)
    return cfg, inter


def test_history_rows_are_windows_up_to_each_event():
    inter = interactions()
    table = store.user_history_table(inter.events, 2, T0.to_pydatetime()).to_pandas()
    user1 = table[table["user_id"] == 1]
    assert [list(x) for x in user1["item_ids"]] == [[10], [10, 11], [11, 10], [10, 12]]
    assert user1["history_length"].tolist() == [1, 2, 3, 4]  # the count is not capped by the window


def test_feature_row_written_after_an_event_is_invisible_to_it(applied):
    cfg, inter = applied
    # item 10's profile is first known at hour 3: its hour-1 event must not see it, its hour-5 event must
    profile = pq.read_table(cfg.source("item_profile")).to_pandas()
    profile.loc[profile["item_id"] == 10, "event_timestamp"] = hours(3)
    pq.write_table(pa.Table.from_pandas(profile, schema=store.SOURCE_SCHEMAS["item_profile"],
                                        preserve_index=False), cfg.source("item_profile"))
    rows = store.training_rows(cfg, inter.events)
    assert rows[["user_id", "item_id"]].equals(inter.events[["user_id", "item_id"]])  # every event, in order
    item10 = rows[rows["item_id"] == 10].set_index("event_timestamp")["category"]
    assert pd.isna(item10[hours(1)])
    assert item10[hours(5)] == 0
    assert rows.loc[rows["item_id"] == 11, "category"].tolist() == [1, 1, 1]
    # the trainer's item table takes what the latest event could see; events pass through unchanged
    trained = store.training_interactions(rows, inter.report)
    assert trained.items.set_index("item_id").loc[10, "category"] == 0
    assert trained.data_hash() == inter.data_hash()


def test_materializing_twice_gives_the_same_online_values(applied):
    cfg, _ = applied
    first_run = store.materialize(cfg)
    first = store.online_history(cfg, [1, 2, 3, 4])
    second_run = store.materialize(cfg)
    assert store.online_history(cfg, [1, 2, 3, 4]) == first
    assert first == {1: [11, 10, 12], 2: [11, 12], 3: [13], 4: [11]}  # the last 3 items, oldest first
    assert first_run["user_history"].startswith("full")
    assert second_run["user_history"].startswith("incremental")


def test_unknown_user_gets_an_empty_history(applied):
    cfg, _ = applied
    assert store.online_history(cfg, [999]) == {999: []}  # before any materialization
    store.materialize(cfg)
    assert store.online_history(cfg, [1, 999])[999] == []
    assert store.online_history(cfg, []) == {}


def test_item_interest_is_written_and_read_back(applied):
    cfg, _ = applied
    store.materialize(cfg)
    codes = pd.DataFrame({"item_id": [10, 11], "code_l1": [3, 5], "code_l2": [0, 1]})
    assert store.write_item_interest(cfg, codes, "gemirec:v1") == 2
    store.write_item_interest(cfg, codes.assign(code_l1=[4, 4]), "gemirec:v2")  # a newer model wins
    assert store.online_item_interest(cfg, [10, 11, 12]) == {10: [4, 0], 11: [4, 1], 12: None}

