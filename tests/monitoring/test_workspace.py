"""The Evidently workspace: one project, its dashboard, one snapshot per monitor run."""

from monitoring.workspace import (
    WorkspaceConfig,
    add_snapshot,
    list_snapshots,
    project,
    save_snapshot,
    stop_ui,
)


def test_each_run_adds_a_snapshot_to_one_project(checks, tmp_path):
    cfg = WorkspaceConfig(path=tmp_path / "ws")
    for hour, (_, snapshot) in enumerate([checks[0.0][0], checks[0.0][1], checks[1.5][0]]):
        path = save_snapshot(snapshot, tmp_path / f"run{hour}" / "snapshot.json")
        add_snapshot(path if hour % 2 else snapshot, cfg, name=f"run {hour}")  # a path or the object
    assert len(list_snapshots(cfg)) == 3
    ws, proj = project(cfg)
    assert [p.name for p in ws.list_projects()] == ["gemirec"]  # found again, not created twice
    titles = {p.title for p in proj.dashboard.model().panels}
    assert {"Drift share over time", "Code-usage entropy", "Traffic share per interest"} <= titles
    assert not stop_ui(cfg)  # nothing of ours running: nothing stopped
