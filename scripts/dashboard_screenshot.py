"""Screenshot of the Evidently dashboard after a few monitor runs: docs/dashboard.png.

    python scripts/dashboard_screenshot.py [--out docs/dashboard.png] [--port 8765]

Simulated traffic from a tiny GemiRec (monitoring.scenario; trained once into runs/dashboard_demo) in four
hourly windows, the last two with shifted interests; the `monitor-gemirec` flow runs once per window
(under a temporary Prefect server) and adds a snapshot each; then `evidently ui` serves the workspace on
127.0.0.1 and headless Chromium photographs the project's dashboard. The UI is stopped however this ends.
Needs Chromium (`apt-get install -y chromium`); exits with code 2 without it.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from anywhere
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")  # no telemetry from the temporary server
os.environ.setdefault("DO_NOT_TRACK", "1")  # nor from Evidently

log = logging.getLogger("dashboard_screenshot")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]
WINDOWS = ((0.0, 0), (0.0, 1), (1.5, 2), (1.5, 3))  # (shift, replay seed) per hourly window


def chromium() -> str | None:
    return next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)


def monitor_runs(work: Path, workspace: Path) -> list[dict]:
    """Train (once) and simulate, then one monitor-gemirec flow run per hourly window."""
    from prefect.testing.utilities import prefect_test_harness

    from flows.monitor_flow import monitor_gemirec
    from monitoring.distributions import lookup_for, reference_from_logs
    from monitoring.scenario import ScenarioConfig, prepare, write_traffic

    model = prepare(work)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    reference = work / "reference_window"
    if not (reference / "requests.parquet").exists():
        write_traffic(model, work / "reference_logs", ScenarioConfig(seed=4, n_requests=2000,
                                                                      start=start.isoformat()))
        reference_from_logs(work / "reference_logs", reference, lookup=lookup_for(model / "reference"))
    logs = work / "dashboard_logs"
    shutil.rmtree(logs, ignore_errors=True)
    for hour, (shift, seed) in enumerate(WINDOWS):
        write_traffic(model, logs, ScenarioConfig(shift=shift, seed=seed, n_requests=1000, corrupt=3,
                                                  start=(start + timedelta(hours=hour)).isoformat()))
    runs = []
    with prefect_test_harness(server_startup_timeout=300):
        for hour in range(len(WINDOWS)):
            until = start + timedelta(hours=hour + 1)
            runs.append(monitor_gemirec(logs=str(logs), reference=str(reference), window_hours=1.0,
                                        until=until.isoformat(), workspace=str(workspace), trigger=False,
                                        runs_dir=str(work / "monitor_runs")))
            log.info("window %d: %s", hour, runs[-1])
    return runs


def screenshot(browser: str, url: str, out: Path, size: str = "1400,2600") -> None:
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size={size}",
                        "--hide-scrollbars", "--virtual-time-budget=30000", f"--screenshot={out}", url],
                       check=True, capture_output=True, timeout=180)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/dashboard_screenshot.py")
    parser.add_argument("--out", default=str(ROOT / "docs" / "dashboard.png"))
    parser.add_argument("--work", default=str(ROOT / "runs" / "dashboard_demo"))
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("evidently", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    browser = chromium()
    if browser is None:
        log.error("no Chromium found: apt-get install -y chromium")
        return 2
    from monitoring.workspace import WorkspaceConfig, list_snapshots, project, start_ui, stop_ui

    work = Path(args.work)
    cfg = WorkspaceConfig(path=work / "evidently", port=args.port)
    shutil.rmtree(cfg.path, ignore_errors=True)  # exactly this script's runs on the dashboard
    monitor_runs(work, cfg.path)
    _, proj = project(cfg)
    log.info("%d snapshots in project %s", len(list_snapshots(cfg)), proj.id)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        url = start_ui(cfg)
        screenshot(browser, f"{url}/projects/{proj.id}", out.resolve())
    finally:
        stop_ui(cfg)
    log.info("dashboard screenshot -> %s", out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
