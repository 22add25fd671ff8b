"""How high can Recall@50 go on the simulator? A reference that knows what the simulator planted.

    python -m benchmarks.studies.simulator_ceiling

The simulator (features/simulator.py) draws each step's topic from a user's active topics, sticky to the
previous one, now and then adopting a topic next to an active one on the relation graph, and then an item
from that topic with Zipf popularity. A recommender that knows every item's planted topic, the true
within-topic item probabilities and the relation graph scores an item by

    s(i) = w(topic(i)) * p(i | topic(i)),
    w = recency-weighted topic shares of the history (decay λ per step back)
        + γ * the shares passed on to graph neighbours (adoption)  + α * the topic prior,

and ranks the catalogue by it. It sees the same validation and test users, histories and targets as the
harness (SequenceData.eval_set, the same split), and (λ, γ, α) are chosen on validation users only. It is
not the Bayes-optimal recommender (that would need the users' latent weights and the exact adoption and
drop process), but no model in the campaign can know more than it does. A second row drops the world
knowledge except the item topics: item popularity within a topic counted on training users, no graph.

The table puts each campaign model's test R@50 (means over seeds, `benchmarks/results/simulator.json`)
and the issue's bars next to the reference. Writes `benchmarks/results/<dataset>-ceiling.{md,json}`.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import numpy as np

from benchmarks.run import RESULTS, console
from benchmarks.summary import MODELS, MULTI
from features.datasets import SIMULATOR_CONFIGS, load_dataset
from features.simulator import World, build_world
from model.config import load_config
from model.evaluation import metrics as M
from model.sequences import EvalSet, SequenceData

N = 50
DECAYS = (1.0, 0.97, 0.95, 0.92, 0.9, 0.85, 0.8)
ADOPTION = (0.0, 0.05, 0.1, 0.2, 0.4, 0.8)
PRIOR = (0.0, 0.02, 0.05)
BASELINES = tuple(m for m in MODELS if m != "gemirec")


def world_item_probs(data: SequenceData, world: World) -> np.ndarray:
    """(n_items + 1,) true p(i | topic(i)) of each dense item id (0 for padding), from the world's CDF."""
    topics = world.item_topic[world.topic_items - 1]  # the CDF's layout: items grouped by topic
    within = world.cdf - topics  # cumulative share inside the item's topic, in (0, 1]
    first = np.r_[True, topics[1:] != topics[:-1]]
    by_raw = np.zeros(world.item_topic.size + 1)
    by_raw[world.topic_items] = within - np.where(first, 0.0, np.r_[0.0, within[:-1]])
    out = np.zeros(data.n_items + 1)
    out[1:] = by_raw[data.item_ids[1:]]
    return out


def counted_item_probs(data: SequenceData, n_topics: int) -> np.ndarray:
    """p(i | topic(i)) counted on training users' sequences (add-0.001 smoothed)."""
    counts = data.item_popularity() + 1e-3
    per_topic = np.zeros(n_topics)
    np.add.at(per_topic, data.item_category[1:], counts[1:])
    out = counts / per_topic[np.maximum(data.item_category, 0)]
    out[0] = 0.0
    return out


def topic_shares(es: EvalSet, category: np.ndarray, n_topics: int, decay: float) -> np.ndarray:
    """(U, T) recency-weighted share of each planted topic in each user's whole 80 % history."""
    shares = np.zeros((len(es), n_topics))
    for row, h in enumerate(es.full_histories):
        np.add.at(shares[row], category[h], decay ** np.arange(len(h))[::-1])
    return shares / np.maximum(shares.sum(1, keepdims=True), 1e-12)


def reference_recall(es: EvalSet, category: np.ndarray, item_probs: np.ndarray, shares: np.ndarray,
                     spread: np.ndarray | None, adoption: float, prior: np.ndarray, prior_w: float
                     ) -> np.ndarray:
    """Per-user R@50 of the reference ranking for one setting."""
    w = shares + prior_w * prior[None, :]
    if spread is not None and adoption > 0:
        w = w + adoption * shares @ spread
    scores = w[:, np.maximum(category, 0)] * item_probs[None, :]
    scores[:, 0] = -np.inf  # padding
    top = np.argpartition(-scores, N, axis=1)[:, :N]
    order = np.take_along_axis(scores, top, 1).argsort(1)[:, ::-1]
    ranked = np.take_along_axis(top, order, 1)
    return M.recall_at(M.hits_matrix(ranked, es.targets), es.targets, N)


