"""The Evidently workspace: project ``gemirec``, its dashboard, one snapshot per monitor run, and the UI.

    python -m monitoring.workspace serve --workspace runs/evidently     # http://127.0.0.1:8000, Ctrl-C stops
    python -m monitoring.workspace start / stop                        # in the background, with a pid file

The dashboard is declared in code (monitoring/dashboard.py) and written when the project is created, so every
workspace shows the same panels; they read values by metric type and labels from all snapshots of the
project, which is why the drift check puts its figures into stock metrics.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

from local_stack import processes
from local_stack.processes import http_status
from monitoring.dashboard import panels

log = logging.getLogger(__name__)
UI_MARKERS = ("evidently", " ui")  # how the UI's command line identifies it

os.environ.setdefault("DO_NOT_TRACK", "1")  # Evidently's usage telemetry: off unless the user opts in


@dataclass(frozen=True)
class WorkspaceConfig:
    path: Path = Path("runs/evidently")
    project: str = "gemirec"
    host: str = "127.0.0.1"  # never bound to other interfaces: the UI has no authentication
    port: int = 8000
    start_timeout_s: float = 120.0  # the first start on a busy 2-core machine takes a while

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.path / "ui.pid"


def open_workspace(cfg: WorkspaceConfig = WorkspaceConfig()):
    from evidently.ui.workspace import Workspace

    cfg.path.mkdir(parents=True, exist_ok=True)
    return Workspace(str(cfg.path))


def project(cfg: WorkspaceConfig = WorkspaceConfig()):
    """(workspace, project ``cfg.project``), creating the project and its dashboard on first use."""
    ws = open_workspace(cfg)
    found = [p for p in ws.search_project(cfg.project) if p.name == cfg.project]
    if found:
        proj = found[0]
        if _layout(proj.dashboard.model().panels) != _layout(panels()):
            # a workspace made by an older version keeps its snapshots but gets the declared panels
            proj.dashboard.clear_dashboard()
            _add_panels(proj)
            log.info("dashboard of %s (%s) updated to the declared panels", cfg.project, proj.id)
        return ws, proj
    proj = ws.create_project(cfg.project, description="GemiRec interest-code drift and interest health")
    _add_panels(proj)
    log.info("created Evidently project %s (%s) in %s", cfg.project, proj.id, cfg.path)
    return ws, proj


def _add_panels(proj) -> None:
    for panel in panels():
        proj.dashboard.add_panel(panel)


def _layout(declared: list) -> list:
    """What a panel shows, without the ids each save draws afresh."""
    return [(p.title, p.subtitle, p.size, p.plot_params, [v.dict() for v in p.values]) for p in declared]


def add_snapshot(snapshot, cfg: WorkspaceConfig = WorkspaceConfig(), name: str | None = None) -> str:
    """Add one monitor run's snapshot: an Evidently Snapshot, or a path written by ``save_snapshot``."""
    from evidently.core.report import Snapshot

    if isinstance(snapshot, str | Path):
        snapshot = Snapshot.loads(Path(snapshot).read_text())
    ws, proj = project(cfg)
    ref = ws.add_run(proj.id, snapshot, include_data=False, name=name)
    log.info("snapshot %s added to %s/%s", ref.id, cfg.path, cfg.project)
    return str(ref.id)


def save_snapshot(snapshot, path: str | Path) -> Path:
    """The full serialisation (``Snapshot.dumps``; ``save_json`` writes a summary that cannot be loaded)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(snapshot.dumps())
    return path


def list_snapshots(cfg: WorkspaceConfig = WorkspaceConfig()) -> list[str]:
    ws, proj = project(cfg)
    return [str(s) for s in ws.list_runs(proj.id)]


def _ui_pid(cfg: WorkspaceConfig) -> int | None:
    return processes.running_pid(cfg.pid_file, *UI_MARKERS)


def start_ui(cfg: WorkspaceConfig = WorkspaceConfig()) -> str:
    """Start ``evidently ui`` on the workspace in the background (its own process group); return its url."""
    if _ui_pid(cfg):
        return cfg.url
    if http_status(cfg.url) is not None:
        raise RuntimeError(f"{cfg.url} is taken by another server; stop it or choose another port")
    project(cfg)  # the dashboard exists before anyone opens it
    command = [str(Path(sys.executable).with_name("evidently")), "ui", "--workspace", str(cfg.path.resolve()),
               "--host", cfg.host, "--port", str(cfg.port)]
    proc = processes.start(command, cfg.pid_file, cfg.path / "ui.log",
                           env={**os.environ, "DO_NOT_TRACK": "1"})
    try:
        processes.wait_ready(cfg.url, proc, "evidently ui", cfg.start_timeout_s,
                             where=lambda: f"; see {cfg.path / 'ui.log'}")
    except processes.NotReady:
        stop_ui(cfg)
        raise
    log.info("evidently ui (pid %d) serving %s at %s", proc.pid, cfg.path, cfg.url)
    return cfg.url


def stop_ui(cfg: WorkspaceConfig = WorkspaceConfig(), timeout: float = 15.0) -> bool:
    """Stop the UI this module started (SIGTERM to its process group, SIGKILL if it lingers)."""
    return processes.stop(cfg.pid_file, *UI_MARKERS, timeout=timeout) is not None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m monitoring.workspace")
    parser.add_argument("command", choices=["serve", "start", "stop"])
    parser.add_argument("--workspace", default=str(WorkspaceConfig.path))
    parser.add_argument("--port", type=int, default=WorkspaceConfig.port)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    cfg = WorkspaceConfig(path=Path(args.workspace), port=args.port)
    if args.command == "start":
        start_ui(cfg)
    elif args.command == "stop":
        log.info("stopped" if stop_ui(cfg) else "no UI of ours was running")
    else:
        start_ui(cfg)
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass
        finally:
            stop_ui(cfg)


if __name__ == "__main__":
    main()
