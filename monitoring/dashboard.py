"""What the Evidently dashboard of project ``gemirec`` shows: its panels, and the figures each run adds for them.

Stock ``evidently ui`` (0.7) plots series of metric values by metric type and labels, one point per snapshot,
and knows no custom metric class. So each monitor run puts its headline figures into one extra row of the
current dataset (columns ``health_*``, read by MeanValue; see ``figures_row``), and the panels below select
them by column. Three habits of the UI's panels shape these figures (evidently/ui/service/assets, 0.7.23):

- a counter shows ``value ? round(value, 2) : "no value"``: a true 0 (no drift, no dead code) would read
  "no value". Counters therefore read their own ``*_counter`` copy of a figure, raised by ``COUNTER_FLOOR``,
  which still prints as 0 at two decimals; the line plots read the exact figure.
- a line plot of one point has a degenerate y axis whose single tick is the value rounded to an integer
  (a top-3 share of 0.375 reads "0"). Every health plot therefore draws the figure beside yardsticks (the
  drift threshold; the reference's value and even use of every code), so the axis spans a range from the
  first run on.
- a legend ``{{label}}`` is filled from the series' labels: for the traffic shares that is the category
  itself, which is why ``monitoring.distributions`` names interests "code · readable label".
"""

from __future__ import annotations

import math

import pandas as pd

# Added to figures that counters show: > 0, so the UI prints it, and 0.00 at its two decimals.
COUNTER_FLOOR = 1e-9
PREFIX = "health_"
NOT_ENOUGH = "not enough data yet"
COLUMNS = ("interest_code", "top_code", "item_code", "popularity_bucket", "history_len", "interest_prob")


def figures_row(health, reference_health, drift_share: float, threshold: float, n_tested: int,
                n_columns: int, top_n: int) -> pd.DataFrame:
    """One row of the run's figures (``health`` and ``reference_health``: monitoring.drift.Health). The
    reference frame gets the same columns (the datasets share one definition) with its own health."""
    n_known = max(health.codes_used + len(health.dead_codes), 2)  # dead codes are the known ones unused
    figures = {
        "drift_share": drift_share, "drift_threshold": threshold,
        "drift_share_counter": drift_share + COUNTER_FLOOR,
        "columns_tested_counter": n_tested + COUNTER_FLOOR,
        "columns_untested_counter": n_columns - n_tested + COUNTER_FLOOR,
        "dead_codes_counter": len(health.dead_codes) + COUNTER_FLOOR,
        "codes_used_counter": health.codes_used + COUNTER_FLOOR,
        # even use of every known code: the most entropy and the least concentration there can be
        "code_entropy": health.code_entropy, "reference_code_entropy": reference_health.code_entropy,
        "even_code_entropy": math.log2(n_known),
        "top_share": health.top_share, "reference_top_share": reference_health.top_share,
        "even_top_share": min(top_n, n_known) / n_known,
    }
    return pd.DataFrame({f"{PREFIX}{name}": [float(value)] for name, value in figures.items()})


def panels(threshold: float = 0.3, top_n: int = 3) -> list:
    """The dashboard, declared once so that every workspace shows the same panels."""
    from evidently.sdk.models import PanelMetric
    from evidently.sdk.panels import bar_plot_panel, counter_panel, line_plot_panel

    def figure(name: str, legend: str) -> PanelMetric:
        return PanelMetric(legend=legend, metric="MeanValue", metric_labels={"column": PREFIX + name})

    def drift(column: str) -> PanelMetric:
        # the series' own labels fill the legend: each column shows the threshold it is judged by
        return PanelMetric(legend="{{column}} (drifts at {{threshold}})", metric="ValueDrift",
                           metric_labels={"column": column})

    return [
        counter_panel("Drift share, last run", [
            figure("drift_share_counter", f"drift share (alarm at {threshold:g} or more)"),
            figure("columns_tested_counter", "columns tested"),
            figure("columns_untested_counter", f"columns left out: {NOT_ENOUGH}")],
            "share of the tested columns whose distance from the reference reached its threshold", size="half"),
        counter_panel("Dead codes, last run", [
            figure("dead_codes_counter", "dead codes (healthy: 0)"),
            figure("codes_used_counter", "codes used")],
            "known interest codes the model never generated in the window", size="half"),
        line_plot_panel("Drift share over time", [
            figure("drift_share", "drift share"), figure("drift_threshold", "alarm threshold")],
            "one point per monitor run; at or above the threshold the run says 'drift' (and may retrain)"),
        line_plot_panel("Drift score per column", [drift(c) for c in COLUMNS],
                        "Jensen-Shannon distance (codes, buckets), normed Wasserstein (numbers); a column "
                        f"without a point had {NOT_ENOUGH} in that run"),
        line_plot_panel("Code-usage entropy", [
            figure("code_entropy", "window"), figure("reference_code_entropy", "reference"),
            figure("even_code_entropy", "every code used evenly")],
            "bits, of the generated-interest codes; far below the reference: interests collapse", size="half"),
        line_plot_panel("Top-code concentration", [
            figure("top_share", "window"), figure("reference_top_share", "reference"),
            figure("even_top_share", "every code used evenly")],
            f"share of generated interests on the {top_n} most used codes; rising: interests collapse",
            size="half"),
        bar_plot_panel("Traffic share per interest", [
            PanelMetric(legend="{{label}}", metric="UniqueValueCount",
                        metric_labels={"column": "via_code", "value_type": "share"})],
            "returned items by the interest that retrieved them (code · label; u: the plain user vector)",
            stacked=True),
    ]
