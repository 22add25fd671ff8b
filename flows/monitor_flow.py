"""The `monitor-gemirec` flow: response logs of a time window → drift check against the reference →
Evidently snapshot → markdown artifact → a `train-gemirec` run when the drift share crosses the threshold.

The flow only wires; each task is a few lines around one function of monitoring/ and passes paths and small
values (the window's tables and the Evidently snapshot go through files in the run folder).

    python -m flows.monitor_flow --serve --cron "*/30 * * * *"   # serve the deployment on a schedule
    prefect deployment run monitor-gemirec/monitor-gemirec -p window_hours=1
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
from pathlib import Path

from prefect import flow, get_run_logger, runtime, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

DEPLOYMENT = "monitor-gemirec"
TRAIN_DEPLOYMENT = "train-gemirec/train-gemirec"
DEFAULT_LOGS = "runs/serving/logs"
DEFAULT_RUNS = "runs/monitor"
DEFAULT_WORKSPACE = "runs/evidently"



def _io_error(task, task_run, state) -> bool:
    """Retry a transient read/write failure only; a missing folder or bad data fails at once."""
    exc = state.result(raise_on_failure=False)
    return isinstance(exc, OSError) and not isinstance(exc, FileNotFoundError)


io_task = task(retries=2, retry_delay_seconds=2, retry_condition_fn=_io_error, cache_policy=NO_CACHE)


@task(cache_policy=NO_CACHE)
def resolve_reference(reference: str | None, bentoml_home: str | None, registry_name: str) -> str:
    """The reference folder: as given, else the one the production model carries (written at training)."""
    if reference:
        return reference
    from serving import registry

    reg = registry.Registry(Path(bentoml_home) if bentoml_home else None, registry_name)
    version = registry.production(reg)
    if version is None:
        raise FileNotFoundError(f"no reference given and no production model in registry {registry_name}")
    return str(version.path / "reference")


@io_task
def read_window(logs: str, since: str | None, until: str | None, reference: str, out: str) -> dict:
    """Parse the window's responses (corrupt lines skipped and counted) into tidy tables under ``out``."""
    from monitoring.distributions import current_tables, lookup_for

    tables, summary = current_tables(logs, since and datetime.fromisoformat(since),
                                      until and datetime.fromisoformat(until), lookup_for(reference))
    tables.save(out)
    logger = get_run_logger()
    (logger.warning if summary["n_corrupt"] else logger.info)(
        "%s: %d responses in the window, %d corrupt lines skipped%s", logs, summary["n_requests"],
        summary["n_corrupt"], "".join(f"\n  {e}" for e in summary["corrupt_examples"]))
    return {"path": out, **summary}


@task(cache_policy=NO_CACHE)
def check(reference: str, current: str, out: str, drift_share: float, timestamp: str, tags: list[str]
          ) -> dict:
    """Drift and health; the result (JSON) and the Evidently snapshot land in ``out``."""
    import json
    from dataclasses import replace

    from monitoring.distributions import load_tables
    from monitoring.drift import DriftConfig, check_drift
    from monitoring.workspace import save_snapshot

    cfg = replace(DriftConfig(), drift_share=drift_share)
    result, snapshot = check_drift(load_tables(reference), load_tables(current), cfg,
                                   timestamp=datetime.fromisoformat(timestamp), tags=tags)
    Path(out).mkdir(parents=True, exist_ok=True)
    (Path(out) / "drift.json").write_text(json.dumps(result.to_dict(), indent=1))
    snapshot_path = str(save_snapshot(snapshot, Path(out) / "snapshot.json")) if snapshot else None
    get_run_logger().info("verdict %s: drift share %.2f (%d of %d columns)", result.verdict,
                          result.drift_share, result.n_drifted, result.n_tested)
    return {"verdict": result.verdict, "drift_share": result.drift_share, "n_requests": result.n_requests,
            "result": str(Path(out) / "drift.json"), "snapshot": snapshot_path}


@io_task
def add_snapshot(snapshot: str, workspace: str, name: str) -> str:
    from monitoring.workspace import WorkspaceConfig
    from monitoring.workspace import add_snapshot as add

    return add(snapshot, WorkspaceConfig(path=Path(workspace)), name=name)


@task(cache_policy=NO_CACHE)
def publish(result: str, window: dict, snapshot_id: str | None, triggered: str | None) -> str:
    import json

    from monitoring.drift import DriftResult

    extra = {"window": f"{window['since'] or 'start'} → {window['until']}",
             "log lines": f"{window['n_lines']} read, {window['n_corrupt']} corrupt (skipped)",
             "Evidently snapshot": snapshot_id or "none (insufficient data)",
             "retraining": triggered or "not triggered"}
    markdown = DriftResult.from_dict(json.loads(Path(result).read_text())).to_markdown(extra)
    create_markdown_artifact(markdown, key="monitor-gemirec-drift", description="interest drift and health")
    return markdown


