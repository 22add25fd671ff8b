"""Redis online store (features/store.py) against a real redis-server this test starts on 127.0.0.1."""

import shutil
import socket
import subprocess
import time

import pandas as pd
import pytest
import redis
import yaml

from features import store
from tests.features.test_store import interactions

pytestmark = pytest.mark.skipif(
    shutil.which("redis-server") is None,
    reason="redis-server is not on PATH (apt-get install redis-server; .ci/run installs it)")

USERS = [1, 2, 3, 4, 999]  # 999 was never seen
ITEMS = [10, 11, 12, 13]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def redis_address(tmp_path):
    """host:port of a throwaway redis-server: no snapshots, no append-only file, stopped afterwards."""
    port = _free_port()
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(host="127.0.0.1", port=port)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start on port {port}") from None
                time.sleep(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        client.close()
        server.terminate()
        server.wait(timeout=10)


def _filled(cfg: store.StoreConfig) -> store.StoreConfig:
    store.write_sources(cfg, interactions())
    store.apply(cfg)
    store.materialize(cfg)
    codes = pd.DataFrame({"item_id": [10, 11], "code_l1": [3, 5], "code_l2": [0, 1]})
    store.write_item_interest(cfg, codes, "gemirec:v1")
    return cfg


def test_redis_serves_what_sqlite_serves(tmp_path, redis_address):
    sqlite = _filled(store.StoreConfig(tmp_path / "sqlite", online="sqlite", history_items=3))
    on_redis = _filled(store.StoreConfig(tmp_path / "redis", online="redis",
                                         redis_connection=redis_address, history_items=3))
    assert store.online_history(on_redis, USERS) == store.online_history(sqlite, USERS)
    assert store.online_history(on_redis, USERS)[2] == [11, 12]
    assert store.online_item_interest(on_redis, ITEMS) == store.online_item_interest(sqlite, ITEMS)
    # the rows really live in Redis, not in a SQLite file beside the registry
    host, port = redis_address.split(":")
    assert redis.Redis(host=host, port=int(port)).dbsize() > 0
    assert not (tmp_path / "redis" / "online_store.db").exists()


def test_environment_switches_the_online_store(tmp_path, redis_address, monkeypatch):
    monkeypatch.setenv(store.ONLINE_STORE_ENV, "redis")
    monkeypatch.setenv(store.REDIS_ENV, redis_address)
    cfg = store.StoreConfig(tmp_path / "store", history_items=3)  # as serving builds it: no online option
    assert (cfg.online, cfg.redis_connection) == ("redis", redis_address)
    written = yaml.safe_load(store.write_repo_config(cfg).read_text())
    assert written["online_store"] == {"type": "redis", "connection_string": redis_address}
    _filled(cfg)
    assert store.online_history(cfg, [1, 999]) == {1: [11, 10, 12], 999: []}

    monkeypatch.delenv(store.ONLINE_STORE_ENV)
    assert store.StoreConfig(tmp_path / "other").online == "sqlite"  # the default stays local
