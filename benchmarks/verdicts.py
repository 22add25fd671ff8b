"""Bar verdicts for summary.md (issue #23, decisions 1-4), read from the per-dataset tables.

- Every bar is judged on the paired 95 % bootstrap interval over test users (GemiRec and the baseline on
  the same users and seeds): *met* when the lower end is at or above the bar, *failed* when the upper end
  is below it, *undecided* otherwise. A point ratio alone cannot tell a 95-user test set's noise from a
  gap.
- The simulator is judged against its ceiling (a reference told the planted topics): GemiRec ≥ 0.97 × the
  reference; the 1.10 × best multi-interest bar is retired there.
- Time to quality: seconds until GemiRec's validation R@50 first reaches ComiRec-SA's best, ≤ 1.0 ×
  ComiRec-SA's whole training time.
- Unique ratio: the claim holds when GemiRec beats ComiRec-SA on at least 5 of the 6 campaign datasets.
"""

from __future__ import annotations

import json

import numpy as np

from benchmarks.run import RESULTS
from benchmarks.train_time import quality_ratio, time_to_quality
from model.evaluation.evaluate import paired_ratio_ci

CEILING_SHARE = 0.97  # decision 1: GemiRec against the simulator's reference
TTQ_BAR = 1.0  # decision 3
UNIQUE_MIN_WINS = 5  # decision 4, of the 6 campaign datasets
# models whose table row chose its learning rate on validation among the cached lr runs (the `long`
# preset's GemiRec lr 2e-3 was picked so); the baselines' rows keep the shared preset whatever
# validation prefers, so they chose among one lr and one K (issue #23: the budget was not equal)
LR_CHOSEN_ON_VALIDATION = {"gemirec"}


def verdict(lo: float, hi: float, bar: float) -> str:
    """Decision 2: met when the interval's lower end is at or above the bar, failed when its upper
    end is below it, undecided otherwise (also when there is no interval)."""
    if np.isnan(lo) or np.isnan(hi):
        return "undecided"
    if lo >= bar:
        return "met"
    if hi < bar:
        return "failed"
    return "undecided"


def _table(ds: str) -> dict:
    path = RESULTS / f"{ds}.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _mean(entry: dict) -> float:
    vals = [v for v in entry["test"]["recall@50"] if v is not None]
    return float(np.mean(vals)) if vals else float("nan")


def _per_user(entry: dict) -> dict[int, np.ndarray]:
    return {s: np.asarray(a, dtype=float) for s, a in
            zip(entry["seeds"], entry.get("test_per_user_recall@50") or []) if a is not None}


def paired(table: dict, a: str, b: str) -> tuple[float, float, float, int]:
    """(ratio, lo, hi, seeds): mean R@50 of `a` over `b` on the same test users, averaged over the
    seeds both stored per-user results for, with the 95 % bootstrap interval over users."""
    pa, pb = _per_user(table[a]), _per_user(table[b])
    seeds = sorted(set(pa) & set(pb))
    if not seeds:
        return float("nan"), float("nan"), float("nan"), 0
    ratio, lo, hi = paired_ratio_ci(np.mean([pa[s] for s in seeds], 0), np.mean([pb[s] for s in seeds], 0))
    return ratio, lo, hi, len(seeds)


def ceiling_ci(table: dict, reference: float) -> tuple[float, float, float, int]:
    """GemiRec's test R@50 ÷ the simulator reference's, with a 95 % bootstrap interval over test users.
    The reference stored no per-user results, so it counts as a constant: the interval holds GemiRec's
    sampling noise only (narrower than a paired one would be)."""
    g = _per_user(table["gemirec"])
    if not g:
        return _mean(table["gemirec"]) / reference, float("nan"), float("nan"), 0
    a = np.mean(list(g.values()), 0)
    ratio, lo, hi = paired_ratio_ci(a, np.full_like(a, reference))
    return ratio, lo, hi, len(g)


def _cell(ratio: float, lo: float, hi: float, n: int, bar: float, against: str) -> str:
    if n == 0:
        return f"{ratio:.3f} ({against}; no per-user results): undecided"
    return f"{ratio:.3f} [{lo:.3f}, {hi:.3f}] ({against}, {n} seeds): **{verdict(lo, hi, bar)}**"


