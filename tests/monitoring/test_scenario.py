"""The scenario's replay against a running service (--url), with a stand-in HTTP endpoint."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from monitoring.scenario import ScenarioConfig, replay_histories, replay_to_service

CFG = ScenarioConfig(n_train_users=0, blocks_per_seed=1, n_requests=6, n=7)


def test_replay_posts_histories_and_counts_failures():
    bodies = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's naming)
            bodies.append((self.path, json.loads(self.rfile.read(int(self.headers["Content-Length"])))))
            self.send_response(200 if len(bodies) % 3 else 500)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        result = replay_to_service(f"http://127.0.0.1:{server.server_address[1]}", CFG, timeout_s=5)
    finally:
        server.shutdown()
        server.server_close()
    assert result == {"ok": 4, "failed": 2}
    assert all(path == "/recommend" and body["n"] == 7 and body["history"] for path, body in bodies)
    assert [body["history"] for _, body in bodies] == replay_histories(CFG)


def test_a_missing_service_is_counted_not_raised():
    assert replay_to_service("http://127.0.0.1:9", CFG, timeout_s=1) == {"ok": 0, "failed": 6}


def test_seeds_replay_different_users_and_shift_changes_them():
    base = replay_histories(CFG)
    assert replay_histories(ScenarioConfig(**{**vars(CFG), "seed": 1})) != base
    assert replay_histories(ScenarioConfig(**{**vars(CFG), "shift": 1.5})) != base
    assert all(len(h) >= 1 for h in base)
