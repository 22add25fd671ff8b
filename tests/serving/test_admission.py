"""Admission on a real `bentoml serve`: past GEMIREC_MAX_CONCURRENCY a request is refused at once (429),
and a trickled body holds its slot only until GEMIREC_TIMEOUT_S (504), not 30 s."""

import socket
import time
from urllib.parse import urlparse

import httpx
import pytest

from serving.launch import serve


@pytest.fixture(scope="module")
def strict(tmp_path_factory, tiny_model_folder):
    logs = tmp_path_factory.mktemp("admission-logs")
    env = {"GEMIREC_MODEL_FOLDER": str(tiny_model_folder), "GEMIREC_LOG_DIR": str(logs),
           "GEMIREC_MAX_CONCURRENCY": "1", "GEMIREC_TIMEOUT_S": "3"}
    with serve(env) as server:
        yield server


def trickle(url: str) -> socket.socket:
    """A POST that declares 100 bytes of body and sends 6: it occupies a slot while it 'sends'."""
    where = urlparse(url)
    sock = socket.create_connection((where.hostname, where.port), timeout=30)
    sock.sendall(b"POST /recommend HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 100\r\n\r\n{\"hist")
    return sock


def test_a_trickled_body_is_cut_off_and_overload_is_refused_at_once(strict):
    body = {"history": [1, 2, 3], "n": 5}
    assert httpx.post(f"{strict.url}/recommend", json=body, timeout=30).status_code == 200
    sock = trickle(strict.url)
    started = time.monotonic()
    try:
        time.sleep(0.5)  # the trickle holds the only slot now
        refused = httpx.post(f"{strict.url}/recommend", json=body, timeout=30)
        assert refused.status_code == 429 and refused.elapsed.total_seconds() < 2
        assert httpx.get(f"{strict.url}/health", timeout=30).status_code == 200  # probes never refused
        answer = sock.recv(4096)
        held = time.monotonic() - started
    finally:
        sock.close()
    assert answer.startswith(b"HTTP/1.1 504") and 2.5 < held < 10, (answer[:40], held)
    assert httpx.post(f"{strict.url}/recommend", json=body, timeout=30).status_code == 200  # slot freed
