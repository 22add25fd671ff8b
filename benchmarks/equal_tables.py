"""The campaign tables rebuilt under the equal tuning budget (issue #23), from
`benchmarks/results/equal-<dataset>.json` (`python -m benchmarks.campaign_equal`) and the cached records of
the chosen grid points.

    python -m benchmarks.equal_tables     # writes benchmarks/results/equal.md and equal.json

Every model chose its learning rate (and K for MIND and the ComiRecs) on seed 0's validation users and ran
at 3 seeds there; GemiRec also chose its post-training inference settings on validation users, and the
options count says so. Ratios pair GemiRec with a baseline on the same test users and seeds (per-user R@50
averaged over the seeds both stored, then a 95 % bootstrap over users, as `benchmarks.verdicts.paired`
does), judged by decision 2 (`benchmarks.verdicts.verdict`).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import numpy as np

from benchmarks import campaign_equal, tuning
from benchmarks.run import CACHE, RESULTS
from benchmarks.verdicts import verdict
from model.evaluation.evaluate import paired_ratio_ci

MULTI = ("mind", "comirec-sa", "comirec-dr")
AT_LEAST_AS_GOOD = 1.00
MOONSHOT, MOONSHOT_LOW = 1.10, 1.05  # the issue's: point ≥ 1.10 × the best of all, lower end ≥ 1.05
# merged top-50 list a user sees (run.py measures these since the merged-list diversity change; older
# records lack them): (key, column, scale)
DIVERSITY = (("distinct_categories@50", "Cats@50", 1.0), ("ild@50", "ILD@50 %", 100.0),
             ("coverage@50", "Cov@50 %", 100.0))
COMMAND = "python -m benchmarks.equal_tables"


def datasets() -> list[str]:
    """Datasets whose equal-budget campaign has written its choices, in the campaign's order."""
    return [ds for ds in campaign_equal.DATASETS if (RESULTS / f"equal-{ds}.json").exists()]


@cache
def _records(folder: Path) -> tuple[dict, ...]:
    # one dataset's records are read once per process: every model and seed looks them up
    return tuple(json.loads(p.read_text()) for p in sorted(folder.glob("*.json")))


def find_record(dataset: str, model: str, seed: int, lr: float, k: int | None, stored: dict) -> dict | None:
    """The cached record the campaign used for one seed of a chosen point. The campaign file keeps that
    seed's test and validation R@50, copied from the record, so equal floats (with the model, seed, lr
    and K) identify it without loading the data to recompute a cache key. Two records can match only
    when they are the same run under two spellings of GemiRec's lr; they hold the same numbers."""
    for rec in _records(CACHE / dataset):
        cfg = rec["config"]
        if (rec["model"] == model and rec["seed"] == seed
                and rec["test"]["recall@50"] == stored["test_recall@50"]
                and rec["val"]["recall@50"] == stored["val_recall@50"]
                and tuning.effective_lr(cfg) == lr
                and (k is None or cfg["multi"]["n_interests"] == k)):
            return rec
    return None


def _stats(values: list[float]) -> dict:
    # sample std (ddof = 1), the one convention across the project's tables; none from one seed
    v = [x for x in values if x is not None]
    return {"mean": float(np.mean(v)) if v else None,
            "std": float(np.std(v, ddof=1)) if len(v) > 1 else None, "n": len(v)}


def model_entry(dataset: str, model: str, entry: dict) -> dict | None:
    """One model's row: its choice, the options it chose among and its test metrics over the seeds found."""
    if "chosen" not in entry:
        return None  # the campaign has not finished this model's grid
    lr, k = entry["chosen"]["lr"], entry["chosen"]["K"]
    recs = {}
    for seed, stored in sorted(entry["seeds"].items(), key=lambda kv: int(kv[0])):
        if stored.get("test_recall@50") is None:
            continue
        rec = find_record(dataset, model, int(seed), lr, k, stored)
        if rec is not None:
            recs[int(seed)] = rec
    if not recs:
        return None
    post = tuning.post_training_options(next(iter(recs.values()))["config"])
    per_user = {s: r["test_per_user_recall@50"] for s, r in recs.items() if r.get("test_per_user_recall@50")}
    return {
        "lr": lr, "K": k, "grid_options": entry["options"], "post_training_options": post,
        "options": entry["options"] * post, "seeds": sorted(recs),
        "selected": [recs[s]["selected"] for s in sorted(recs) if recs[s].get("selected")],
        "test_recall@50": _stats([r["test"]["recall@50"] for r in recs.values()]),
        "test_ndcg@50": _stats([r["test"].get("ndcg@50") for r in recs.values()]),
        "diversity": {key: _stats([r["test"].get(key) for r in recs.values()]) for key, _, _ in DIVERSITY},
        "per_user_seeds": sorted(per_user), "per_user": per_user,
    }


