"""Per-request model-step cost of every model, measured in one process (issue #23: "GemiRec runs K queries
and a generator. The table must show each model's per-request model-step time, measured in one run").

    python -m benchmarks.model_step --dataset ml-100k
    python -m benchmarks.model_step --dataset simulator-tiny --preset tiny --requests 20   # smoke run

The model step is `model.recommend(histories, index, 50)`: user tower (and GemiRec's generator and
interest queries), the FAISS searches and the merge; no HTTP, no id mapping. Each model trains briefly
(the campaign's preset for the dataset, 2 epochs, GemiRec's warm-up cut to 1 epoch so its dictionary and
generator exist), since the step's cost does not depend on how long the weights trained: the compute graph
is fixed by the config. What GemiRec chose on validation users after training (K, history blend, family
restriction) can change it, so the table records those choices.

Requests are real test users' histories (cycled when there are fewer users than requests), one user per
call and 64 users per call, with torch and FAISS on `--threads` threads under torch.inference_mode. The
models are timed in interleaved rounds, so that the machine's drift over the run falls on all of them
alike; ratios to the single vector's median within one run are what to compare, not milliseconds across
machines. Writes benchmarks/results/model-step-<dataset>.md and .json.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from benchmarks.machine import cpu_model
from benchmarks.run import DATASET_PRESETS, RESULTS
from benchmarks.train_time import _commit
from features.datasets import load_dataset
from model.config import load_config, replace
from model.evaluation.evaluate import build_index
from model.faiss_index import set_threads
from model.sequences import SequenceData
from model.training.train import fit, make_model, seed_everything

MODELS = ["single", "youtubednn", "mind", "comirec-sa", "comirec-dr", "gemirec"]
BRIEF_TRAINING = ["train.max_epochs=2", "gemirec.warmup_epochs=1", "gemirec.min_warmup_epochs=1"]
N = 50  # the list length every table reports


@dataclass(frozen=True)
class StepConfig:
    dataset: str = "ml-100k"
    preset: str | None = None  # None: the campaign's preset for the dataset (benchmarks/run.py)
    models: tuple[str, ...] = tuple(MODELS)
    requests: int = 600  # timed one-user calls per model
    warmup_calls: int = 20  # untimed calls first: lazy initialisation is not a request's cost
    batch: int = 64
    batch_calls: int = 40  # timed calls of `batch` users per model
    rounds: int = 20  # the timed calls are split into this many interleaved rounds
    threads: int = 1
    seed: int = 0
    overrides: tuple[str, ...] = ()
    command: str = "python -m benchmarks.model_step"  # what made the table, printed in it
    # the same trained GemiRec also timed at fixed settings of its validation grid (selection.settings_grid):
    # K and the family restriction are what change a request's compute, whatever validation picks
    gemirec_k: tuple[int, ...] = (4, 8)


def train_briefly(name: str, base, data: SequenceData, seed: int):
    """A model as the campaign builds it, trained for 2 epochs; -> (model, its FAISS index, what it runs)."""
    cfg = replace(base, model=name, train={"seed": seed})
    seed_everything(seed)
    model = make_model(cfg, data)
    result = fit(model, data, cfg, progress=False)
    index = build_index(model)
    model.eval()  # serving's state: GemiRec's recommend otherwise toggles train/eval on every call
    if hasattr(model, "pin_item_matrix"):  # as serving/runtime.py does: the merge's item matrix once
        model.pin_item_matrix(index.vectors())
    return model, index, _what_runs(model, cfg, result)


def fixed_variants(model, index, what: dict, ks: tuple[int, ...]) -> dict[str, tuple]:
    """Copies of a trained GemiRec set to each K, family restriction on and off, other options as chosen."""
    out = {}
    g = model.cfg.gemirec
    for k in ks:
        for restrict in (True, False):
            v = copy.deepcopy(model)
            v.apply_choice({"n_interests": k, "u_share": g.u_share, "history_blend": g.history_blend,
                            "restrict_family": restrict})
            label = f"gemirec K={k} {'restricted' if restrict else 'unrestricted'}"
            out[label] = (v, index, {**_what_runs(v, v.cfg, None), "epochs": what["epochs"],
                                     "val_recall@50": what["val_recall@50"], "selected_on_validation": False})
    return out


def _what_runs(model, cfg, result) -> dict:
    """The settings that decide a request's compute (K queries, GemiRec's post-training choices)."""
    out = {"epochs": result.epochs_run, "val_recall@50": result.best_val_recall50} if result else {}
    if hasattr(model, "item_codes"):
        g = model.cfg.gemirec
        out.update({"K": int(model.K), "stage": model.stage_reached, "merge": g.merge, "u_share": g.u_share,
                    "history_blend": g.history_blend, "restrict_family": g.restrict_family,
                    "levels": g.n_levels, "codebook_size": g.codebook_size,
                    "selected_on_validation": getattr(model, "selected", None) is not None})
    else:
        out["K"] = int(cfg.multi.n_interests) if cfg.model in ("mind", "comirec-sa", "comirec-dr") else 1
    return out


def _timed(model, index, histories: np.ndarray) -> float:
    with torch.inference_mode():
        t0 = time.perf_counter()
        model.recommend(histories, index, N)
        return (time.perf_counter() - t0) * 1000


def measure(trained: dict, histories: np.ndarray, sc: StepConfig) -> dict[str, dict[str, list[float]]]:
    """ms per request: one user per call and `batch` users per call (call time / batch), every model
    in turn within each round."""
    rows = len(histories)
    for model, index, _ in trained.values():
        for i in range(sc.warmup_calls):
            _timed(model, index, histories[i % rows: i % rows + 1])
        _timed(model, index, histories[np.arange(sc.batch) % rows])
    times = {name: {"1": [], str(sc.batch): []} for name in trained}
    one_per_round = -(-sc.requests // sc.rounds)
    batch_per_round = -(-sc.batch_calls // sc.rounds)
    names = list(trained)
    for r in range(sc.rounds):
        # each round starts one model further along, so no model always follows the same neighbour
        for name in names[r % len(names):] + names[: r % len(names)]:
            model, index, _ = trained[name]
            for i in range(r * one_per_round, min((r + 1) * one_per_round, sc.requests)):
                times[name]["1"].append(_timed(model, index, histories[i % rows: i % rows + 1]))
            for c in range(r * batch_per_round, min((r + 1) * batch_per_round, sc.batch_calls)):
                users = (c * sc.batch + np.arange(sc.batch)) % rows
                times[name][str(sc.batch)].append(_timed(model, index, histories[users]) / sc.batch)
    return times


def summarise(times: dict[str, dict[str, list[float]]], reference: str = "single") -> dict:
    out = {}
    for name, by_size in times.items():
        out[name] = {}
        for size, ms in by_size.items():
            ref = float(np.median(times[reference][size])) if reference in times else float("nan")
            med = float(np.median(ms))
            out[name][size] = {"median_ms": med, "p95_ms": float(np.percentile(ms, 95)), "calls": len(ms),
                               "ratio_to_single": med / ref}
    return out


def run(sc: StepConfig, out: Path = RESULTS, data_dir: str | None = None) -> dict:
    torch.set_num_threads(sc.threads)
    set_threads(sc.threads)
    preset = sc.preset or DATASET_PRESETS.get(sc.dataset, "default")
    base = load_config(preset, [f"train.threads={sc.threads}", *BRIEF_TRAINING, *sc.overrides])
    inter = load_dataset(sc.dataset, data_dir)
    data = SequenceData.from_frames(inter.events, inter.items, base.data)
    histories = data.eval_set(2).histories
    load_before = float(open("/proc/loadavg").read().split()[0]) if platform.system() == "Linux" else -1.0
    t0 = time.perf_counter()
    trained = {name: train_briefly(name, base, data, sc.seed) for name in sc.models}
    if "gemirec" in trained and sc.gemirec_k:
        trained.update(fixed_variants(*trained["gemirec"], sc.gemirec_k))
    train_s = time.perf_counter() - t0
    stats = summarise(measure(trained, histories, sc))
    result = {"dataset": sc.dataset, "preset": preset, "n_items": data.n_items, "test_users": len(histories),
              "threads": sc.threads, "batch": sc.batch, "requests": sc.requests, "batch_calls": sc.batch_calls,
              "rounds": sc.rounds, "n": N, "command": sc.command, "overrides": [*BRIEF_TRAINING, *sc.overrides],
              "seed": sc.seed,
              "cpu": cpu_model(), "commit": _commit(), "load_before": load_before, "train_s": train_s,
              "created": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
              "models": {name: {**what, **stats[name]} for name, (_, _, what) in trained.items()}}
    out.mkdir(parents=True, exist_ok=True)
    (out / f"model-step-{sc.dataset}.json").write_text(json.dumps(result, indent=1))
    (out / f"model-step-{sc.dataset}.md").write_text("\n".join(table(result)) + "\n")
    return result


def table(r: dict) -> list[str]:
    b = str(r["batch"])
    lines = [f"# Model-step cost per request: {r['dataset']} ({r['n_items']} items)", "",
             f"Made by `{r['command']}` (commit {r['commit']}, "
             f"{r['cpu']}, {r['threads']} thread(s), load {r['load_before']:.2f} before).",
             "`model.recommend(histories, index, 50)` in one process, every model timed in interleaved rounds:",
             f"{r['requests']} one-user calls and {r['batch_calls']} calls of {b} users "
             f"(cycled over the {r['test_users']} test users' histories) per model, after warm-up calls.",
             "Each model trained 2 epochs (GemiRec: 1 warm-up epoch, then joint): the step's cost does not",
             "depend on how long the weights trained, only on the config and, for GemiRec, on what it chose on",
             "validation users after training (K and the merge options below). Compare ratios within the",
             "table; milliseconds depend on the machine.", "",
             f"| model | queries (K) | 1 user: median ms | p95 ms | ÷ single | per user in a batch of {b}: "
             "median ms | p95 ms | ÷ single |", "|---|---|---|---|---|---|---|---|"]
    for name, m in r["models"].items():
        one, many = m["1"], m[b]
        k = f"{m['K']} + u" if "stage" in m else str(m["K"])
        lines.append(f"| {name} | {k} | {one['median_ms']:.2f} | {one['p95_ms']:.2f} | "
                     f"{one['ratio_to_single']:.2f} | {many['median_ms']:.3f} | {many['p95_ms']:.3f} | "
                     f"{many['ratio_to_single']:.2f} |")
    g = r["models"].get("gemirec")
    if g is not None:
        lines += ["", f"`gemirec` as validation chose after training: stage {g['stage']}, K = {g['K']} interest "
                  f"queries plus the user vector u, merge {g['merge']} (u share {g['u_share']}, history blend "
                  f"{g['history_blend']}, family restriction {g['restrict_family']}), {g['levels']} level(s) of "
                  f"{g['codebook_size']} codes. The `gemirec K=…` rows are the same weights at fixed settings of",
                  "that validation grid (K, and the family restriction: each interest searched within its own",
                  "code family, or the whole catalogue), other options as chosen: the range a trained GemiRec's",
                  "request cost can take. The baselines' K is the preset's."]
    return lines


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    d = StepConfig()
    p.add_argument("--dataset", default=d.dataset)
    p.add_argument("--preset", default=None, help="config preset (default: the campaign's for the dataset)")
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--requests", type=int, default=d.requests)
    p.add_argument("--warmup-calls", type=int, default=d.warmup_calls)
    p.add_argument("--batch", type=int, default=d.batch)
    p.add_argument("--batch-calls", type=int, default=d.batch_calls)
    p.add_argument("--rounds", type=int, default=d.rounds)
    p.add_argument("--threads", type=int, default=d.threads)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--set", action="append", default=[], help="config override for every model")
    p.add_argument("--gemirec-k", default="4,8",
                   help="also time GemiRec at these K, family restriction on and off ('' = none)")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--out", type=Path, default=RESULTS)
    a = p.parse_args(argv)
    sc = StepConfig(a.dataset, a.preset, tuple(a.models.split(",")), a.requests, a.warmup_calls, a.batch,
                    a.batch_calls, a.rounds, a.threads, a.seed, tuple(a.set),
                    " ".join(["python -m benchmarks.model_step", *(argv if argv is not None else sys.argv[1:])]),
                    tuple(int(k) for k in a.gemirec_k.split(",") if k))
    result = run(sc, a.out, a.data_dir)
    print("\n".join(table(result)))


if __name__ == "__main__":
    main()
