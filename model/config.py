"""Typed configuration: one `Config` flows from a preset file through every stage.

Presets live in `model/presets/<name>.toml`; each section maps onto one dataclass below. A preset may
name a `base` preset whose values it overrides. Command lines override single fields with
`section.field=value` strings (see `apply_overrides`).
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PRESET_DIR = Path(__file__).parent / "presets"


@dataclass(frozen=True)
class DataConfig:
    maxlen: int = 50  # T: the last `maxlen` items of a history are used
    split_seed: int = 2024  # fixed seed of the 8:1:1 user split (DESIGN §3)
    history_share: float = 0.8  # val/test users: first 80 % of the sequence is the history
    filter_history: bool = False  # ComiRec convention: history items are NOT removed from the ranking


@dataclass(frozen=True)
class BackboneConfig:
    dim: int = 64
    n_layers: int = 2
    n_heads: int = 2
    dropout: float = 0.2
    use_attributes: bool = True  # item tower adds the mean of attribute embeddings where a dataset has them


@dataclass(frozen=True)
class TrainConfig:
    batch_size: int = 128  # users per step (causal models see every position of each window)
    lr: float = 1e-3
    weight_decay: float = 0.0
    max_epochs: int = 30
    patience: int = 3  # epochs without validation Recall@50 improvement before stopping
    min_epochs: int = 2
    n_negatives: int = 1024  # shared uniform negatives per step, added to the in-batch targets
    temperature: float = 0.07
    normalize: bool = True  # cosine scores / temperature; the index then holds unit item vectors
    max_time_s: float = 600.0  # wall-clock budget for one fit; the best epoch so far is kept
    seed: int = 0
    device: str = "cpu"
    threads: int = 0  # 0 = leave torch's default
    eval_batch_users: int = 1024
    cut_reps_max: int = 10  # one-cut models: at most this many cuts per user in an epoch
    # "native" = how each model is meant to train (causal models: all positions; MIND/ComiRec: one cut per
    # user and step); "cut" forces one-cut sampling, e.g. YouTubeDNN as ComiRec's reference code trains it
    sampling: str = "native"


@dataclass(frozen=True)
class MultiInterestConfig:
    n_interests: int = 4  # K
    routing_iters: int = 3  # MIND / ComiRec-DR
    sa_hidden: int = 256  # ComiRec-SA attention width (4·d in the paper)
    # routing variants, for finding out why MIND trails YouTubeDNN here (benchmarks/results/mind-study.md):
    # "last" backpropagates through the last routing iteration only (ComiRec's code), "all" through every one
    routing_grad: str = "last"
    mind_head: str = "residual"  # MIND's ReLU layer on the capsules: residual | mlp (no skip) | none
    # training readout: 0 = the interest closest to the target (ComiRec's hard argmax); > 0 = MIND's
    # label-aware attention, a softmax over the K interests of cos(interest, target) / this temperature
    readout_temperature: float = 0.0


@dataclass(frozen=True)
class GemiRecConfig:
    n_levels: int = 1  # C
    codebook_size: int = 16  # M_c (same at every level)
    code_dim: int = 32  # d_q
    beta: float = 0.25
    warmup_epochs: int = 12  # at most this many towers-only epochs …
    min_warmup_epochs: int = 3  # … at least this many …
    warmup_tolerance: float = 0.02  # … ending early once validation R@50 gains less than 2 % relative
    # design choice (not from the paper): warmup_patience > 0 replaces the plateau rule above: the towers
    # train like the single-vector model until validation R@50 has not improved for this many epochs, and
    # the best warm-up weights are restored before k-means (warmup_epochs stays the cap)
    warmup_patience: int = 0
    # design choice (not from the paper): after the warm-up, keep the backbone (item tower and user
    # encoder) fixed and train only the dictionary, generator and interest queries on top of it
    freeze_backbone: bool = False
    # design choice (not from the paper): GemiRec's own Adam step size (0 = train.lr, the baselines' shared
    # one); the long-history presets set 2e-3, chosen on validation users (docs/model.md)
    lr: float = 0.0
    # × the step after each joint epoch without validation gain (1 = constant); 0.5 lost validation R@50
    # on ml-100k and the simulator (docs/model.md)
    lr_decay: float = 1.0
    # design choice (not from the paper): the generator starts from scratch at the first joint epoch while
    # the towers arrive warmed up; its Adam step is lr × this. 3 did not shorten the simulator's training
    # or raise its validation R@50 (docs/model.md), so every preset keeps 1
    generator_lr_scale: float = 1.0
    # design choice (not from the paper): Adam steps that fit the dictionary alone on the warm-up embeddings
    # right after k-means (0 = none; InterestDictionary.prefit).
    # 300 on the simulator: 0.18-0.24 of the items change code at the first refresh instead of 0.57-0.58,
    # a shorter run on 2 seeds of 3, but validation R@50 56.26 against 56.45: every preset keeps 0
    # (docs/model.md)
    dict_prefit_steps: int = 0
    lambda_q: float = 1.0
    lambda_g: float = 1.0
    lambda_mix: float = 1.0  # weight of -log Σ_k p_k p(target | q_k) through the inference path
    mix_positions: int = 512  # positions per step that train through the inference path
    tf_positions: int = 0  # positions per step for the teacher-forced MIRM loss (0 = every position)
    gen_layers: int = 2
    # W: train the generator on the codes of the next W items (weighted 1/w), so that its top-K covers the
    # near future the evaluation asks for (the last 20 % of a history), not only the next item.
    # design choice (not from the paper): W = 8 over W = 1 raised validation R@50 on ml-100k
    # (30.97 -> 32.06) and lastfm-s3rec (16.34 -> 17.06), seed 0; W = 16 was lower (31.21 on ml-100k)
    gen_window: int = 8
    # design choice (not from the paper): the inference-path mixture loss also scores the items 2..W steps
    # ahead (weighted 1/w): the K interests + u should cover the near future the evaluation asks for.
    # W = 8 over W = 1, validation R@50 at seed 0 (ablation rows base / W_mix=1, default inference):
    # ml-100k 32.55 vs 32.06, amazon-beauty-s3rec 20.57 vs 19.80
    mix_window: int = 8
    query_window: int = 1  # also teacher-force MIRM queries on the items 2..W steps ahead
    beam: int = 0  # 0 = K * 4
    merge: str = "mixture"  # mixture | quota | weighted | max
    u_share: float = 0.25  # mixture/quota: weight of the plain user vector u
    # design choice (not from the paper): interest weights ∝ p_gen^(1-β) · f^β, f = the share of the history's
    # items in each generated interest's level-1 code family: the generator predicts the NEXT interest,
    # while the evaluation's targets span the last 20 % of a history, where recurring interests come back
    history_blend: float = 0.0
    weighted_alpha: float = 1.0
    # design choice (not from the paper): interest k retrieves only items of its own level-1 code family,
    # so the K lists are distinct by construction (u stays unrestricted); validation recall was unchanged
    restrict_family: bool = True
    # validation choice: keep the restriction unless dropping it gains more than this (relative R@50);
    # retrieval.prefer_restricted says why
    restrict_tolerance: float = 0.015
    # mixture merge: each query's exact log-partition costs a (queries × catalogue) product; above
    # partition_exact_max items (and, in training's per-epoch validation, above 2 × partition_sample) it
    # is estimated from the retrieved top list plus partition_sample random items
    # (retrieval.log_partition_estimate)
    partition_exact_max: int = 50_000
    partition_sample: int = 4096
    restart_threshold: float = 0.1  # restart codes used below this share of the mean usage
    select_on_validation: bool = True  # pick merge, u share and K on validation users after training
    interest_source: str = "generator"  # generator | history (the no-MIPDM ablation) | oracle


@dataclass(frozen=True)
class Config:
    model: str = "single"
    data: DataConfig = field(default_factory=DataConfig)
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    multi: MultiInterestConfig = field(default_factory=MultiInterestConfig)
    gemirec: GemiRecConfig = field(default_factory=GemiRecConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Config:
        sections = {f.name: f.type for f in dataclasses.fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, value in raw.items():
            if key not in sections:
                raise ValueError(f"unknown config section {key!r}; known: {sorted(sections)}")
            if isinstance(value, dict):
                section_cls = _SECTION_TYPES[key]
                _check_fields(section_cls, value, key)
                kwargs[key] = section_cls(**{k: _coerce(section_cls, k, v) for k, v in value.items()})
            else:
                kwargs[key] = value
        return cls(**kwargs)


_SECTION_TYPES = {
    "data": DataConfig,
    "backbone": BackboneConfig,
    "train": TrainConfig,
    "multi": MultiInterestConfig,
    "gemirec": GemiRecConfig,
}


def _check_fields(section_cls: type, values: dict[str, Any], name: str) -> None:
    known = {f.name for f in dataclasses.fields(section_cls)}
    unknown = set(values) - known
    if unknown:
        raise ValueError(f"unknown field(s) {sorted(unknown)} in [{name}]; known: {sorted(known)}")


def _coerce(section_cls: type, key: str, value: Any) -> Any:
    """Cast override strings to the field's declared type (bool, int, float, str)."""
    kind = {f.name: f.type for f in dataclasses.fields(section_cls)}[key]
    if not isinstance(value, str) or kind == "str":
        return value
    if kind == "bool":
        if value.lower() in {"1", "true", "yes"}:
            return True
        if value.lower() in {"0", "false", "no"}:
            return False
        raise ValueError(f"{key}: expected a boolean, got {value!r}")
    if kind == "int":
        return int(value)
    if kind == "float":
        return float(value)
    return value


