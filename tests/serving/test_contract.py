"""The API contract, checked on a started `bentoml serve` (fixture `served`): schemathesis' every check passes
against the service's own OpenAPI document, the document and the server agree on which bodies are valid, the
API page states the service and its model, and a body over the limit gets a 413 rather than a reset."""

import json
import re
import socket
import subprocess
import sys
from urllib.parse import urlparse

import httpx
import jsonschema
import pytest

from serving.schemas import MAX_ID
from tests.serving.conftest import TOKEN

EXAMPLES = 40  # per operation and phase: ~900 requests, about 20 s on two shared cores
SEED = 22  # fixed, so a failure here reproduces; `schemathesis run` by hand explores other seeds


@pytest.fixture(scope="module")
def document(client):
    r = client.get("/docs.json")
    assert r.status_code == 200, r.text
    return r.json()


def test_schemathesis_all_checks_find_no_failure(served):
    """The command in docs/serving.md, bounded: every check (status codes, schemas of answers, positive and
    negative data, auth ignored, unsupported methods) on every documented operation."""
    cmd = [sys.executable, "-m", "schemathesis.cli", "run", f"{served.url}/docs.json", "--checks", "all",
           "--max-examples", str(EXAMPLES), "--seed", str(SEED), "--no-color",
           "-H", f"Authorization: Bearer {TOKEN}"]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=170)
    out = run.stdout + run.stderr
    assert run.returncode == 0 and "No issues found" in out, out[-6000:]
    generated = int(re.search(r"(\d+) generated", out).group(1))
    assert generated >= 300, out[-2000:]  # it really exercised the API, not just loaded the document
    assert int(re.search(r"Tested:\s+(\d+)", out).group(1)) >= 7  # 3 APIs, /health and BentoML's probes