def best_on_validation(data: SequenceData, item_probs: np.ndarray, world: World | None) -> dict:
    """Choose (λ, γ, α) on validation users; -> the setting, its validation and test R@50 (means)."""
    n_topics = int(data.item_category.max()) + 1
    if world is not None:
        nb = world.neighbours.astype(float)
        spread = nb / np.maximum(nb.sum(1, keepdims=True), 1)  # a topic's share, split over its neighbours
        prior = world.prior
    else:
        spread, prior = None, np.bincount(data.item_category[1:], minlength=n_topics) / data.n_items
    val, test = data.eval_set(1), data.eval_set(2)
    scored = []
    for decay in DECAYS:
        shares = topic_shares(val, data.item_category, n_topics, decay)
        for adoption, prior_w in itertools.product(ADOPTION if spread is not None else (0.0,), PRIOR):
            r = reference_recall(val, data.item_category, item_probs, shares, spread, adoption, prior,
                                 prior_w)
            scored.append((float(r.mean()), decay, adoption, prior_w))
    v, decay, adoption, prior_w = max(scored)
    shares = topic_shares(test, data.item_category, n_topics, decay)
    t = reference_recall(test, data.item_category, item_probs, shares, spread, adoption, prior, prior_w)
    return {"decay": decay, "adoption": adoption, "prior": prior_w, "val_recall@50": v,
            "test_recall@50": float(t.mean()), "test_users": len(test), "settings_scored": len(scored)}


def campaign_means(path) -> dict[str, float]:
    """Test R@50 mean over seeds of every label in a dataset's results json."""
    rows = json.loads(path.read_text())
    return {label: float(np.mean(r["test"]["recall@50"])) for label, r in rows.items()
            if r.get("test", {}).get("recall@50")}


def write(dataset: str, result: dict, models: dict[str, float], out_md, out_json) -> None:
    ref = result["oracle"]["test_recall@50"]
    lines = [f"# {dataset}: the ceiling, a reference that knows the planted topics", "",
             f"Made by `python -m benchmarks.studies.simulator_ceiling --dataset {dataset}` (its docstring says what "
             "the reference knows). Test users of the campaign's split; the reference's settings were "
             "chosen on validation users. Model rows: test R@50 means over the campaign's seeds "
             f"(`benchmarks/results/{dataset}.json`).", "",
             "| reference | decay λ | adoption γ | prior α | val R@50 | test R@50 |",
             "|---|---|---|---|---|---|"]
    for name, key in (("planted topics + true item probabilities + relation graph", "oracle"),
                      ("planted topics + item counts of training users", "counted")):
        r = result[key]
        lines.append(f"| {name} | {r['decay']} | {r['adoption']} | {r['prior']} | "
                     f"{100 * r['val_recall@50']:.2f} | {100 * r['test_recall@50']:.2f} |")
    lines += ["", "| campaign model or bar | test R@50 | ÷ the reference's |", "|---|---|---|"]
    for label in sorted(models, key=models.get, reverse=True):
        lines.append(f"| {label} | {100 * models[label]:.2f} | {models[label] / ref:.3f} |")
    for name, value in result["bars"].items():
        lines.append(f"| bar: {name} | {100 * value:.2f} | {value / ref:.3f} |")
    out_md.write_text("\n".join(lines) + "\n")
    out_json.write_text(json.dumps(result | {"models": models}, indent=1))


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="simulator", choices=sorted(SIMULATOR_CONFIGS))
    p.add_argument("--data-dir", default=None)
    p.add_argument("--out", default=str(RESULTS), help="folder for <dataset>-ceiling.{md,json}")
    args = p.parse_args(argv)
    start = time.perf_counter()
    inter = load_dataset(args.dataset, args.data_dir)
    data = SequenceData.from_frames(inter.events, inter.items, load_config("simulator").data)
    world = build_world(SIMULATOR_CONFIGS[args.dataset])
    n_topics = int(world.item_topic.max()) + 1
    result = {"oracle": best_on_validation(data, world_item_probs(data, world), world),
              "counted": best_on_validation(data, counted_item_probs(data, n_topics), None), "bars": {}}
    campaign = RESULTS / f"{args.dataset}.json"
    models = {k: v for k, v in (campaign_means(campaign) if campaign.exists() else {}).items()
              if k in (*BASELINES, "gemirec")}  # the campaign's rows, not its labelled variants
    if any(m in models for m in MULTI):
        result["bars"]["1.10 × best multi-interest baseline"] = 1.10 * max(models[m] for m in MULTI
                                                                            if m in models)
        result["bars"]["1.10 × best of all baselines (goal)"] = 1.10 * max(models[m] for m in BASELINES
                                                                            if m in models)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"{args.dataset}-ceiling"
    write(args.dataset, result, models, stem.with_suffix(".md"), stem.with_suffix(".json"))
    for key in ("oracle", "counted"):
        r = result[key]
        console.print(f"{key}: λ={r['decay']} γ={r['adoption']} α={r['prior']}  val R@50 "
                      f"{100 * r['val_recall@50']:.2f}  test R@50 {100 * r['test_recall@50']:.2f}")
    console.print(f"written {stem.with_suffix('.md')} in {time.perf_counter() - start:.0f} s")
    return result


if __name__ == "__main__":
    main()