def paired(a: dict, b: dict) -> dict:
    """GemiRec (`a`) ÷ a baseline (`b`): ratio of mean test R@50 over the users of the seeds both stored
    per-user results for (each user's R@50 averaged over those seeds), with the paired 95 % interval."""
    seeds = sorted(set(a["per_user_seeds"]) & set(b["per_user_seeds"]))
    if not seeds:
        point = a["test_recall@50"]["mean"] / b["test_recall@50"]["mean"]
        return {"ratio": point, "lo": None, "hi": None, "seeds": 0}
    ua = np.mean([np.asarray(a["per_user"][s], dtype=float) for s in seeds], axis=0)
    ub = np.mean([np.asarray(b["per_user"][s], dtype=float) for s in seeds], axis=0)
    ratio, lo, hi = paired_ratio_ci(ua, ub)
    return {"ratio": ratio, "lo": lo, "hi": hi, "seeds": len(seeds)}


def judge(p: dict, bar: float) -> str:
    return verdict(np.nan if p["lo"] is None else p["lo"], np.nan if p["hi"] is None else p["hi"], bar)


def moonshot(p: dict) -> bool:
    return p["lo"] is not None and p["ratio"] >= MOONSHOT and p["lo"] >= MOONSHOT_LOW


def dataset_table(dataset: str) -> dict:
    """Every model's row and GemiRec's three ratios (best baseline, single, best multi-interest)."""
    campaign = json.loads((RESULTS / f"equal-{dataset}.json").read_text())
    models = {m: e for m, e in ((m, model_entry(dataset, m, campaign[m])) for m in campaign) if e is not None}
    out = {"models": models, "ratios": {}}
    g = models.get("gemirec")
    if g is None:
        return out
    mean = {m: e["test_recall@50"]["mean"] for m, e in models.items()}
    base = [m for m in models if m != "gemirec"]
    multi = [m for m in base if m in MULTI]
    against = {"best baseline": max(base, key=mean.get) if base else None,
               "single": "single" if "single" in models else None,
               "best multi-interest": max(multi, key=mean.get) if multi else None}
    for name, m in against.items():
        if m is not None:
            out["ratios"][name] = {"model": m, **paired(g, models[m])}
    return out


def build() -> dict:
    return {ds: dataset_table(ds) for ds in datasets()}


def _lr(v: float) -> str:
    return f"{v:.0e}".replace("e-0", "e-")


def _num(s: dict, scale: float = 100.0) -> str:
    if s["mean"] is None:
        return "–"
    return f"{scale * s['mean']:.2f}" + (f" ± {scale * s['std']:.2f}" if s["std"] is not None else "")


def _mean(s: dict, scale: float) -> str:
    # diversity is context beside the quality columns: its mean over seeds is enough
    return "–" if s["mean"] is None else f"{scale * s['mean']:.1f}"


def choice_cell(e: dict) -> str:
    """The chosen point; GemiRec's K is one of its post-training options, chosen per seed."""
    cell = _lr(e["lr"]) + (f", K {e['K']}" if e["K"] is not None else "")
    ks = sorted({s["K"] for s in e["selected"]})
    return cell + (f" (K {'/'.join(map(str, ks))} after training)" if ks else "")


def options_cell(e: dict) -> str:
    if e["post_training_options"] == 1:
        return str(e["options"])
    return f"{e['options']} ({e['grid_options']} × {e['post_training_options']} post-training)"


def ratio_cell(r: dict, bar: float = AT_LEAST_AS_GOOD) -> str:
    if r["lo"] is None:
        return f"{r['ratio']:.3f} ({r['model']}; no per-user results): undecided"
    return (f"{r['ratio']:.3f} [{r['lo']:.3f}, {r['hi']:.3f}] ({r['model']}, {r['seeds']} seeds): "
            f"**{judge(r, bar)}**")