def _request_schema(document, path):
    schema = document["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
    return {**schema, "components": document["components"]}


@pytest.mark.parametrize("body", [
    {}, {"n": 5}, {"user_id": None, "history": None}, {"history": None}, {"user_id": 7},
    {"history": [1], "user_id": None}, {"history": [1.5]}, {"history": [1], "extra": 1}, {"history": [-1]},
    {"history": [MAX_ID + 1]}, {"history": [2]}, {"history": [2.0], "n": 3.0}, {"history": ["2"]},
])
def test_the_document_and_the_server_agree_on_valid_bodies(client, document, body):
    """Schema-valid bodies are never refused as invalid (422), schema-invalid ones always are. The service
    has no feature store, so its document offers no user_id-only request, and the server refuses one."""
    valid = jsonschema.Draft202012Validator(_request_schema(document, "/recommend")).is_valid(body)
    r = client.post("/recommend", json=body)
    assert (r.status_code != 422) == valid, (body, valid, r.status_code, r.text)
    assert r.status_code in (200, 404, 422), r.text  # 404: ids the model does not know


def test_responses_declare_a_null_user_id_and_every_error_with_its_problem_body(document):
    components = document["components"]["schemas"]
    user_id = components["RecommendResponse"]["properties"]["user_id"]
    assert {"type": "null"} in user_id["anyOf"]
    rule = components["RecommendRequest"]["anyOf"]
    assert rule == [{"required": ["history"], "properties": {"history": {"type": "array"}}}]  # no store
    for path in ("/recommend", "/interests", "/similar_items"):
        responses = document["paths"][path]["post"]["responses"]
        assert {"200", "401", "404", "413", "415", "422", "503"} <= set(responses), path
        for status, answer in responses.items():
            if status != "200":
                assert answer["content"]["application/json"]["schema"] == {
                    "$ref": "#/components/schemas/Problem"}
    assert "/events" not in document["paths"]  # no feature store behind this service: nothing to push to


def test_the_api_page_states_the_service_its_model_and_working_examples(served, client, document):
    health = client.get("/health").json()
    info = document["info"]
    assert info["version"] == health["model_version"] != "None"
    assert info["description"].startswith("GemiRec") and "created with BentoML" not in info["description"]
    for path in ("/recommend", "/interests", "/similar_items"):
        example = document["paths"][path]["post"]["requestBody"]["content"]["application/json"]["example"]
        r = client.post(path, json=example)
        assert r.status_code == 200, (path, example, r.text)
    page = httpx.get(f"{served.url}/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]


def _raw_post(url: str, head: bytes, body: bytes) -> bytes:
    """Send a whole request on a plain socket, then read the answer: a server that answers before reading
    the body and closes makes `sendall` fail (reset or broken pipe). Each request here ends with a
connection the server closes (413s say "connection: close")."""
    where = urlparse(url)
    with socket.create_connection((where.hostname, where.port), timeout=60) as s:
        s.sendall(head + body)
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    return answer


def test_a_10_mb_body_gets_a_413_with_a_message_not_a_reset(served):
    body = b'{"history": [' + b"1," * 5_000_000 + b"1]}"
    head = (f"POST /recommend HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {TOKEN}\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    answer = _raw_post(served.url, head, body)
    status, _, rest = answer.partition(b"\r\n")
    assert status.startswith(b"HTTP/1.1 413"), answer[:300]
    assert "over 1048576 bytes" in json.loads(rest.partition(b"\r\n\r\n")[2])["error"]


def test_a_body_declared_far_too_large_is_refused_before_it_is_sent(served):
    """Past 64 MiB the body is not read at all: a client that waits for 100-continue never sends it."""
    head = (f"POST /recommend HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {TOKEN}\r\nContent-Length: {1 << 30}\r\nExpect: 100-continue\r\n\r\n").encode()
    answer = _raw_post(served.url, head, b"")
    assert answer.startswith(b"HTTP/1.1 413") and b"connection: close" in answer.lower(), answer[:300]


# ---------------------------------------------------------------- with a feature store: user ids and /events


@pytest.fixture(scope="module")
def with_store(tmp_path_factory, trained_tiny):
    """`bentoml serve` of the tiny model with a real Feast store (SQLite online) filled from the same data."""
    from features import store
    from features.datasets import load_dataset
    from serving.launch import serve

    inter = load_dataset("simulator-tiny")
    cfg = store.StoreConfig(tmp_path_factory.mktemp("events") / "store", online="sqlite")
    store.write_sources(cfg, inter)
    store.apply(cfg)
    store.materialize(cfg)
    env = {"GEMIREC_MODEL_FOLDER": str(trained_tiny), "GEMIREC_FEATURE_STORE": str(cfg.store_dir),
           "GEMIREC_LOG_DIR": str(cfg.store_dir.parent / "logs"), "GEMIREC_API_TOKEN": ""}
    with serve(env) as server:
        yield server, inter


def test_a_pushed_event_changes_that_users_next_recommendation(with_store):
    server, inter = with_store
    doc = httpx.get(f"{server.url}/docs.json").json()
    assert "/events" in doc["paths"] and "422" in doc["paths"]["/events"]["post"]["responses"]
    assert len(doc["components"]["schemas"]["RecommendRequest"]["anyOf"]) == 2  # user_id alone is valid now
    events = inter.events
    user = int(events["user_id"].iloc[0])
    last = int(events.loc[events["user_id"] == user, "event_timestamp"].max().timestamp())
    seen = set(events.loc[events["user_id"] == user, "item_id"])
    fresh = [int(i) for i in events["item_id"].unique() if i not in seen][:3]
    before = httpx.post(f"{server.url}/recommend", json={"user_id": user, "n": 20}, timeout=30).json()
    assert not before["cold_start"]
    body = {"events": [{"user_id": user, "item_id": item, "timestamp": last + 1 + k} for k, item in
                       enumerate(fresh)]}
    first = httpx.post(f"{server.url}/events", json=body, timeout=60)
    assert first.status_code == 200, first.text
    assert (first.json()["accepted"], first.json()["users_updated"], first.json()["rejected"]) == (3, 1, 0)
    again = httpx.post(f"{server.url}/events", json=body, timeout=60).json()
    assert (again["accepted"], again["duplicates"]) == (0, 3)  # idempotent
    after = httpx.post(f"{server.url}/recommend", json={"user_id": user, "n": 20}, timeout=30).json()
    assert [i["item_id"] for i in after["items"]] != [i["item_id"] for i in before["items"]]
    for bad in ({"events": []}, {"events": [{"user_id": -1, "item_id": 1, "timestamp": 0}]},
                {"events": [{"user_id": 1, "item_id": 1}]}, {"events": [{"user_id": 1, "item_id": 1,
                                                                         "timestamp": "yesterday"}]}):
        r = httpx.post(f"{server.url}/events", json=bad, timeout=30)
        assert r.status_code == 422 and r.json()["error"], (bad, r.text)


def test_schemathesis_all_checks_with_a_feature_store(with_store):
    """The same contract with user ids and /events in the document (fewer examples: the second server)."""
    server, _ = with_store
    cmd = [sys.executable, "-m", "schemathesis.cli", "run", f"{server.url}/docs.json", "--checks", "all",
           "--max-examples", "15", "--seed", str(SEED), "--no-color"]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=170)
    out = run.stdout + run.stderr
    assert run.returncode == 0 and "No issues found" in out, out[-6000:]
