"""features/push.py on a real Feast store (SQLite online store, parquet offline sources) built from the tiny
simulator: pushed events reach the online history without a materialization, land in the pushed log once,
and malformed rows are counted and left out."""

from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest

from features import store
from features.datasets import load_dataset
from features.push import PushError, push_events, pushed_events, with_pushed


@pytest.fixture(scope="module")
def filled(tmp_path_factory):
    inter = load_dataset("simulator-tiny")
    cfg = store.StoreConfig(Path(tmp_path_factory.mktemp("push")) / "store", online="sqlite")
    store.write_sources(cfg, inter)
    store.apply(cfg)
    store.materialize(cfg)
    return cfg, inter


def last_time(inter, user: int) -> pd.Timestamp:
    return inter.events.loc[inter.events["user_id"] == user, "event_timestamp"].max()


def test_a_push_extends_the_online_history_once(filled):
    cfg, inter = filled
    user = 3
    before = store.online_history(cfg, [user])[user]
    t = last_time(inter, user)
    events = pd.DataFrame({"user_id": [user, user, user], "item_id": [11, 12, 12],
                           "event_timestamp": [t + timedelta(seconds=1), t + timedelta(seconds=2),
                                               t + timedelta(seconds=2)]})  # the last row repeats
    report = push_events(cfg, events)
    assert (report.accepted, report.duplicates, report.rejected, report.users_updated) == (2, 1, 0, 1)
    after = store.online_history(cfg, [user])[user]
    assert after == (before + [11, 12])[-cfg.history_items:] and after != before
    again = push_events(cfg, events)  # idempotent: nothing new, online and offline unchanged
    assert (again.accepted, again.duplicates, again.users_updated) == (0, 3, 0)
    assert store.online_history(cfg, [user])[user] == after
    logged = pushed_events(cfg)
    assert logged[logged["user_id"] == user]["item_id"].tolist() == [11, 12]


def test_malformed_rows_are_counted_and_left_out(filled):
    cfg, inter = filled
    user = 4
    t = last_time(inter, user)
    seconds = int(t.timestamp())
    raw = pd.DataFrame({"user": [user, "x", user, -1], "item": [21, 22, "y", 23],
                        "timestamp": [seconds + 5, seconds + 6, "not a time", seconds + 7]})
    report = push_events(cfg, raw)
    assert (report.received, report.accepted, report.rejected) == (4, 1, 3)
    assert len(report.malformed_examples) == 3 and "bad user_id" in report.malformed_examples[0]
    assert store.online_history(cfg, [user])[user][-1] == 21


def test_late_events_go_to_the_log_only_and_new_users_start_a_history(filled):
    cfg, inter = filled
    t = last_time(inter, 5)
    stranger = int(inter.events["user_id"].max()) + 100
    events = pd.DataFrame({"user_id": [5, stranger, stranger], "item_id": [31, 32, 33],
                           "event_timestamp": [t - timedelta(days=1), t, t + timedelta(seconds=1)]})
    before = store.online_history(cfg, [5])[5]
    report = push_events(cfg, events)
    assert (report.accepted, report.late, report.users_updated) == (3, 1, 1)
    assert store.online_history(cfg, [5, stranger]) == {5: before, stranger: [32, 33]}
    merged, added = with_pushed(inter, cfg)
    assert added == len(pushed_events(cfg)) and len(merged.events) == len(inter.events) + added
    assert merged.events["user_id"].is_monotonic_increasing


def test_a_table_without_event_columns_is_refused_whole(filled):
    cfg, _ = filled
    before = len(pushed_events(cfg))
    with pytest.raises(PushError, match="missing"):
        push_events(cfg, pd.DataFrame({"user_id": [1], "item_id": [2]}))
    assert len(pushed_events(cfg)) == before


def test_histories_stay_readable_while_a_training_run_materializes(filled):
    from feast.feature_view import FeatureViewState

    cfg, _ = filled
    before = store.online_history(cfg, [6])[6]
    feast_store = store.open_store(cfg)
    view = feast_store.get_feature_view("user_history")
    view.state = FeatureViewState.MATERIALIZING  # what Feast commits while `materialize` runs
    feast_store.registry.apply_feature_view(view, cfg.project)
    assert store.open_store(cfg).get_feature_view("user_history").state == FeatureViewState.MATERIALIZING
    assert before and store.online_history(cfg, [6])[6] == before
    view.state = FeatureViewState.AVAILABLE_ONLINE
    feast_store.registry.apply_feature_view(view, cfg.project)


def test_the_events_push_command_reports_and_is_idempotent(filled, tmp_path):
    from typer.testing import CliRunner

    from flows.cli import app

    cfg, inter = filled
    seconds = int(last_time(inter, 7).timestamp())
    csv = tmp_path / "new.csv"
    csv.write_text(f"user_id,item_id,timestamp\n7,41,{seconds + 10}\n7,oops,{seconds + 11}\n")
    runner = CliRunner()
    first = runner.invoke(app, ["events", "push", str(csv), "--store", str(cfg.store_dir)], terminal_width=200)
    assert first.exit_code == 0, first.output
    assert "accepted (online + log)" in first.output and "bad item_id" in first.output
    counts = {line.split("│")[1].strip(): line.split("│")[2].strip() for line in first.output.splitlines()
              if line.count("│") == 3}
    assert counts["accepted (online + log)"] == "1" and counts["rejected (malformed)"] == "1", counts
    again = runner.invoke(app, ["events", "push", str(csv), "--store", str(cfg.store_dir)], terminal_width=200)
    counts = {line.split("│")[1].strip(): line.split("│")[2].strip() for line in again.output.splitlines()
              if line.count("│") == 3}
    assert counts["accepted (online + log)"] == "0" and counts["duplicates (skipped)"] == "1", again.output
    missing = runner.invoke(app, ["events", "push", str(tmp_path / "nope.csv"), "--store", str(cfg.store_dir)])
    assert missing.exit_code == 2 and "file not found" in missing.output