def markdown(tables: dict) -> list[str]:
    out = ["# Equal tuning budget: the campaign tables rebuilt (issue #23)", "",
           "Every model chose its learning rate (and K for MIND, ComiRec-SA and ComiRec-DR) on seed 0's",
           "validation users from the grid of `benchmarks/campaign_equal.py`, then ran at seeds 0-2 at that",
           "point; GemiRec also chose its post-training settings (K, u share, history blend, family",
           "restriction) on validation users, counted in its options. Test R@50 and NDCG@50 (%): mean ± sample",
           "std over the seeds found (ddof = 1). Diversity of the merged top-50 list (means over seeds): Cats@50 =",
           "distinct categories, ILD@50 = mean cosine distance between its items, Cov@50 = share of the catalogue",
           "in any test user's list (– where the records predate the measurement). Ratios: GemiRec's mean test",
           "R@50 ÷ a baseline's, paired on the same test users and seeds with a 95 % bootstrap interval over",
           f"users; **met** when the lower end is ≥ {AT_LEAST_AS_GOOD:.2f} (GemiRec at least as good), **failed**",
           "when the upper end is below it, **undecided** otherwise. Moonshot: ≥ 1.10 × the best baseline with",
           f"the lower end ≥ 1.05. Made by `{COMMAND}` (also run by `python -m benchmarks.summary`).", "",
           "| dataset | best baseline | ÷ best baseline | ÷ single | ÷ best multi-interest | moonshot |",
           "|---|---|---|---|---|---|"]
    for ds, t in tables.items():
        r = t["ratios"]
        if "best baseline" not in r:
            out.append(f"| {ds} | – | – | – | – | – |")
            continue
        best = t["models"][r["best baseline"]["model"]]
        cells = [ratio_cell(r[k]) if k in r else "–" for k in ("best baseline", "single", "best multi-interest")]
        out.append(f"| {ds} | {r['best baseline']['model']} {_num(best['test_recall@50'])} | " + " | ".join(cells)
                   + f" | {'reached' if moonshot(r['best baseline']) else 'not reached'} |")
    for ds, t in tables.items():
        out += ["", f"## {ds}", "",
                "| model | chosen lr (K) | options | seeds | test R@50 | test NDCG@50 | "
                + " | ".join(c for _, c, _ in DIVERSITY) + " |", "|---|" + "---|" * (5 + len(DIVERSITY))]
        for m, e in t["models"].items():
            div = [_mean(e["diversity"][key], scale) for key, _, scale in DIVERSITY]
            out.append(f"| {m} | {choice_cell(e)} | {options_cell(e)} | {len(e['seeds'])} "
                       f"| {_num(e['test_recall@50'])} | {_num(e['test_ndcg@50'])} | " + " | ".join(div) + " |")
        unpaired = [m for m, e in t["models"].items() if len(e["per_user_seeds"]) < len(e["seeds"])]
        if unpaired:
            out += ["", "Seeds without per-user results (cached before they were kept; not in the paired "
                    "intervals): " + ", ".join(f"{m} {len(t['models'][m]['per_user_seeds'])} of "
                                               f"{len(t['models'][m]['seeds'])}" for m in unpaired) + "."]
    return out


def _bars_cell(r: dict | None, bars: tuple[float, ...]) -> str:
    if r is None:
        return "–"
    if r["lo"] is None:
        return f"{r['ratio']:.3f} ({r['model']}; no per-user results): undecided"
    judged = "; ".join(f"≥ {b:.2f} **{judge(r, b)}**" for b in bars)
    return f"{r['ratio']:.3f} [{r['lo']:.3f}, {r['hi']:.3f}] ({r['model']}, {r['seeds']} seeds): {judged}"


def verdict_lines(tables: dict, long: set[str], multi_bar: float = 1.10) -> list[str]:
    """summary.md's bar verdicts (decisions 1-2) from the equal-budget tables, with the older section's
    bars, plus whether GemiRec is at least as good: the question an equal budget can answer."""
    if not tables:
        return []
    rows, reached = [], []
    for ds, t in tables.items():
        r = t["ratios"]
        single_bar = 1.05 if ds in long else 1.00
        multi = ("retired (decision 1: the simulator is judged against its ceiling)" if ds == "simulator"
                 else _bars_cell(r.get("best multi-interest"), (AT_LEAST_AS_GOOD, multi_bar)))
        single = _bars_cell(r.get("single"), tuple(sorted({AT_LEAST_AS_GOOD, single_bar})))
        best = _bars_cell(r.get("best baseline"), (AT_LEAST_AS_GOOD, MOONSHOT))
        if "best baseline" in r and moonshot(r["best baseline"]):
            reached.append(ds)
        rows.append(f"| {ds} | {multi} | {single} | {best} |")
    return ["", "## Bar verdicts, equal tuning budget (issue #23, decisions 1-2)", "",
            "The same bars on the campaign rebuilt under an equal budget (`equal.md`, made by",
            f"`{COMMAND}`): every model chose its lr (and K) on seed 0's validation users, GemiRec",
            "its lr and post-training settings; seeds 0-2 at the chosen point. Paired ratio of test R@50 means",
            "with the 95 % interval over test users; each bar judged as above. Datasets not listed have only the",
            "older campaign. Time to quality and the unique ratio (decisions 3-4) are judged above, from the",
            "older campaign's runs.", "",
            "| dataset | ÷ best multi-interest (≥ 1.00; bar 1.10) | ÷ single (≥ 1.00; bar 1.05 on long histories) "
            "| ÷ best of all (≥ 1.00; goal 1.10) |", "|---|---|---|---|", *rows,
            "", "Moonshot under the equal budget (≥ 1.10 × the best of all baselines, lower end ≥ 1.05): "
            + (f"reached on {', '.join(reached)}." if reached else "reached on no dataset.")]


def write(tables: dict) -> None:
    slim = {ds: {"models": {m: {k: v for k, v in e.items() if k != "per_user"} for m, e in t["models"].items()},
                 "ratios": t["ratios"]} for ds, t in tables.items()}
    (RESULTS / "equal.json").write_text(json.dumps(slim, indent=1) + "\n")
    (RESULTS / "equal.md").write_text("\n".join(markdown(tables)) + "\n")


def main() -> None:
    write(build())
    print((RESULTS / "equal.md").read_text())


if __name__ == "__main__":
    main()
