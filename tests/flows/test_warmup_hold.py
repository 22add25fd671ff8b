"""A GemiRec that stops before its joint stage is flagged (manifest, train log) and the gate holds it."""

import logging

import pytest

from features.datasets import load_dataset
from flows.train_flow import hold_unfinished
from model.config import load_config
from model.persistence.saved import load_model
from model.training.pipeline import train_model
from serving.registry import gate


def train(tmp_path, overrides):
    inter = load_dataset("simulator-tiny")
    cfg = load_config("tiny", ["model=gemirec", "train.threads=1", *overrides])
    return load_model(train_model(inter.events, inter.items, cfg, tmp_path, progress=False).folder)


def test_a_run_stopped_in_warmup_is_flagged_and_held(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="model.training.pipeline"):
        loaded = train(tmp_path, ["train.max_epochs=1", "gemirec.warmup_epochs=3", "gemirec.min_warmup_epochs=3"])
    assert loaded.manifest["metrics"]["stage_reached"] == "warmup"
    assert any("stopped in its warm-up" in r.message for r in caplog.records)
    first = gate(loaded.manifest["metrics"]["val"]["recall@50"], None, 0.005)  # would promote: no production
    held = hold_unfinished(first, "warmup")
    assert first.promote and not held.promote and "warm-up" in held.reason and first.reason in held.reason


@pytest.mark.parametrize("stage", ["joint", None])  # None: a model without stages (a baseline)
def test_a_finished_run_keeps_the_gate_decision(stage):
    decision = gate(0.5, None, 0.005)
    assert hold_unfinished(decision, stage) == decision


def test_a_run_that_reached_the_joint_stage_says_so(tmp_path):
    loaded = train(tmp_path, ["train.max_epochs=2", "gemirec.warmup_epochs=1", "gemirec.min_warmup_epochs=1"])
    assert loaded.manifest["metrics"]["stage_reached"] == "joint"
