"""Every panel of the dashboard reads right after a single monitor run, as the real Evidently UI serves it.

The UI (``evidently ui``, started on 127.0.0.1 and stopped here) answers each panel's query; what a panel then
displays is worked out the way its frontend does (evidently 0.7.23, assets/static/js): a counter shows
``value ? round(value, 2) : "no value"`` for the last value of each series, a legend fills ``{{label}}`` from
the series' labels.
"""

import itertools
import json
import re
import socket
import urllib.request

import pytest

from monitoring.dashboard import NOT_ENOUGH
from monitoring.distributions import (
    ItemLookup,
    current_tables,
    interest_name,
    load_tables,
    lookup_for,
    reference_from_logs,
)
from monitoring.drift import NOT_RECORDED, check_drift
from monitoring.workspace import WorkspaceConfig, add_snapshot, project, start_ui, stop_ui
from tests.monitoring.conftest import REFERENCE_BLOCKS, code_of

pytestmark = pytest.mark.slow  # two `evidently ui` starts: most of this module's time

LABELS = {"-".join(map(str, code_of(i))): f"topics {2 * i}/{2 * i + 1}" for i in range(12)}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def _legend(template: str, params: dict) -> str:
    return re.sub(r"\{\{([a-zA-Z_0-9]+)?\}\}", lambda m: params.get(m.group(1), m.group(0)), template)


def _counter_text(values: list) -> str:
    last = values[-1] if values else None
    return f"{round(last, 2):g}" if last else "no value"  # the frontend's rule: 0 is falsy too


@pytest.fixture(scope="module")
def shown(stand_in, windows, tmp_path_factory):
    """{window: {panel title: (plot type, [(legend, values)])}} for a workspace holding that window's run only:
    a window without shift (drift share 0, no dead code: the figures that used to read "no value") and a
    shifted one."""
    tmp = tmp_path_factory.mktemp("dashboard")
    plain = stand_in.lookup()
    stand_in.write(tmp / "logs", REFERENCE_BLOCKS, 2000, seed=99)
    reference_dir = reference_from_logs(tmp / "logs", tmp / "reference",
                                        lookup=ItemLookup(plain.popularity_bucket, plain.item_code, LABELS))
    reference, lookup = load_tables(reference_dir), lookup_for(reference_dir)
    out = {}
    for name, folder in (("no shift", windows[0.0][0]), ("shifted", windows[1.5][0])):
        result, snapshot = check_drift(reference, current_tables(folder, lookup=lookup)[0])
        cfg = WorkspaceConfig(path=tmp / name.replace(" ", "_"), port=_free_port())
        add_snapshot(snapshot, cfg, name=f"{name}: {result.verdict}")
        _, proj = project(cfg)
        try:
            url = start_ui(cfg)
            out[name] = {}
            for panel in proj.dashboard.model().panels:
                filters = [{"tags": v.tags, "metadata": v.metadata, "metric": v.metric,
                            "metric_labels": v.metric_labels} for v in panel.values]
                data = _post(f"{url}/api/v2/snapshots/{proj.id}/data_series_batch", {"series_filter": filters})
                assert len(data["sources"]) == 1  # one run, one snapshot
                legends = [v.legend or "" for v in panel.values]
                out[name][panel.title] = (panel.plot_params["plot_type"], [
                    (_legend(legends[s["filter_index"]], s["params"]), s["values"]) for s in data["series"]])
        finally:
            stop_ui(cfg)
    return out


@pytest.mark.parametrize("window", ["no shift", "shifted"])
def test_every_panel_shows_a_value_after_one_run(shown, window):
    panels = shown[window]
    assert len(panels) == 7
    for title, (kind, series) in panels.items():
        assert series, f"{title}: no series at all"
        for legend, values in series:
            assert "nan" not in legend.lower().split(), f"{title}: legend {legend!r}"
            if kind == "counter":
                assert _counter_text(values) != "no value", f"{title} / {legend}: {values}"
            else:
                assert any(v is not None for v in values), f"{title} / {legend}: {values}"


def test_counters_read_the_figures(shown):
    for window, drift_share in (("no shift", "0"), ("shifted", None)):
        counters = {legend: _counter_text(values) for legend, values in shown[window]["Drift share, last run"][1]}
        share = next(text for legend, text in counters.items() if legend.startswith("drift share"))
        assert share == drift_share if drift_share else float(share) >= 0.3, counters
        untested = next(legend for legend in counters if NOT_ENOUGH in legend)
        assert int(counters[untested]) + int(counters["columns tested"]) == 6, counters
    dead = dict((legend, _counter_text(values)) for legend, values in shown["no shift"]["Dead codes, last run"][1])
    assert dead["dead codes (healthy: 0)"] == "0" and int(dead["codes used"]) == 12, dead


def test_health_plots_span_more_than_one_value(shown):
    # a single-point line plot labels its one tick with the value rounded to an integer (0.375 reads "0"):
    # each health plot carries yardsticks, so its axis spans a range from the first run on; on both windows
    titles = ("Drift share over time", "Code-usage entropy", "Top-code concentration")
    for window, title in itertools.product(("no shift", "shifted"), titles):
        values = [v for _, vs in shown[window][title][1] for v in vs if v is not None]
        assert len(values) >= 2 and max(values) > min(values), (title, values)


def test_traffic_legend_names_interests_by_label(shown):
    legends = [legend for legend, _ in shown["shifted"]["Traffic share per interest"][1]]
    readable = {interest_name(code, LABELS) for code in [*LABELS, "u"]}
    assert legends and set(legends) <= readable, legends
    assert "u · user vector" in legends and any("topics" in legend for legend in legends)


def test_drift_scores_are_shown_with_their_thresholds(shown):
    legends = [legend for legend, _ in shown["shifted"]["Drift score per column"][1]]
    assert "interest_code (drifts at 0.05)" in legends and all("{{" not in legend for legend in legends)


def test_a_reference_without_attribution_gives_no_nan_interest(reference_dir, windows):
    # references written before attribution was recorded have no via_code: the traffic metric still needs
    # the column on both sides, and Evidently lists every unique value of both, missing ones as "nan"
    reference, lookup = load_tables(reference_dir), lookup_for(reference_dir)
    reference.items = reference.items.drop(columns=["via_code"])
    _, snapshot = check_drift(reference, current_tables(windows[1.5][0], lookup=lookup)[0])
    traffic = [m for m in snapshot.dict()["metrics"] if m["config"]["type"].endswith(":UniqueValueCount")]
    labels = {str(label) for m in traffic for label in m["value"]["counts"]}
    assert labels and "nan" not in labels and NOT_RECORDED in labels, labels