def _merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _read_preset(name: str) -> dict[str, Any]:
    path = Path(name) if name.endswith(".toml") else PRESET_DIR / f"{name}.toml"
    if not path.exists():
        known = sorted(p.stem for p in PRESET_DIR.glob("*.toml"))
        raise ValueError(f"preset {name!r} not found (looked for {path}); known presets: {known}")
    raw = tomllib.loads(path.read_text())
    base = raw.pop("base", None)
    return _merge(_read_preset(base), raw) if base else raw


def apply_overrides(raw: dict[str, Any], overrides: list[str] | None) -> dict[str, Any]:
    """`["train.lr=0.003", "model=mind"]` -> nested dict updates."""
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in raw.items()}
    for item in overrides or []:
        if "=" not in item:
            raise ValueError(f"override {item!r} must look like section.field=value")
        key, value = item.split("=", 1)
        if "." in key:
            section, name = key.split(".", 1)
            out.setdefault(section, {})[name] = value
        else:
            out[key] = value
    return out


def load_config(preset: str = "default", overrides: list[str] | None = None) -> Config:
    return Config.from_dict(apply_overrides(_read_preset(preset), overrides))


def replace(cfg: Config, **sections: dict[str, Any]) -> Config:
    """Copy `cfg` with some fields of some sections changed: replace(cfg, train={"seed": 1})."""
    changes: dict[str, Any] = {}
    for name, values in sections.items():
        if isinstance(values, dict):
            changes[name] = dataclasses.replace(getattr(cfg, name), **values)
        else:
            changes[name] = values
    return dataclasses.replace(cfg, **changes)
