"""Serve this project's deployments from one long-running process (what `gemirec up` starts).

    PREFECT_API_URL=http://127.0.0.1:4200/api python -m flows.serve

Runs execute here, in subprocesses of this process, one at a time: training is CPU-bound and a second
concurrent run would only slow the first.
"""

from __future__ import annotations

from prefect import serve

from flows import monitor_flow
from flows.train_flow import train_gemirec

DEPLOYMENT = "train-gemirec"


def deployments() -> list:
    # monitor-gemirec is served unscheduled here (run it by hand or give it a schedule in the UI/CLI);
    # `python -m flows.monitor_flow --serve --cron ...` serves it on a schedule by itself
    return [
        train_gemirec.to_deployment(
            name=DEPLOYMENT, tags=["gemirec"],
            description="Train GemiRec on the simulator (default) or your events; gate, register, report."),
        monitor_flow.deployment(),
    ]


def main() -> None:
    serve(*deployments(), limit=1)


if __name__ == "__main__":
    main()