def verdict_lines(datasets: list[str], multi: list[str], models: list[str], long: set[str]) -> list[str]:
    rows, wins, judged, moonshot = [], 0, 0, []
    b2b = back_to_back_quality()
    for ds in datasets:
        table = _table(ds)
        if "gemirec" not in table:
            continue
        bm = [m for m in multi if m in table]
        base = [m for m in models if m in table and m != "gemirec"]
        best_multi = max(bm, key=lambda m: _mean(table[m]))
        best_all = max(base, key=lambda m: _mean(table[m]))
        single_bar = 1.05 if ds in long else 1.00
        if ds == "simulator":
            multi_cell = "retired (decision 1: judged against the ceiling below)"
        else:
            multi_cell = _cell(*paired(table, "gemirec", best_multi), 1.10, best_multi)
        single_cell = (_cell(*paired(table, "gemirec", "single"), single_bar, f"bar {single_bar:.2f}")
                       if "single" in table else "–")
        all_pair = paired(table, "gemirec", best_all)
        all_cell = _cell(*all_pair, 1.10, best_all)
        if all_pair[0] >= 1.10 and all_pair[1] >= 1.05:  # the moonshot: point ≥ 1.10, lower end ≥ 1.05
            moonshot.append(ds)
        ttq = b2b.get(ds)
        ttq_cell = ("pending" if ttq is None else
                    f"{ttq:.2f}: **{'met' if ttq <= TTQ_BAR else 'failed'}**" if np.isfinite(ttq)
                    else "not reached: **failed**")
        rows.append(f"| {ds} | {multi_cell} | {single_cell} | {all_cell} | {ttq_cell} |")
        u = [_unique(table, m) for m in ("gemirec", "comirec-sa")] if "comirec-sa" in table else []
        if u and not np.isnan(u[0]) and not np.isnan(u[1]):
            judged += 1
            wins += u[0] > u[1]
    out = ["", "## Bar verdicts, older campaign (issue #23, decisions 1-4)", "",
           "From the per-dataset tables, where GemiRec chose its lr and post-training settings on validation",
           "users and the baselines kept their preset's lr and K (not an equal tuning budget).", "",
           "GemiRec's ratio of test R@50 means, paired on the same test users and seeds, with the 95 %",
           "bootstrap interval over test users: **met** when the interval's lower end is at or above the bar,",
           "**failed** when its upper end is below it, **undecided** otherwise. Best baselines by test R@50",
           "mean. Time to quality: GemiRec's seconds until its validation R@50 first reaches ComiRec-SA's",
           "best, ÷ ComiRec-SA's whole training time, from the latest back-to-back run (`train_time.md`).", "",
           "| dataset | ÷ best multi-interest (≥ 1.10) | ÷ single (≥ 1.00; ≥ 1.05 on long histories) "
           "| ÷ best of all (goal 1.10) | time to quality ÷ SA (≤ 1.0) |", "|---|---|---|---|---|", *rows]
    out += ["", "Moonshot (GemiRec ≥ 1.10 × the best of all baselines with the paired interval's lower end ≥ 1.05; "
            "the issue also asks for each model's dimension chosen on validation, not done here): "
            + (f"reached on {', '.join(moonshot)}." if moonshot else "reached on no dataset.")]
    out += _ceiling_verdict()
    out += ["", f"Restriction tolerance / unique ratio (decision 4): GemiRec's Unique@50 beats ComiRec-SA's on "
            f"{wins} of {judged} campaign datasets; the claim holds at ≥ {UNIQUE_MIN_WINS} of 6: "
            f"**{'holds' if judged >= 6 and wins >= UNIQUE_MIN_WINS else 'does not hold'}**"
            + ("" if judged >= 6 else f" (only {judged} datasets have both models)") + ".",
            "Unique@50 counts distinct items among GemiRec's K interest lists, which its family restriction",
            "makes disjoint by construction; it says nothing about the merged list a user sees."]
    return out


def _unique(table: dict, m: str) -> float:
    vals = [v for v in table[m]["test"].get("unique_ratio@50", []) if v is not None]
    return float(np.mean(vals)) if vals else float("nan")


def _ceiling_verdict() -> list[str]:
    path = RESULTS / "simulator-ceiling.json"
    table = _table("simulator")
    if not path.exists() or "gemirec" not in table:
        return []
    ref = json.loads(path.read_text())["oracle"]["test_recall@50"]
    ratio, lo, hi, n = ceiling_ci(table, ref)
    return ["", f"Simulator (decision 1): GemiRec test R@50 {100 * _mean(table['gemirec']):.2f} ÷ the ceiling's "
            f"reference {100 * ref:.2f} (`simulator-ceiling.json`) = {ratio:.3f} [{lo:.3f}, {hi:.3f}] over "
            f"{n} seeds; goal ≥ {CEILING_SHARE:.2f}: **{verdict(lo, hi, CEILING_SHARE)}** (point ratio "
            f"{'at or above' if ratio >= CEILING_SHARE else 'below'} the goal). The reference stored no "
            "per-user results, so the interval holds GemiRec's noise only. The 1.10 × ComiRec-SA bar is "
            "retired on the simulator: it asks for more of a model told the planted topics than that model "
            "has room for."]


def back_to_back_quality() -> dict[str, float]:
    """Time to quality ÷ ComiRec-SA's wall time per dataset, from the latest back-to-back preset run
    that kept histories (inf: never reached)."""
    path = RESULTS / "train_time.json"
    out: dict[str, float] = {}
    for r in json.loads(path.read_text()) if path.exists() else []:
        if not r.get("gemirec_set") and quality_ratio(r)[1] is not None:
            out[r["dataset"]] = quality_ratio(r)[1]
    return out


