"""The GemiRec service, called over HTTP on a started `bentoml serve` (fixture `served`), plus the parts that
need no server: the Feast history reader and the response log's rotation (serving/)."""

import json
import shutil
import threading
import time

import httpx
import numpy as np
import pandas as pd
import pytest

from monitoring.logs import read_window
from serving import registry
from serving.engine import Engine, Rejected
from serving.runtime import ModelHolder, ResponseLog, ServingConfig
from serving.schemas import MAX_HISTORY, MAX_ID, MAX_K, MAX_N, RecommendRequest


@pytest.fixture(scope="module")
def catalogue(served):
    return pd.read_parquet(served.folder / "items.parquet")


def known(catalogue, n=5):
    return catalogue["item_id"].head(n).tolist()


def test_recommend_returns_items_with_scores_and_the_interest_each_came_from(client, catalogue, served):
    r = client.post("/recommend", json={"history": known(catalogue), "n": 20})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model_version"] == served.first_tag and not body["cold_start"]
    assert body["history_len"] == 5 and body["unknown_items"] == []
    interests = body["interests"]
    assert len(interests) == 4 and abs(sum(i["prob"] for i in interests) - 1) < 1e-4
    assert all(i["label"] and len(i["code"]) >= 1 for i in interests)
    items = body["items"]
    assert len(items) == 20 and len({i["item_id"] for i in items}) == 20
    assert set(i["item_id"] for i in items) <= set(catalogue["item_id"])
    if json.loads((served.folder / "config.json").read_text())["gemirec"]["merge"] == "mixture":
        scores = [i["score"] for i in items]
        assert scores == sorted(scores, reverse=True)  # the mixture probability is what ranked them
    for item in items:
        k = item["interest"]["index"]
        assert -1 <= k < 4
        if k >= 0:
            assert item["interest"]["code"] == interests[k]["code"]
            assert item["interest"]["label"] == interests[k]["label"]


def test_the_largest_allowed_request_is_answered(client, catalogue):
    history = catalogue["item_id"].tolist()[:MAX_HISTORY]
    r = client.post("/recommend", json={"history": history, "n": MAX_N, "k": MAX_K})
    assert r.status_code == 200, r.text
    body = r.json()
    assert 1 <= len(body["interests"]) <= MAX_K and len(body["items"]) <= MAX_N
    assert body["history_len"] <= len(history)  # the model reads only its last maxlen items


def test_interests_and_similar_items(client, catalogue):
    r = client.post("/interests", json={"history": known(catalogue), "k": 2})
    assert r.status_code == 200, r.text
    assert [i["index"] for i in r.json()["interests"]] == [0, 1]
    item = int(catalogue["item_id"].iloc[0])
    r = client.post("/similar_items", json={"item_id": item, "n": 5})
    assert r.status_code == 200, r.text
    similar = r.json()["items"]
    assert len(similar) == 5 and item not in [s["item_id"] for s in similar]
    assert all(s["interest"]["code"] is not None for s in similar)  # the item's own code and label


def test_cold_start_answers_the_most_popular_items(client, catalogue):
    popular = catalogue.sort_values("popularity", ascending=False, kind="stable")["item_id"].head(10).tolist()
    for body in ({"history": [], "n": 10}, {"history": [MAX_ID], "unknown_items": "drop", "n": 10}):
        r = client.post("/recommend", json=body)
        assert r.status_code == 200, r.text
        answer = r.json()
        assert answer["cold_start"] and answer["interests"] == []
        assert [i["item_id"] for i in answer["items"]] == popular
        assert {i["interest"]["index"] for i in answer["items"]} == {-1}


def test_unknown_items_are_rejected_by_name_or_dropped_on_request(client, catalogue):
    history = known(catalogue, 3) + [MAX_ID]
    r = client.post("/recommend", json={"history": history})
    assert r.status_code == 404 and r.json()["detail"]["unknown_items"] == [MAX_ID]  # well formed, unknown
    r = client.post("/recommend", json={"history": history, "unknown_items": "drop", "n": 3})
    assert r.status_code == 200 and r.json()["unknown_items"] == [MAX_ID] and r.json()["history_len"] == 3
    assert client.post("/similar_items", json={"item_id": MAX_ID}).status_code == 404


