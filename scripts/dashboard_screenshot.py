"""Screenshot of the demo's Evidently dashboard after one monitor run: docs/dashboard.png.

    python scripts/dashboard_screenshot.py [--out docs/dashboard.png] [--port 8765] [--shift 1.5]
    python scripts/dashboard_screenshot.py --workspace runs/evidently --url http://127.0.0.1:8000
        # the demo's own dashboard, as its running UI shows it (nothing started, stopped or changed)

What a user gets from the README's monitoring commands, in a fresh workspace: a tiny GemiRec trained once on
the simulator (monitoring.scenario prepare; kept in --work), one hour of simulated traffic (interests shifted
by --shift; 0 for healthy traffic), one `monitor-gemirec` flow run against the model's training-time
reference (under a temporary Prefect server), then `evidently ui` on 127.0.0.1 and headless Chromium on the
project's dashboard. The UI is stopped however this ends.
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


def chromium() -> str | None:
    return next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)


def monitor_run(work: Path, workspace: Path, shift: float, requests: int) -> dict:
    """Train (once) and simulate an hour of traffic, then one monitor-gemirec flow run on that hour."""
    from prefect.testing.utilities import prefect_test_harness

    from flows.monitor_flow import monitor_gemirec
    from monitoring.scenario import ScenarioConfig, prepare, write_traffic

    model = prepare(work)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    logs = work / "dashboard_logs"
    shutil.rmtree(logs, ignore_errors=True)
    write_traffic(model, logs, ScenarioConfig(shift=shift, n_requests=requests, start=start.isoformat()))
    with prefect_test_harness(server_startup_timeout=300):
        run = monitor_gemirec(logs=str(logs), reference=str(model / "reference"), window_hours=1.0,
                              until=(start + timedelta(hours=1)).isoformat(), workspace=str(workspace),
                              trigger=False, runs_dir=str(work / "monitor_runs"))
    log.info("monitor run: %s", run)
    return run


def screenshot(browser: str, url: str, out: Path, size: str = "1400,2700") -> None:
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size={size}",
                        "--hide-scrollbars", "--virtual-time-budget=30000", f"--screenshot={out}", url],
                       check=True, capture_output=True, timeout=180)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/dashboard_screenshot.py")
    parser.add_argument("--out", default=str(ROOT / "docs" / "dashboard.png"))
    parser.add_argument("--work", default=str(ROOT / "runs" / "dashboard_demo"))
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--shift", type=float, default=1.5, help="interest shift of the traffic (0: none)")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--workspace", default=None,
                        help="photograph this existing workspace (e.g. the demo's runs/evidently) through the "
                             "UI already serving it at --url, instead of making one")
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="with --workspace: the running UI")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("evidently", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    browser = chromium()
    if browser is None:
        log.error("no Chromium found: apt-get install -y chromium")
        return 2
    from monitoring.workspace import WorkspaceConfig, list_snapshots, project, start_ui, stop_ui

    if args.workspace:
        cfg = WorkspaceConfig(path=Path(args.workspace), port=args.port)
        if not list_snapshots(cfg):
            log.error("%s holds no monitor snapshot yet: run the demo (or gemirec monitor) first", cfg.path)
            return 2
    else:
        work = Path(args.work)
        cfg = WorkspaceConfig(path=work / "evidently", port=args.port)
        shutil.rmtree(cfg.path, ignore_errors=True)  # exactly this script's runs on the dashboard
        monitor_run(work, cfg.path, args.shift, args.requests)
    _, proj = project(cfg)
    log.info("%d snapshots in project %s", len(list_snapshots(cfg)), proj.id)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.workspace:
        screenshot(browser, f"{args.url.rstrip('/')}/projects/{proj.id}", out.resolve())
        log.info("dashboard screenshot -> %s", out)
        return 0
    try:
        url = start_ui(cfg)
        screenshot(browser, f"{url}/projects/{proj.id}", out.resolve())
    finally:
        stop_ui(cfg)
    log.info("dashboard screenshot -> %s", out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