@task(cache_policy=NO_CACHE)
def trigger_training(deployment: str, parameters: dict) -> str | None:
    """Start a training run and return at once (timeout=0); a missing deployment is a warning: the
    monitor's own result must not be lost because retraining is not set up here."""
    from prefect.deployments import run_deployment
    from prefect.exceptions import ObjectNotFound

    logger = get_run_logger()
    try:
        run = run_deployment(name=deployment, parameters=parameters, timeout=0,
                             tags=["triggered-by-monitor-gemirec"])
    except ObjectNotFound:
        logger.warning("drift crossed the threshold but deployment %s does not exist; no retraining started",
                       deployment)
        return None
    logger.info("started %s run %s (%s)", deployment, run.name, run.id)
    return str(run.id)


@flow(name="monitor-gemirec", log_prints=False)
def monitor_gemirec(
    logs: str = DEFAULT_LOGS,
    reference: str | None = None,
    window_hours: float | None = 24.0,
    until: str | None = None,
    drift_threshold: float = 0.3,
    trigger: bool = True,
    train_deployment: str = TRAIN_DEPLOYMENT,
    train_parameters: dict | None = None,
    workspace: str = DEFAULT_WORKSPACE,
    runs_dir: str = DEFAULT_RUNS,
    bentoml_home: str | None = None,
    registry_name: str = "gemirec-simulator",
) -> dict:
    """Compare the last `window_hours` of response logs (all of them if None) up to `until` (default now)
    with the reference (a folder; default: the production model's training-time reference). A drift share
    at or above `drift_threshold` starts `train_deployment` when `trigger` is on."""
    end = datetime.fromisoformat(until) if until else datetime.now(UTC)
    end = end if end.tzinfo else end.replace(tzinfo=UTC)
    start = end - timedelta(hours=window_hours) if window_hours else None
    run_dir = Path(runs_dir) / f"{runtime.flow_run.name or 'local'}-{str(runtime.flow_run.id)[:8]}"

    ref = resolve_reference(reference, bentoml_home, registry_name)
    window = read_window(logs, start and start.isoformat(), end.isoformat(), ref, str(run_dir / "window"))
    checked = check(ref, window["path"], str(run_dir), drift_threshold, end.isoformat(), ["monitor-gemirec"])
    snapshot_id = add_snapshot(checked["snapshot"], workspace, f"{end:%Y-%m-%d %H:%M} {checked['verdict']}") \
        if checked["snapshot"] else None
    triggered = None
    if trigger and checked["verdict"] == "drift":  # the drift share reached drift_threshold
        triggered = trigger_training(train_deployment, train_parameters or {})
    publish(checked["result"], {**window, "since": start and start.isoformat(), "until": end.isoformat()},
            snapshot_id, triggered)
    return {"verdict": checked["verdict"], "drift_share": checked["drift_share"],
            "n_requests": checked["n_requests"], "n_corrupt": window["n_corrupt"], "snapshot": snapshot_id,
            "triggered": triggered, "run_dir": str(run_dir)}


def deployment(cron: str | None = None, interval_minutes: float | None = None, **parameters):
    """The `monitor-gemirec` deployment, on a cron schedule or every `interval_minutes` (neither: manual)."""
    return monitor_gemirec.to_deployment(
        name=DEPLOYMENT, tags=["gemirec", "monitoring"], cron=cron,
        interval=timedelta(minutes=interval_minutes) if interval_minutes else None, parameters=parameters,
        description="Interest-code drift of the serving logs vs the reference; retrains past the threshold.")


def main(argv: list[str] | None = None) -> None:
    from prefect import serve

    parser = argparse.ArgumentParser(prog="python -m flows.monitor_flow")
    parser.add_argument("--serve", action="store_true", help="serve the deployment (else: one run now)")
    parser.add_argument("--cron", default=None)
    parser.add_argument("--interval-minutes", type=float, default=None)
    parser.add_argument("--logs", default=DEFAULT_LOGS)
    parser.add_argument("--reference", default=None)
    parser.add_argument("--window-hours", type=float, default=24.0)
    parser.add_argument("--no-trigger", action="store_true")
    args = parser.parse_args(argv)
    params = {"logs": args.logs, "reference": args.reference, "window_hours": args.window_hours,
              "trigger": not args.no_trigger}
    if args.serve:
        serve(deployment(args.cron, args.interval_minutes, **params))
    else:
        monitor_gemirec(**params)


if __name__ == "__main__":
    main()