@pytest.mark.parametrize("body", [
    {}, {"n": 5}, {"history": "1,2"}, {"history": [1], "n": 0}, {"history": [1], "n": MAX_N + 1},
    {"history": [1], "k": 0}, {"history": [1], "k": 10_000}, {"history": [1] * (MAX_HISTORY + 1)},
    {"history": [-1]}, {"history": [MAX_ID + 1]}, {"history": [1.5]}, {"history": ["1"]}, {"history": [True]},
    {"history": [1], "surprise": 1}, {"history": [1], "unknown_items": "maybe"}, [1, 2], None, "text",
    {"user_id": 7},  # no feature store configured: a history must be sent
])
def test_malformed_requests_get_422(client, body):
    r = client.post("/recommend", json=body)
    assert r.status_code == 422, (body, r.status_code, r.text)
    assert r.json()["error"]


def test_not_json_wrong_type_and_oversized_bodies(client):
    assert client.post("/recommend", content=b"{not json",
                       headers={"content-type": "application/json"}).status_code == 422
    assert client.post("/recommend", content=b"history=1", headers={
        "content-type": "application/x-www-form-urlencoded"}).status_code == 415
    huge = b'{"history": [' + b"1," * 600_000 + b"1]}"
    r = client.post("/recommend", content=huge, headers={"content-type": "application/json"})
    assert r.status_code == 413


def test_the_token_guards_the_apis_but_not_the_probes(served):
    body = {"history": [1, 2]}
    assert httpx.post(f"{served.url}/recommend", json=body).status_code == 401
    wrong = {"Authorization": "Bearer nope"}
    assert httpx.post(f"{served.url}/recommend", json=body, headers=wrong).status_code == 401
    for probe in ("/livez", "/readyz", "/health"):
        assert httpx.get(f"{served.url}{probe}").status_code == 200
    health = httpx.get(f"{served.url}/health").json()
    assert health["ready"] and health["auth"] and health["model_version"]


def test_every_recommendation_is_logged_in_the_monitoring_contract(client, catalogue, served):
    ids = [client.post("/recommend", json={"history": known(catalogue), "n": 7}).json()["request_id"]
           for _ in range(3)]
    window = read_window(served.log_dir)
    assert window.n_corrupt == 0 and window.n_requests >= 3
    assert np.all(np.diff(window.item_offsets)[-3:] == 7)
    assert set(ids) <= {line.split('"request_id":"')[1].split('"')[0]
                        for f in served.log_dir.glob("*.jsonl") for line in f.read_text().splitlines()}


def test_a_promoted_version_is_picked_up_while_requests_keep_succeeding(client, catalogue, served):
    second = registry.register(served.registry, served.folder, {"model": "gemirec"}, {})
    statuses, versions, stop = [], set(), threading.Event()

    def hammer():
        with httpx.Client(base_url=served.url, headers=served.headers, timeout=30) as c:
            while not stop.is_set():
                r = c.post("/recommend", json={"history": known(catalogue), "n": 10})
                statuses.append(r.status_code)
                versions.add(r.json().get("model_version"))

    threads = [threading.Thread(target=hammer) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.5)
        registry.promote(served.registry, second.tag, "test reload")
        deadline = time.monotonic() + 30
        while second.tag not in versions and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.3)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert second.tag in versions and served.first_tag in versions
    assert set(statuses) == {200}, f"{len(statuses)} requests: {sorted(set(statuses))}"
    assert httpx.get(f"{served.url}/health").json()["reloads"] >= 1


def test_a_tampered_version_is_refused_and_the_current_model_kept(client, catalogue, served):
    current = httpx.get(f"{served.url}/health").json()["model_version"]
    bad = registry.register(served.registry, served.folder, {"model": "gemirec"}, {})
    with open(bad.path / "weights.pt", "ab") as f:
        f.write(b"tampered")
    registry.promote(served.registry, bad.tag, "test tampering")
    deadline = time.monotonic() + 30
    health = {}
    while time.monotonic() < deadline:
        health = httpx.get(f"{served.url}/health").json()
        if (health.get("last_error") or {}).get("version") == bad.tag:
            break
        time.sleep(0.1)
    assert "checksum" in health["last_error"]["error"] and health["last_error"]["kept"] == current
    r = client.post("/recommend", json={"history": known(catalogue), "n": 5})
    assert r.status_code == 200 and r.json()["model_version"] == current


def _health_when(served, ok, timeout=30.0) -> dict:
    deadline = time.monotonic() + timeout
    health = {}
    while time.monotonic() < deadline:
        health = httpx.get(f"{served.url}/health").json()
        if ok(health):
            return health
        time.sleep(0.1)
    raise AssertionError(f"health never got there: {health}")


