"""Add per-user test Recall@50 to cached campaign runs made before the records kept it.

    python -m benchmarks.studies.backfill --dataset ml-100k --models single,gemirec

The paired comparison in `benchmarks/summary.py` needs every model's R@50 per test user.
- GemiRec: the campaign saved its weights, so they are loaded and re-scored with the settings it chose on
  validation users. The per-user results are written only if the re-scored test R@50 equals the cached
  one (to 1e-9); a mismatch is reported and the record is left as it was.
- Other models keep no weights, so the run is redone with the record's own config, exactly what
  `benchmarks.run --force` does (the same code path). The old and new R@50 are both printed: training is
  seeded, so they agree unless the model's code changed since the record was made.
With `--reselect`, every cached GemiRec run whose weights are saved has its inference settings chosen
again on validation users with the current rule (`GemiRec.after_fit`) and its validation and test
results recomputed from the weights by the current retrieval code (training is not redone). Where
anything changed, the record is rewritten and keeps its first choice and test results under
`reselected`; otherwise it is left as it was.
The tables are rebuilt afterwards (`python -m benchmarks.run --dataset <d> --models <m>` with the same
seeds reads everything from the cache).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from benchmarks.run import (
    CACHE,
    CACHE_VERSION,
    _latest_per_label,
    console,
    run_one,
    weights_path,
)
from features.datasets import load_dataset
from model.config import Config
from model.evaluation.evaluate import bootstrap_ci, build_index, evaluate
from model.sequences import SequenceData
from model.training.train import make_model


def rescore_gemirec(dataset: str, data: SequenceData, record: dict, key: str) -> list[float] | None:
    selected = record.get("selected") or {}
    model = _saved_mixture_model(dataset, data, record, key, need_choice=False)
    if model is None:
        return None
    if selected:
        model.apply_choice({"n_interests": selected["K"], "u_share": selected["u_share"],
                             "history_blend": selected.get("history_blend", 0.0),
                             "restrict_family": selected.get("restrict_family", True)})
    model.eval()
    test = evaluate(model, data, 2, index=build_index(model), per_user=True)
    cached, now = record["test"]["recall@50"], test.metrics["recall@50"]
    if abs(cached - now) > 1e-9:
        console.print(f"  [red]re-scored R@50 {100 * now:.4f} != cached {100 * cached:.4f}: left alone[/]")
        return None
    return [round(float(x), 6) for x in test.per_user["recall@50"]]


def _saved_mixture_model(dataset: str, data: SequenceData, record: dict, key: str, need_choice: bool):
    """The run's saved model, or None (said why) when it has no weights, chose a non-mixture merge, or
    (need_choice) recorded no validation choice to make again."""
    selected = record.get("selected") or {}
    model = load_gemirec(dataset, data, record, key)
    if model is None or (need_choice and not selected) or selected.get("merge", "mixture") != "mixture":
        console.print("  no weights, or no mixture choice to redo: left alone")
        return None
    return model


def load_gemirec(dataset: str, data: SequenceData, record: dict, key: str):
    path = weights_path(dataset, record["seed"], key)
    if not path.exists():
        return None
    model = make_model(Config.from_dict(record["config"]), data)
    model.load_state_dict(torch.load(path, weights_only=True)["state"])
    return model


def reselect_gemirec(dataset: str, data: SequenceData, record: dict, key: str) -> dict | None:
    """The record with its validation choice made again and its results recomputed by the current code
    from the saved weights, or None when nothing changed."""
    from model.gemirec.diagnostics import next_interest_recovery

    model = _saved_mixture_model(dataset, data, record, key, need_choice=True)
    if model is None:
        return None
    old = record["selected"]
    model.after_fit(data)
    model.eval()
    new = model.selected
    same = all(new[k] == old.get(k, d) for k, d in
               (("K", None), ("u_share", None), ("history_blend", 0.0), ("restrict_family", True)))
    index = build_index(model)
    val = evaluate(model, data, 1, index=index)
    test = evaluate(model, data, 2, index=index, per_user=True)
    before, after = record["test"], test.metrics
    unchanged = same and all(abs(after[k] - before.get(k, float("nan"))) <= 1e-9 for k in after)
    console.print(f"  {_describe(old)} -> {_describe(new)}: val R@50 of the choice "
                  f"{100 * old.get('val_recall@50', float('nan')):.4f} -> {100 * new['val_recall@50']:.4f}; "
                  f"test R@50 {100 * before['recall@50']:.4f} -> {100 * after['recall@50']:.4f}, "
                  f"unique {100 * before.get('unique_ratio@50', 0):.1f} -> "
                  f"{100 * after.get('unique_ratio@50', 0):.1f}"
                  + ("  (unchanged)" if unchanged else ""))
    if unchanged:
        return None
    lo, hi = bootstrap_ci(test.per_user["recall@50"])
    diagnostics = dict(record.get("diagnostics") or {})
    diagnostics.update(next_interest_recovery(model, data, 2))
    first = record.get("reselected") or {"previous": old, "previous_test": before}  # keep the original
    return record | {
        "val": val.metrics, "test": after, "test_users": test.n_users, "test_recall@50_ci95": [lo, hi],
        "test_per_user_recall@50": [round(float(x), 6) for x in test.per_user["recall@50"]],
        "diagnostics": diagnostics, "selected": new,
        "reselected": {"previous": first["previous"], "previous_test": first.get("previous_test"),
                       "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                       "code": "restrict_tolerance="
                               f"{model.cfg.gemirec.restrict_tolerance}, exact per-family search"},
    }


def _describe(sel: dict) -> str:
    return (f"K={sel['K']} u={sel['u_share']} blend={sel.get('history_blend', 0.0)} "
            f"restrict={sel.get('restrict_family', True)}")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", required=True)
    p.add_argument("--models", required=True, help="comma list of campaign labels, e.g. single,gemirec")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--reselect", action="store_true",
                   help="choose GemiRec's inference settings again with the current validation rule")
    args = p.parse_args(argv)
    files = sorted((CACHE / args.dataset).glob("*.json"))
    if not files:
        raise SystemExit(f"no cached runs under {CACHE / args.dataset}")
    records = [json.loads(f.read_text()) | {"_file": str(f)} for f in files]
    inter = load_dataset(args.dataset, args.data_dir)
    data = SequenceData.from_frames(inter.events, inter.items, Config.from_dict(records[0]["config"]).data)
    records = [r for r in records if r["data_fingerprint"] == data.fingerprint()
               and r.get("cache_version") == CACHE_VERSION]
    labels = args.models.split(",")
    for rec in sorted(_latest_per_label(records), key=lambda r: (r["label"], r["seed"])):
        if args.reselect:  # every GemiRec run of the labels asked for
            wanted = rec["label"] in labels and rec["model"] == "gemirec"
        else:  # runs of the labels asked for that have no per-user results yet
            wanted = rec["label"] in labels and rec.get("test_per_user_recall@50") is None
        if not wanted:
            continue
        path = Path(rec.pop("_file"))
        key = path.stem.rsplit("-", 1)[1]
        console.print(f"{args.dataset} {rec['label']} seed {rec['seed']} ({path.name})")
        if args.reselect:
            updated = reselect_gemirec(args.dataset, data, rec, key)
            if updated is not None:
                path.write_text(json.dumps(updated, indent=1))
        elif rec["model"] == "gemirec":
            per_user = rescore_gemirec(args.dataset, data, rec, key)
            if per_user is not None:
                rec["test_per_user_recall@50"] = per_user
                path.write_text(json.dumps(rec, indent=1))
                console.print("  re-scored from its weights: R@50 equals the cached run's; per-user added")
        else:
            new = run_one(args.dataset, data, Config.from_dict(rec["config"]), rec["label"], force=True)
            console.print(f"  retrained: R@50 {100 * new['test']['recall@50']:.4f} "
                          f"(cached {100 * rec['test']['recall@50']:.4f})")


if __name__ == "__main__":
    main()
