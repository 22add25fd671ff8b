"""Drift-monitoring benchmark: verdicts on simulated traffic from a real tiny GemiRec, and monitor speed.

    python -m benchmarks.drift_bench            # writes benchmarks/results/drift.md

1. A tiny GemiRec is trained on the simulator (no shift) and writes its training-time reference
   (monitoring.reference: 300 validation users). A second reference is a healthy log window: 4,000
   responses to fresh users.
2. Five replay seeds (disjoint blocks of fresh users, 2,000 responses each) without shift and with the
   simulator's interest shift (``SimulatorConfig.shift``) are checked against both references.
3. 100k logged responses (the model's answers to 2,000 users, replayed 50 times with new ids and times,
   plus corrupt lines) go through the `monitor-gemirec` flow in a fresh process under a temporary Prefect
   server; the flow's wall time (monitoring imports included, server start excluded) is the figure.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
WORK = Path("runs/drift_bench")
SHIFT = 1.5
SEEDS = range(5)
log = logging.getLogger("benchmarks.drift_bench")


def traffic(model: Path, folder: Path, shift: float, seed: int, n: int) -> Path:
    from monitoring.scenario import ScenarioConfig, write_traffic

    if not folder.exists():  # cached: the same model, seed and shift give the same responses
        write_traffic(model, folder, ScenarioConfig(shift=shift, seed=seed, n_requests=n,
                                                    start="2025-01-01T00:00:00+00:00"))
    return folder


def verdict_rows(model: Path) -> list[dict]:
    from monitoring.distributions import current_tables, load_tables, lookup_for, reference_from_logs

    training_ref = model / "reference"
    lookup = lookup_for(training_ref)
    window_ref = WORK / "reference_window"
    if not (window_ref / "requests.parquet").exists():
        reference_from_logs(traffic(model, WORK / "logs" / "reference", 0.0, len(SEEDS), 4000), window_ref,
                            lookup=lookup)
    references = {"training (300 val. users)": load_tables(training_ref),
                  "log window (4,000 responses)": load_tables(window_ref)}
    from monitoring.drift import check_drift

    rows = []
    for shift in (0.0, SHIFT):
        for seed in SEEDS:
            folder = traffic(model, WORK / "logs" / f"shift{shift}-seed{seed}", shift, seed, 2000)
            current, _ = current_tables(folder, lookup=lookup)
            for name, reference in references.items():
                result, _ = check_drift(reference, current)
                rows.append({"shift": shift, "seed": seed, "reference": name, "verdict": result.verdict,
                             "drift_share": result.drift_share,
                             "scores": {c.column: (c.score, c.status, c.drifted) for c in result.columns},
                             "entropy": result.health.code_entropy, "top_share": result.health.top_share})
            log.info("shift %.1f seed %d: %s", shift, seed, [r["verdict"] for r in rows[-2:]])
    return rows


def big_window(source: Path, out: Path, copies: int = 50, corrupt: int = 20) -> Path:
    """The source window's responses replayed ``copies`` times with new ids and times, plus corrupt lines."""
    from monitoring.logs import LogWriter

    if out.exists():
        return out
    lines = [json.loads(line) for f in sorted(source.glob("*.jsonl")) for line in f.open() if line.strip()]
    start = datetime(2025, 1, 2, tzinfo=UTC)
    step = timedelta(hours=24) / (copies * len(lines))
    with LogWriter(out, max_lines=20_000) as writer:
        for i in range(copies * len(lines)):
            record = dict(lines[i % len(lines)], ts=(start + i * step).isoformat(), request_id=f"b{i}")
            writer.write(record)
            if i % (copies * len(lines) // corrupt) == 0:
                writer.write_raw('{"ts": "2025-01-02T00:00:00+00:00", "items": [1,')
    return out


def time_flow(logs: str, reference: str, workspace: str) -> dict:
    """Run in a fresh process: one monitor-gemirec run over ``logs``, timed from call to return."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")  # the temporary server: no telemetry
    from prefect.testing.utilities import prefect_test_harness

    from flows.monitor_flow import monitor_gemirec

    with prefect_test_harness(server_startup_timeout=300):
        began, cpu = time.perf_counter(), time.process_time()
        out = monitor_gemirec(logs=logs, reference=reference, window_hours=None,
                              until="2025-01-03T00:00:00+00:00", workspace=workspace,
                              runs_dir=str(WORK / "monitor_runs"), trigger=False)
        out["flow_seconds"] = time.perf_counter() - began
        out["flow_cpu_seconds"] = time.process_time() - cpu  # this process only (the server is another)
    return out


def markdown(rows: list[dict], perf: dict) -> str:
    refs = list(dict.fromkeys(r["reference"] for r in rows))
    lines = ["# Drift monitoring: verdicts and speed", "",
             f"Generated by `python -m benchmarks.drift_bench` on {datetime.now(UTC):%Y-%m-%d} "
             f"({platform.machine()}, {os.cpu_count()} CPUs; 1-min load average {perf['load']:.1f} from a "
             "concurrent benchmark campaign, this run at nice 19, one thread per library).", "",
             "Model: GemiRec, `tiny` preset, trained on the simulator (3,000 users, seed 0, no shift). "
             f"Traffic: 2,000 responses per seed from fresh simulated users; shift {SHIFT} tilts the topic "
             "prior (`SimulatorConfig.shift`). Thresholds are `monitoring.drift.DEFAULT_COLUMNS`; verdict "
             "'drift' at a drift share of 0.3 or more of the tested columns.", "", "## Verdicts", "",
             "| reference | no shift: verdicts | shift: verdicts | no shift: drift share "
             "| shift: drift share |",
             "|---|---|---|---|---|"]
    for ref in refs:
        cells = []
        for shift in (0.0, SHIFT):
            sel = [r for r in rows if r["reference"] == ref and r["shift"] == shift]
            want = "no drift" if shift == 0 else "drift"
            cells.append(f"{sum(r['verdict'] == want for r in sel)}/{len(sel)} {want}")
        for shift in (0.0, SHIFT):
            sel = [r["drift_share"] for r in rows if r["reference"] == ref and r["shift"] == shift]
            cells.append(f"{min(sel):.2f} – {max(sel):.2f}")
        lines.append(f"| {ref} | " + " | ".join(cells) + " |")
    columns = list(rows[0]["scores"])
    lines += ["", "## Scores per column (min – max over 5 seeds; thresholds in the last row)", "",
              "| reference | shift | " + " | ".join(columns) + " |", "|---|---|" + "---|" * len(columns)]
    from monitoring.drift import DEFAULT_COLUMNS

    threshold = {c.name: c.threshold for c in DEFAULT_COLUMNS}
    for ref in refs:
        for shift in (0.0, SHIFT):
            sel = [r for r in rows if r["reference"] == ref and r["shift"] == shift]
            cells = []
            for column in columns:
                scores = [r["scores"][column][0] for r in sel if r["scores"][column][0] is not None]
                cells.append(f"{min(scores):.3f} – {max(scores):.3f}" if scores
                             else sel[0]["scores"][column][1])
            lines.append(f"| {ref} | {shift} | " + " | ".join(cells) + " |")
    lines.append("| threshold | | " + " | ".join(f"{threshold[c]:g}" for c in columns) + " |")
    lines += ["", "'insufficient': the chance distance at these sample sizes reaches the threshold (see "
              "`monitoring/drift.py`), so the column is left out of the drift share.", "",
              "## Speed: the monitor-gemirec flow over 100k logged responses", "",
              f"- responses in the window: {perf['n_requests']:,} ({perf['n_corrupt']} corrupt lines skipped "
              "and counted)",
              f"- **flow wall time: {perf['flow_seconds']:.1f} s** (call to return: reading and validating "
              "the logs, tidy tables, Evidently report, snapshot into the workspace, markdown artifact; the "
              "monitoring imports are cold, the temporary Prefect server's start is not counted)",
              f"- CPU time of the flow's process during the run: {perf['flow_cpu_seconds']:.1f} s (the "
              "figure to compare on an idle machine; the Prefect server is a separate process)",
              f"- verdict: {perf['verdict']} (drift share {perf['drift_share']:.2f})",
              "- whole process including Prefect import and server start: "
              f"{perf['process_seconds']:.1f} s", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.drift_bench")
    parser.add_argument("--time-flow", nargs=3, metavar=("LOGS", "REFERENCE", "WORKSPACE"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("evidently", "httpx", "prefect"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if args.time_flow:
        sys.stdout.write(json.dumps(time_flow(*args.time_flow), default=str) + "\n")
        return
    from monitoring.scenario import prepare

    model = prepare(WORK)
    rows = verdict_rows(model)
    big = big_window(WORK / "logs" / "shift0.0-seed0", WORK / "logs" / "big100k")
    began = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "benchmarks.drift_bench", "--time-flow", str(big),
                           str(WORK / "reference_window"), str(WORK / "evidently")],
                          capture_output=True, text=True, check=True)
    perf = json.loads(proc.stdout.strip().splitlines()[-1])
    perf["process_seconds"] = time.perf_counter() - began
    perf["load"] = os.getloadavg()[0]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "drift.md").write_text(markdown(rows, perf))
    log.info("flow over %d responses: %.1f s; wrote %s", perf["n_requests"], perf["flow_seconds"],
             RESULTS / "drift.md")


if __name__ == "__main__":
    main()
