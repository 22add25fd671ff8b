"""Feast's Spark offline store and Spark compute engine for the feature stage (GEMIREC_OFFLINE_STORE=spark).

The same parquet files, read through ``SparkSource``s: the point-in-time join runs in Spark SQL
(Feast's SparkOfflineStore.get_historical_features) and materialization in Spark jobs that write the
online store from the executors (Feast's SparkComputeEngine, ``batch_engine: spark.engine``). The master
is ``local[2]`` unless ``GEMIREC_SPARK_MASTER`` names a cluster (``spark://host:7077``, ``yarn``, ``k8s://``);
on a cluster the store folder and the online store must be reachable from every executor (a shared volume,
Redis), as docs/scaling.md says. Java comes from the system (Debian's default-jre-headless).
"""

from __future__ import annotations

import copy
import os
import sys
from pathlib import Path

from feast import FeatureView, PushSource
from feast.infra.offline_stores.contrib.spark_offline_store.spark_source import SparkSource

SPARK_MASTER_ENV = "GEMIREC_SPARK_MASTER"
LOCAL_MASTER = "local[2]"


def spark_conf(root: Path) -> dict[str, str]:
    return {
        "spark.master": os.environ.get(SPARK_MASTER_ENV) or LOCAL_MASTER,
        "spark.app.name": "gemirec-features",
        "spark.sql.session.timeZone": "UTC",  # feature and event times are UTC instants
        # a local master listens on loopback only and keeps its scratch files in the store folder
        "spark.driver.host": "127.0.0.1",
        "spark.driver.bindAddress": "127.0.0.1",
        "spark.ui.enabled": "false",
        "spark.local.dir": str(root / "spark-tmp"),
        "spark.sql.shuffle.partitions": "4",  # the default 200 is for clusters; 2 cores here
        "spark.driver.memory": "1g",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        # Python workers run this interpreter, whose environment holds feast (not the system's python3)
        "spark.pyspark.python": sys.executable,
        "spark.pyspark.driver.python": sys.executable,
    }


def repo_settings(root: Path) -> dict:
    """The feature_store.yaml blocks: Spark offline store and Spark materialization."""
    # Spark starts its Python workers with PYSPARK_PYTHON (else the system's python3, which lacks feast);
    # its spark.pyspark.python setting is not read by a local master's workers
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    conf = spark_conf(root)
    return {"offline_store": {"type": "spark", "spark_conf": conf},
            "batch_engine": {"type": "spark.engine", "spark_conf": conf, "partitions": 2}}


def _spark_source(source, source_dir: Path) -> SparkSource:
    """A FileSource's twin: same name, columns and parquet file (absolute: executors have no repo path)."""
    return SparkSource(name=source.name, path=str((source_dir / Path(source.path).name).resolve()),
                       file_format="parquet", timestamp_field=source.timestamp_field,
                       created_timestamp_column=source.created_timestamp_column)


def with_spark_sources(objects: list, source_dir: Path) -> list:
    """The repo's declarations with every feature view reading its parquet file through Spark."""
    out = []
    for obj in objects:
        if isinstance(obj, FeatureView):
            view = copy.copy(obj)
            batch = _spark_source(obj.batch_source, source_dir)
            view.batch_source = batch
            if isinstance(obj.stream_source, PushSource):  # fresh events still arrive by push
                view.stream_source = PushSource(name=obj.stream_source.name, batch_source=batch)
            out.append(view)
        else:
            out.append(obj)
    return out


def stop_session() -> None:
    """Stop the JVM-backed session Feast started in this process (tests, the benchmark's children)."""
    from pyspark.sql import SparkSession

    session = SparkSession.getActiveSession()
    if session is not None:
        session.stop()