def campaign_quality(table: dict) -> tuple[float, int, int]:
    """(median over seeds of time to quality ÷ ComiRec-SA's training time, seeds that reached it, seeds
    paired) from the campaign's own runs: each seed's GemiRec against the same seed's ComiRec-SA."""
    g, sa = table.get("gemirec"), table.get("comirec-sa")
    if g is None or sa is None or "curves" not in g or "curves" not in sa:
        return float("nan"), 0, 0
    sa_by_seed = dict(zip(sa["seeds"], zip(sa["curves"], sa["train_seconds"])))
    ratios = []
    for seed, curve in zip(g["seeds"], g["curves"]):
        if seed not in sa_by_seed or not curve or not sa_by_seed[seed][0]:
            continue
        sa_curve, sa_seconds = sa_by_seed[seed]
        ttq = time_to_quality(curve, max(h[1] for h in sa_curve))
        ratios.append(float("inf") if ttq is None else ttq / sa_seconds)
    if not ratios:
        return float("nan"), 0, 0
    return float(np.median(ratios)), sum(np.isfinite(ratios)), len(ratios)


def quality_lines(datasets: list[str]) -> list[str]:
    b2b = back_to_back_quality()
    rows = []
    for ds in datasets:
        table = _table(ds)
        med, reached, n = campaign_quality(table)
        camp = "–" if n == 0 else (f"{med:.2f} ({reached} of {n} seeds reached)" if np.isfinite(med)
                                   else f"not reached ({reached} of {n} seeds reached)")
        total = "–"
        if "gemirec" in table and "comirec-sa" in table:
            seconds = [np.median(table[m]["train_seconds"]) for m in ("gemirec", "comirec-sa")]
            total = f"{seconds[0] / seconds[1]:.2f}"
        ttq = b2b.get(ds)
        bb = "pending" if ttq is None else (f"{ttq:.2f}" if np.isfinite(ttq) else "not reached")
        rows.append(f"| {ds} | {bb} | {camp} | {total} |")
    pending = [ds for ds in datasets if ds not in b2b]
    if pending:
        rows += ["", f"Back to back pending on {', '.join(pending)}: one command each, "
                 "`nice -n 5 python -m benchmarks.train_time --dataset <name> --threads 1` (a few minutes to",
                 "twenty on 2 shared cores; one at a time)."]
    return ["", "## Time to quality (decision 3)", "",
            "Seconds until GemiRec's validation R@50 first reaches ComiRec-SA's best validation R@50 (only",
            "epochs that could be GemiRec's kept model count; its warm-up epochs are the single-vector",
            "backbone), ÷ ComiRec-SA's whole training time; bar ≤ 1.0. Back to back: the latest",
            "`python -m benchmarks.train_time --dataset <name> --threads 1` run (`train_time.md`). Campaign:",
            "the same reading of the cached runs' per-epoch histories, seed against seed; those runs were",
            "made at different times under different loads, so this column is not a back-to-back timing.",
            "Total-time ratio beside it (campaign training-time medians).", "",
            "| dataset | back to back | campaign runs (median over seeds; not back to back) "
            "| total train time ÷ SA (campaign) |", "|---|---|---|---|", *rows]


def _lr(v: float) -> str:
    return f"{v:.0e}".replace("e-0", "e-")


def options_lines(datasets: list[str], models: list[str]) -> list[str]:
    """Issue #23: how many options each row chose among, with the (lr, K) runs cached beside it."""
    rows = []
    for ds in datasets:
        table = _table(ds)
        cells = []
        for m in models:
            e = table.get(m)
            if e is None or "variants" not in e:
                cells.append("–")
                continue
            chosen = e["post_training_options"] * (len(e["variants"]) if m in LR_CHOSEN_ON_VALIDATION else 1)
            cached = ", ".join(f"{_lr(lr)}/K{k}" if m in ("mind", "comirec-sa", "comirec-dr") else _lr(lr)
                               for lr, k in e["variants"])
            cells.append(f"{chosen} (lr {_lr(e['lr'])}; cached: {cached})" if m != "mostpop" else "1")
        rows.append(f"| {ds} | " + " | ".join(cells) + " |")
    return ["", "## Options chosen among", "",
            "Per model and dataset: how many options the table's row was chosen among on validation users,",
            "its lr, and the (lr, K) runs cached with otherwise the same config. GemiRec's = its learning",
            "rates cached × its post-training inference settings (`model.gemirec.selection.settings_grid`:",
            "K, u share, history blend, family restriction); the baselines' rows keep the shared preset",
            "whatever validation prefers, so they chose among 1 even where other runs are cached.", "",
            "| dataset | " + " | ".join(models) + " |", "|---|" + "---|" * len(models), *rows]
