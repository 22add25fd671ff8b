"""Drift of the interest-code distributions (Evidently 0.7) and interest health.

Methods, and why:
- Interest codes, item codes and top codes are categoricals with up to M_c^C values (16 to a few hundred),
  many of them rare. Jensen–Shannon distance on the code histograms suits them: it is bounded in [0, 1],
  symmetric, and stays finite when a code occurs on one side only (a new or dead code), where PSI and KL
  need an epsilon floor that then dominates the score; chi-square / Z tests would flag any tiny shift once
  the window holds 100k responses, because their p-values shrink with sample size while JS measures size.
- Its weakness is a positive bias on small samples: two samples of one distribution with k categories are
  about sqrt(χ²_{k-1} / (8 n_eff)) apart (1/n_eff = 1/n_ref + 1/n_cur). So a column is only tested when the
  (1 − alpha) quantile of that chance distance is below the threshold; otherwise it is "insufficient" and
  left out of the drift share instead of raising false alarms. Items of one response are not independent
  (those retrieved by one interest tend to share its code), so their n counts at most ``rows_per_request``
  per response (on the scenario the observed chance distance matches about 10 to 25 independent rows).
- History length and interest probability are numeric: normed Wasserstein distance (W1 / std of the
  reference) measures the size of a shift in units of the reference's spread, again independent of sample
  size; small samples get the same sufficiency rule, with the chance distance from a permutation estimate.

The scores come from Evidently's stat-test registry (what its ValueDrift metric runs) and are recorded in one
Evidently Report per monitor run. Evidently compares one dataset pair per snapshot, so the three tidy tables
are put side by side, each padded with missing values to the longest one (the items table): the drift tests
are per column and drop missing values, so rows of different tables never meet, and traffic shares
(UniqueValueCount divides by all rows) stay exact because the items column is the unpadded one. The drift
share and health figures ride along in one extra row read by MeanValue, so that stock ``evidently ui``
plots them as stable series without any custom metric class (monitoring/dashboard.py says which).
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from monitoring.dashboard import PREFIX, figures_row
from monitoring.distributions import UNKNOWN, Tables

log = logging.getLogger(__name__)

DRIFT, NO_DRIFT, INSUFFICIENT = "drift", "no drift", "insufficient data"
NOT_RECORDED = "not recorded in the reference"  # traffic of a reference without attribution


@dataclass(frozen=True)
class ColumnSpec:
    name: str
    table: str  # interests | requests | items
    kind: str  # cat | num
    method: str  # an Evidently stattest name
    threshold: float


# Thresholds: the smallest shift worth a look, set between what the simulator scenario shows without and
# with its interest shift (benchmarks/results/drift.md, 2,000-response windows: interest codes at most
# 0.022 vs at least 0.064, top codes 0.059 vs 0.117, item codes 0.008 vs 0.024). History length and
# probabilities keep Evidently's default 0.1. The sufficiency rule, not the threshold, guards small windows.
DEFAULT_COLUMNS = (
    ColumnSpec("interest_code", "interests", "cat", "jensenshannon", 0.05),
    ColumnSpec("interest_prob", "interests", "num", "wasserstein", 0.1),
    ColumnSpec("top_code", "requests", "cat", "jensenshannon", 0.1),
    ColumnSpec("history_len", "requests", "num", "wasserstein", 0.1),
    ColumnSpec("item_code", "items", "cat", "jensenshannon", 0.02),
    ColumnSpec("popularity_bucket", "items", "cat", "jensenshannon", 0.05),
)
# monitored column → its name in the tidy table, where they differ
SOURCE = {"interest_prob": "prob"}


@dataclass(frozen=True)
class DriftConfig:
    columns: tuple[ColumnSpec, ...] = DEFAULT_COLUMNS
    drift_share: float = 0.3  # verdict "drift" when at least this share of tested columns drifted
    min_requests: int = 100  # fewer responses on either side: "insufficient data"
    alpha: float = 0.01  # tolerated chance of a false alarm per column (the sufficiency rule)
    rows_per_request: int = 10  # at most this many effective rows per response in the items table
    max_rows: int = 100_000  # rows per table handed to Evidently: histograms settle long before this
    top_n: int = 3  # health: share of generated interests on the top_n codes
    seed: int = 0


@dataclass
class ColumnDrift:
    column: str
    method: str
    threshold: float
    score: float | None = None
    drifted: bool = False
    status: str = "tested"  # tested | insufficient | missing
    note: str = ""


@dataclass
class Health:
    n_interests: int = 0
    codes_used: int = 0
    code_entropy: float = 0.0  # bits, of the generated interest-code histogram
    code_evenness: float = 0.0  # entropy / log2(known codes): 1 = every code used equally
    dead_codes: list[str] = field(default_factory=list)  # known codes never generated in the window
    top_share: float = 0.0  # share of generated interests on the top_n codes
    traffic_share: dict[str, float] = field(default_factory=dict)  # returned items per retrieving code


@dataclass
class DriftResult:
    verdict: str
    drift_share: float
    n_drifted: int
    n_tested: int
    n_requests: int
    n_reference_requests: int
    columns: list[ColumnDrift]
    health: Health
    reference_health: Health
    threshold: float
    reason: str = ""

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict) -> DriftResult:
        raw = dict(raw)
        raw["columns"] = [ColumnDrift(**c) for c in raw["columns"]]
        raw["health"], raw["reference_health"] = Health(**raw["health"]), Health(**raw["reference_health"])
        return cls(**raw)

    def to_markdown(self, extra: dict | None = None) -> str:
        lines = [f"# Interest drift: **{self.verdict}**", "",
                 f"Drift share {self.drift_share:.2f} ({self.n_drifted} of {self.n_tested} tested columns; "
                 f"threshold {self.threshold:.2f}); {self.n_requests} responses vs "
                 f"{self.n_reference_requests} in the reference. {self.reason}".rstrip(), "",
                 "| column | method | score | threshold | status |", "|---|---|---:|---:|---|"]
        for c in self.columns:
            score = "" if c.score is None else f"{c.score:.4f}"
            status = "drift" if c.drifted else c.status if c.status != "tested" else "ok"
            lines.append(f"| {c.column} | {c.method} | {score} | {c.threshold:g} | {status}"
                         f"{' (' + c.note + ')' if c.note else ''} |")
        h, r = self.health, self.reference_health
        lines += ["", "| interest health | window | reference |", "|---|---:|---:|",
                  f"| codes used | {h.codes_used} | {r.codes_used} |",
                  f"| code-usage entropy (bits) | {h.code_entropy:.3f} | {r.code_entropy:.3f} |",
                  f"| evenness | {h.code_evenness:.3f} | {r.code_evenness:.3f} |",
                  f"| top-code share | {h.top_share:.3f} | {r.top_share:.3f} |",
                  f"| dead codes | {len(h.dead_codes)}: {', '.join(h.dead_codes[:10])} | "
                  f"{len(r.dead_codes)} |"]
        top = sorted(h.traffic_share.items(), key=lambda kv: -kv[1])[:10]
        if top:
            lines += ["", "Traffic share per interest code: " + ", ".join(f"{k} {v:.1%}" for k, v in top)]
        for key, value in (extra or {}).items():
            lines.append(f"- {key}: {value}")
        return "\n".join(lines) + "\n"


def _values(tables: Tables, spec: ColumnSpec) -> pd.Series | None:
    table = getattr(tables, spec.table)
    source = SOURCE.get(spec.name, spec.name)
    if source not in table:
        return None
    values = table[source]
    return None if values.notna().sum() == 0 else values


def effective_rows(tables: Tables, spec: ColumnSpec, values: pd.Series, cfg: DriftConfig) -> int:
    n = int(values.notna().sum())
    return min(n, cfg.rows_per_request * tables.n_requests) if spec.table == "items" else n


def chance_distance(k: int, n_ref: int, n_cur: int, alpha: float) -> float:
    """(1 − alpha) quantile of the JS distance (natural log) between two samples of one k-category
    distribution: 8 n_eff · JSD is approximately χ²_{k−1}."""
    if k < 2:
        return 0.0
    return math.sqrt(stats.chi2.ppf(1 - alpha, k - 1) * (1 / n_ref + 1 / n_cur) / 8)


def chance_wasserstein(ref: np.ndarray, cur: np.ndarray, alpha: float, rounds: int = 50, cap: int = 5000,
                       seed: int = 0) -> float:
    """(1 − alpha) quantile of the normed W1 between random splits of the pooled samples (a permutation
    estimate: numeric columns have no closed form like the χ² one). Samples are capped at ``cap`` rows, which
    only overstates the chance distance of large windows, where it is far below any threshold anyway."""
    rng = np.random.default_rng(seed)
    a = rng.choice(ref, min(len(ref), cap), replace=False)
    b = rng.choice(cur, min(len(cur), cap), replace=False)
    pooled = np.concatenate([a, b])
    scale = max(float(np.std(a)), 1e-3)  # Evidently's norm: the reference's std, floored
    distances = []
    for _ in range(rounds):
        rng.shuffle(pooled)
        distances.append(stats.wasserstein_distance(pooled[:len(a)], pooled[len(a):]) / scale)
    return float(np.quantile(distances, 1 - alpha))


def interest_health(tables: Tables, known: set[str], top_n: int) -> Health:
    codes = tables.interests["interest_code"].astype(str) if len(tables.interests) else pd.Series(dtype=str)
    counts = codes.value_counts()
    counts = counts[counts > 0]
    if counts.empty:
        return Health(dead_codes=sorted(known))
    p = counts.to_numpy(dtype=float) / counts.sum()
    entropy = float(-(p * np.log2(p)).sum())
    n_known = max(len(known | set(counts.index)), 2)
    if "via_code" in tables.items and tables.items["via_code"].notna().any():
        traffic = tables.items["via_code"].astype(str).value_counts(normalize=True)
    else:  # expected traffic: interests weighted by their probability
        traffic = tables.interests.groupby(codes.to_numpy(), observed=True)["prob"].sum()
        traffic = traffic / traffic.sum()
    return Health(n_interests=int(counts.sum()), codes_used=len(counts), code_entropy=entropy,
                  code_evenness=entropy / math.log2(n_known), dead_codes=sorted(known - set(counts.index)),
                  top_share=float(p[:top_n].sum()),
                  traffic_share={str(k): round(float(v), 6) for k, v in traffic.items() if v > 0})


def known_codes(reference: Tables, current: Tables) -> set[str]:
    """Codes the dictionary is known to use: generated in the reference, or carried by a catalogue item (a
    looked-up item_code column keeps the whole catalogue's codes as its categories)."""
    known = set(reference.interests["interest_code"].astype(str)) if len(reference.interests) else set()
    for tables in (reference, current):
        if "item_code" in tables.items:
            codes = tables.items["item_code"]
            values = codes.cat.categories if isinstance(codes.dtype, pd.CategoricalDtype) else codes.dropna()
            known |= {str(c) for c in pd.unique(values)} - {UNKNOWN}
    return known


def _frame(tables: Tables, specs: list[ColumnSpec], cfg: DriftConfig, extra: tuple[str, ...]) -> pd.DataFrame:
    """The tables side by side, each padded with missing values to the longest (the items table)."""
    parts = []
    rng = np.random.default_rng(cfg.seed)
    for table_name in ("interests", "requests", "items"):
        table = getattr(tables, table_name)
        wanted = [s.name for s in specs if s.table == table_name]
        wanted += [c for c in extra if c in table and table_name == "items"]
        if not wanted or table.empty:
            continue
        rows = table if len(table) <= cfg.max_rows else table.iloc[
            np.sort(rng.choice(len(table), cfg.max_rows, replace=False))]
        part = pd.DataFrame({name: rows[SOURCE.get(name, name)] for name in wanted}).reset_index(drop=True)
        for name in part.columns:
            if isinstance(part[name].dtype, pd.CategoricalDtype) or part[name].dtype == object:
                part[name] = part[name].astype(str).where(part[name].notna()).astype("category")
        parts.append(part)
    return pd.concat(parts, axis=1)


def _with_figures(frame: pd.DataFrame, figures: pd.DataFrame) -> pd.DataFrame:
    # one row of figures for MeanValue (monitoring.dashboard); each renders a plot (~0.1 s): only what it shows
    return pd.concat([frame, figures], axis=1)


def stattest_scores(ref: pd.DataFrame, cur: pd.DataFrame, specs: list[ColumnSpec]) -> dict[str, float]:
    """Each column's drift score from Evidently's stat-test registry: the functions ValueDrift runs, on the
    same values (missing ones dropped, as it does). Scoring first lets the drift share itself go into the
    snapshot, as one stable series, whichever columns a run could test."""
    from evidently.legacy.calculations.stattests.registry import get_stattest
    from evidently.legacy.core import ColumnType

    out = {}
    for spec in specs:
        kind = ColumnType.Categorical if spec.kind == "cat" else ColumnType.Numerical
        r, c = ref[spec.name].dropna(), cur[spec.name].dropna()
        out[spec.name] = float(get_stattest(r, c, kind, spec.method)(r, c, kind, spec.threshold).drift_score)
    return out


def evidently_snapshot(ref: pd.DataFrame, cur: pd.DataFrame, specs: list[ColumnSpec], extra: tuple[str, ...],
                       timestamp=None, tags: list[str] | None = None, metadata: dict[str, str] | None = None):
    """The run's Evidently Report (ValueDrift per tested column, health figures, traffic shares)."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import MeanValue, UniqueValueCount, ValueDrift

    health_cols = [c for c in cur.columns if c.startswith(PREFIX)]
    definition = DataDefinition(
        categorical_columns=[s.name for s in specs if s.kind == "cat"] + list(extra),
        numerical_columns=[s.name for s in specs if s.kind == "num"] + health_cols)
    metrics = [ValueDrift(column=s.name, method=s.method, threshold=s.threshold) for s in specs]
    metrics += [MeanValue(column=c) for c in health_cols]
    metrics += [UniqueValueCount(column=c) for c in extra]
    report = Report(metrics, tags=list(tags or []), metadata=dict(metadata or {}))
    with np.errstate(invalid="ignore", divide="ignore"):  # Evidently: label shares of an all-empty column
        return report.run(Dataset.from_pandas(cur, data_definition=definition),
                          Dataset.from_pandas(ref, data_definition=definition), timestamp=timestamp)


def snapshot_scores(snapshot) -> dict[str, float]:
    return {m["config"]["column"]: float(m["value"]) for m in snapshot.dict()["metrics"]
            if m.get("config", {}).get("type", "").endswith(":ValueDrift")}


def check_drift(reference: Tables, current: Tables, cfg: DriftConfig = DriftConfig(), timestamp=None,
                tags: list[str] | None = None, metadata: dict[str, str] | None = None):
    """Compare a window with the reference. Returns (DriftResult, Evidently Snapshot or None); the snapshot
    is None when there is too little data to test anything."""
    known = known_codes(reference, current)
    result = DriftResult(verdict=INSUFFICIENT, drift_share=0.0, n_drifted=0, n_tested=0,
                         n_requests=current.n_requests, n_reference_requests=reference.n_requests, columns=[],
                         health=interest_health(current, known, cfg.top_n),
                         reference_health=interest_health(reference, known, cfg.top_n),
                         threshold=cfg.drift_share)
    if min(current.n_requests, reference.n_requests) < cfg.min_requests:
        result.reason = (f"need at least {cfg.min_requests} responses on each side "
                         f"(window {current.n_requests}, reference {reference.n_requests})")
        result.columns = [ColumnDrift(s.name, s.method, s.threshold, status="insufficient")
                          for s in cfg.columns]
        return result, None
    tested = []
    for spec in cfg.columns:
        column = ColumnDrift(spec.name, spec.method, spec.threshold)
        ref, cur = _values(reference, spec), _values(current, spec)
        if ref is None or cur is None:
            column.status, column.note = "missing", "not in " + ("reference" if ref is None else "window")
        elif spec.kind == "cat":
            k = int(ref.astype(str)[ref.notna()].nunique())
            chance = chance_distance(k, min(effective_rows(reference, spec, ref, cfg), cfg.max_rows),
                                     min(effective_rows(current, spec, cur, cfg), cfg.max_rows), cfg.alpha)
            if chance >= spec.threshold:
                column.status = "insufficient"
                column.note = f"{k} codes: chance distance {chance:.3f} at these sizes"
        else:
            chance = chance_wasserstein(ref.dropna().to_numpy(dtype=float),
                                        cur.dropna().to_numpy(dtype=float), cfg.alpha, seed=cfg.seed)
            if chance >= spec.threshold:
                column.status, column.note = "insufficient", f"chance distance {chance:.3f} at these sizes"
        if column.status == "tested":
            tested.append(spec)
        result.columns.append(column)
    if not tested:
        result.reason = "no column has enough data to test"
        return result, None
    extra = ("via_code",) if "via_code" in current.items and current.items["via_code"].notna().any() else ()
    cur, ref = _frame(current, tested, cfg, extra), _frame(reference, tested, cfg, extra)
    for column in extra:
        # A reference without attribution still needs the column. Not as missing values: UniqueValueCount
        # lists the unique values of both sides, NaN included, so the traffic legend would show "nan".
        if column not in ref:
            ref[column] = pd.Categorical([NOT_RECORDED] * len(ref))
    scores = stattest_scores(ref, cur, tested)
    for column in result.columns:
        if column.status == "tested":
            column.score = scores[column.column]
            # both methods are distances: drift when the score reaches the threshold (Evidently's rule)
            column.drifted = column.score >= column.threshold
    result.n_tested = len(tested)
    result.n_drifted = sum(c.drifted for c in result.columns)
    result.drift_share = result.n_drifted / result.n_tested
    result.verdict = DRIFT if result.drift_share >= cfg.drift_share else NO_DRIFT
    n_columns = len(cfg.columns)
    snapshot = evidently_snapshot(
        _with_figures(ref, figures_row(result.reference_health, result.reference_health, 0.0,
                                       cfg.drift_share, result.n_tested, n_columns, cfg.top_n)),
        _with_figures(cur, figures_row(result.health, result.reference_health, result.drift_share,
                                       cfg.drift_share, result.n_tested, n_columns, cfg.top_n)),
        tested, extra, timestamp, tags, metadata)
    log.info("drift check: %s (share %.2f, %d/%d columns; %d responses)", result.verdict, result.drift_share,
             result.n_drifted, result.n_tested, current.n_requests)
    return result, snapshot