def test_the_served_version_keeps_serving_when_its_store_entry_is_corrupted_or_deleted(client, catalogue,
                                                                                      served):
    import bentoml

    for fault in ("corrupt", "delete"):
        version = registry.register(served.registry, served.folder, {"model": "gemirec"}, {})
        registry.promote(served.registry, version.tag, f"test store fault: {fault}")
        _health_when(served, lambda h, tag=version.tag: h["model_version"] == tag and h["store_intact"])
        if fault == "corrupt":
            with open(version.path / "weights.pt", "ab") as f:
                f.write(b"bit rot")
        else:  # what `bentoml models delete <tag>` does
            bentoml.models.delete(version.tag, _model_store=served.registry.store)
        health = _health_when(served, lambda h: h["store_intact"] is False)
        expected = "changed on disk (weights.pt)" if fault == "corrupt" else "is gone"
        assert expected in health["last_error"]["error"] and health["last_error"]["kept"] == version.tag
        assert health["ready"] and httpx.get(f"{served.url}/readyz").status_code == 200
        r = client.post("/recommend", json={"history": known(catalogue), "n": 5})
        assert r.status_code == 200 and r.json()["model_version"] == version.tag  # from memory


# ---------------------------------------------------------------- no server needed


def test_histories_come_from_a_real_feast_store(tmp_path, trained_tiny):
    from features import store
    from features.events import IngestReport, build_interactions, complete_items
    from serving.runtime import feast_history_reader

    hours = pd.Timestamp("2024-03-01", tz="UTC") + pd.to_timedelta([1, 2, 3, 1], unit="h")
    events = pd.DataFrame({"user_id": [1, 1, 1, 2], "item_id": [3, 4, 5, 6], "event_timestamp": hours})
    items = complete_items(pd.DataFrame({"item_id": [3, 4, 5, 6], "category": [0, 0, 1, 1],
                                         "attributes": [[], [], [], []]}), events["item_id"].to_numpy())
    cfg = store.StoreConfig(tmp_path / "store", history_items=20)
    store.write_sources(cfg, build_interactions(events, items, IngestReport(source="test", format="table")))
    store.apply(cfg)
    store.materialize(cfg, ["user_history"])
    holder = ModelHolder(ServingConfig(model_folder=trained_tiny, log_dir=None))
    holder.start()
    engine = Engine(holder, feast_history_reader(cfg.store_dir))
    by_user = engine.prepare(RecommendRequest(user_id=1, n=5))
    assert by_user.history == [3, 4, 5]
    assert engine.prepare(RecommendRequest(user_id=1, history=[6], n=5)).history == [6]  # explicit wins
    stranger = engine.prepare(RecommendRequest(user_id=999, n=5))
    answer = engine.answer(stranger, engine.compute([stranger])[0])
    assert answer.cold_start and answer.user_id == 999 and len(answer.items) == 5
    assert not engine.answer(by_user, engine.compute([by_user])[0]).cold_start
    with pytest.raises(Rejected) as no_store:
        Engine(holder).prepare(RecommendRequest(user_id=1))
    assert no_store.value.status == 422


def test_the_response_log_rotates_within_its_disk_budget(tmp_path):
    log = ResponseLog(tmp_path, file_mb=0.001, max_files=3)  # ~1 kB files
    for i in range(200):
        log.write({"ts": "2025-01-01T00:00:00+00:00", "request_id": str(i), "user_id": None, "history_len": 1,
                   "model_version": "v", "interest_codes": [[1]], "interest_probs": [1.0], "items": [i],
                   "item_interest": [0], "latency_ms": 1.0})
    log.close()
    files = sorted(tmp_path.glob("*.jsonl"))
    assert len(files) == 3 and sum(f.stat().st_size for f in files) < 4 * 1024
    window = read_window(tmp_path)
    assert window.n_corrupt == 0 and window.items[-1] == 199  # the newest lines survive


def test_a_broken_first_model_leaves_the_service_unready_not_crashed(tmp_path, trained_tiny):
    folder = tmp_path / "model"
    shutil.copytree(trained_tiny, folder)
    (folder / "index.faiss").write_bytes(b"truncated")
    holder = ModelHolder(ServingConfig(model_folder=folder, log_dir=None))
    holder.start()
    assert holder.current is None and "checksum" in holder.status()["last_error"]["error"]
    with pytest.raises(Rejected) as unavailable:
        Engine(holder).prepare(RecommendRequest(history=[1]))
    assert unavailable.value.status == 503
