"""What each model's table row chose among, and the per-epoch curves time to quality reads (issue #23).

A reviewer asks how many options each model was tuned over: GemiRec picks its post-training inference
settings on validation users (`model.gemirec.selection.settings_grid`) and its learning rate was picked
among cached runs, while the baselines' rows keep one preset. These helpers count, from the cache, the
runs of one model whose config differs from a row's only in learning rate or K (the grid of the
equal-budget campaign), so the count is read from what was run, never typed.
"""

from __future__ import annotations

import json

from benchmarks.cache_key import normalized_config

LR_FIELDS = (("train", "lr"), ("gemirec", "lr"))
K_FIELD = ("multi", "n_interests")
# fields that do not make a run another option: seed, thread count and device
RUN_FIELDS = (("train", "seed"), ("train", "threads"), ("train", "device"))


def effective_lr(config: dict) -> float:
    """The learning rate a run trained at: GemiRec's own `gemirec.lr` when set, else `train.lr`."""
    g = config.get("gemirec") or {}
    if config.get("model", "").startswith("gemirec") and g.get("lr"):
        return float(g["lr"])
    return float(config["train"]["lr"])


def grid_point(config: dict) -> tuple[float, int]:
    """(learning rate, K) of a run: the two axes of the equal-budget grid."""
    return effective_lr(config), int(config[K_FIELD[0]][K_FIELD[1]])


def identity(config: dict) -> str:
    """A run's config with the grid's axes (lr, K) and the run fields removed: runs that share it are
    options of one tuning choice."""

    raw = normalized_config(config)
    for section, name in LR_FIELDS + (K_FIELD,) + RUN_FIELDS:
        (raw.get(section) or {}).pop(name, None)
    return json.dumps(raw, sort_keys=True)


def post_training_options(config: dict) -> int:
    """How many inference settings a run chooses among on validation users after training (GemiRec's
    grid; 1 for the baselines and for a GemiRec whose merge was given by name)."""
    if not config.get("model", "").startswith("gemirec") or not config["gemirec"].get("select_on_validation", True):
        return 1
    from model.gemirec.selection import settings_grid

    return len(settings_grid(int(config[K_FIELD[0]][K_FIELD[1]])))


def variants(row_config: dict, records: list[dict]) -> list[tuple[float, int]]:
    """The (lr, K) grid points cached for `row_config`'s model and otherwise identical config."""
    want, model = identity(row_config), row_config["model"]
    return sorted({grid_point(r["config"]) for r in records
                   if r["config"]["model"] == model and identity(r["config"]) == want})


def keepable_curve(record: dict) -> list[list]:
    """[cumulative seconds, val R@50, keepable] per epoch of a cached run. GemiRec's warm-up epochs (no
    generator diagnostics logged) are the single-vector backbone and can never be its kept model."""
    gemirec = record["config"]["model"].startswith("gemirec")
    return [[round(h["seconds"], 3), h["val_recall@50"], (not gemirec) or "topk_hit" in h]
            for h in record.get("history") or [] if "seconds" in h]
