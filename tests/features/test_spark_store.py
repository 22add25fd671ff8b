"""GEMIREC_OFFLINE_STORE=spark: the feature stage through Feast's Spark offline store and compute engine
(a real local[2] Spark on 127.0.0.1) gives the same training rows and online values as the default."""

import shutil

import pandas as pd
import pytest

from features import store
from features.datasets import TINY_SIMULATOR
from features.simulator import simulate

pytestmark = pytest.mark.skipif(shutil.which("java") is None, reason="Spark needs Java (default-jre-headless)")


@pytest.fixture(scope="module")
def spark_stage(tmp_path_factory):
    from features import spark_store

    root = tmp_path_factory.mktemp("spark")
    inter = simulate(TINY_SIMULATOR)[0]
    inter.events = inter.events[inter.events["user_id"] <= 40].reset_index(drop=True)
    inter.events.loc[1, ["item_id", "event_timestamp"]] = inter.events.loc[0, ["item_id", "event_timestamp"]]
    out = {}
    try:
        for name in ("duckdb", "spark"):
            cfg = store.StoreConfig(root / name, online="sqlite", offline=name, history_items=5)
            store.write_sources(cfg, inter)
            store.apply(cfg)
            done = store.materialize(cfg)
            users = sorted(inter.events["user_id"].unique().tolist()) + [10_000]
            out[name] = (cfg, done, store.training_rows(cfg, inter.events), store.online_history(cfg, users))
    finally:
        spark_store.stop_session()
    return inter, out


def test_spark_store_config_names_the_engine(spark_stage):
    _, out = spark_stage
    text = (out["spark"][0].store_dir / "feature_store.yaml").read_text()
    assert "type: spark" in text and "spark.engine" in text and "local[2]" in text


def test_spark_training_rows_equal_the_default(spark_stage):
    inter, out = spark_stage
    duck, spark = out["duckdb"][2], out["spark"][2]
    assert len(spark) == len(inter.events) > 100
    pd.testing.assert_frame_equal(spark[["user_id", "item_id", "event_timestamp"]],
                                  duck[["user_id", "item_id", "event_timestamp"]])
    assert spark["category"].astype("float64").tolist() == duck["category"].astype("float64").tolist()


def test_spark_materializes_the_same_online_values(spark_stage):
    inter, out = spark_stage
    duck, spark = out["duckdb"][3], out["spark"][3]
    assert spark == duck
    assert spark[10_000] == [] and len(spark[1]) == 5
    assert out["spark"][1]["user_history"].startswith("full")
