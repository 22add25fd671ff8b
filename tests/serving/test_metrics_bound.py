"""/metrics stays bounded whatever paths clients invent (a real `bentoml serve`, the session's service)."""

import uuid

import httpx


def metrics_size(client: httpx.Client, url: str) -> int:
    response = client.get(f"{url}/metrics")
    assert response.status_code == 200
    return len(response.content)


def test_random_paths_do_not_grow_metrics(served):
    with httpx.Client(timeout=30) as client:
        assert client.get(f"{served.url}/no-such-path").status_code == 404  # the shared label exists now
        before = metrics_size(client, served.url)
        for _ in range(500):
            assert client.get(f"{served.url}/{uuid.uuid4().hex}").status_code == 404
        after = metrics_size(client, served.url)
        text = client.get(f"{served.url}/metrics").text
        # the real routes keep their own label and still route (the relabel is for the metrics only)
        assert client.get(f"{served.url}/health").status_code == 200
        assert client.post(f"{served.url}/recommend", json={"history": [1, 2], "n": 3},
                           headers=served.headers).status_code == 200
    assert abs(after - before) / before < 0.01, (before, after)
    assert 'endpoint="/{unmatched}"' in text and "no-such-path" not in text
    assert "gemirec_response_log_errors_total 0.0" in text  # the log's fault counter is exported
