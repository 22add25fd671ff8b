"""The part of a run's config that names its cache record: what `benchmarks.run` and
`benchmarks.tuning` both compare, kept apart so that neither imports the other."""

import json

# config fields added after CACHE_VERSION 2: left out of the key while at their default, so that the runs
# cached before they existed stay valid (restrict_tolerance changes only the choice made after training:
# cached GemiRec runs were re-selected from their saved weights, `benchmarks.studies.backfill --reselect`)
_LATER_FIELDS = {"train": {"sampling": "native"},
                 "multi": {"routing_grad": "last", "mind_head": "residual", "readout_temperature": 0.0},
                 "gemirec": {"partition_exact_max": 50_000, "partition_sample": 4096, "mix_window": 1,
                             "warmup_patience": 0, "freeze_backbone": False, "history_blend": 0.0,
                             "restrict_tolerance": 0.015, "tf_positions": 0,
                             "lr": 0.0, "lr_decay": 1.0, "generator_lr_scale": 1.0,
                             "dict_prefit_steps": 0}}


def normalized_config(raw: dict) -> dict:
    """A run's config as the cache compares it: threads left out, later fields dropped while at their
    default, GemiRec's section dropped for the baselines (`raw` is `Config.to_dict()`; not modified)."""
    raw = json.loads(json.dumps(raw))
    # threads change only the last digits: a run pinned to a thread count is told apart by its file name
    # (`cached_record`), so that this key, shared with the ablation and the backfill, stays stable
    raw["train"].pop("threads", None)
    for section, fields in _LATER_FIELDS.items():
        for name, default in fields.items():
            if section in raw and raw[section].get(name) == default:
                raw[section].pop(name)
    if not raw["model"].startswith("gemirec"):
        raw.pop("gemirec", None)  # GemiRec's settings do not touch the baselines: keep their cached runs valid
    return raw
