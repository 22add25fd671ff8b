"""Data-parallel training (model/training/distributed.py): torchrun with 2 gloo CPU processes against 1 process."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from model.training import distributed_train
from model.training.distributed import DataParallel

# Fixed-length runs: 3 epochs, no early stopping, one torch thread per process. The global batch is
# train.batch_size (64) in both runs; the 2-process run steps on 32 users per rank.
SETTINGS = ["--dataset", "simulator-tiny", "--preset", "tiny", "--model", "single",
            "--set", "train.max_epochs=3", "--set", "train.patience=100", "--set", "train.threads=1"]

# Final-epoch training loss, 2 processes vs 1, may differ by this much. Measured on simulator-tiny, seeds
# 0-3: the 2-process loss is 0.07-0.10 lower for the same seed, because each rank's in-batch negatives
# come from its 32 users instead of 64 (a smaller softmax, model/losses.py); across seeds 0-5 the
# 1-process final loss alone spreads 10.32-10.65 (std 0.13). 0.3 (3 %) covers both; a run whose ranks
# did not learn stays near the first epoch's 11.6 and fails it, and replicas that drifted apart stop
# the 2-process run itself (ReplicasDiverged).
LOSS_TOLERANCE = 0.3


def test_shards_are_disjoint_equal_and_cover_the_epoch(tiny_data):
    for mode in ("positions", "cut"):
        everyone = tiny_data.training_users(mode)
        for world in (2, 3):
            shards = [DataParallel(r, world).epoch_order(tiny_data, mode, 4, 0, 10)[0] for r in range(world)]
            assert len({len(s) for s in shards}) == 1  # same number of steps on every rank
            assert np.array_equal(np.unique(np.concatenate(shards)), np.unique(everyone))
            padding = sum(len(s) for s in shards) - len(everyone)
            assert 0 <= padding < world
            if mode == "positions":  # each user once, so shards overlap only in the padding
                assert sum(len(set(a) & set(b)) for i, a in enumerate(shards) for b in shards[i + 1:]) \
                    <= padding
    again = DataParallel(1, 2).epoch_order(tiny_data, "positions", 4, 0, 10)[0]
    assert np.array_equal(again, DataParallel(1, 2).epoch_order(tiny_data, "positions", 4, 0, 10)[0])
    other_epoch = DataParallel(1, 2).epoch_order(tiny_data, "positions", 5, 0, 10)[0]
    assert not np.array_equal(again, other_epoch)


def test_global_batch_must_split_evenly():
    assert DataParallel(0, 2).local_batch_size(64) == 32
    with pytest.raises(ValueError, match="global batch"):
        DataParallel(0, 3).local_batch_size(64)


def test_two_processes_train_like_one(tmp_path, monkeypatch):
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
         "-m", "model.training.distributed_train", *SETTINGS, "--out", str(tmp_path / "two")],
        env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    distributed_train.main([*SETTINGS, "--out", str(tmp_path / "one")])  # not under torchrun: one process

    two = json.loads((tmp_path / "two" / "run.json").read_text())
    one = json.loads((tmp_path / "one" / "run.json").read_text())
    assert (two["world_size"], one["world_size"]) == (2, 1)
    assert two["epochs"] == one["epochs"] == 3
    assert (tmp_path / "two" / "model" / "manifest.json").exists()
    assert not (tmp_path / "two" / "checkpoint").exists()  # rank 0 finished and cleaned up
    losses = [row["loss"] for row in json.loads((tmp_path / "two" / "history.json").read_text())]
    assert losses[-1] < losses[0] - 2 * LOSS_TOLERANCE  # it learned
    assert abs(two["final_train_loss"] - one["final_train_loss"]) <= LOSS_TOLERANCE
    assert two["metrics"]["test"]["recall@50"] > 0


def test_folder_input_trains_exactly_like_the_dataset_input(tmp_path, monkeypatch):
    """--folder (a saved training set, read by SequenceData.from_parquet) is the same data as --dataset."""
    from features.datasets import load_dataset

    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    load_dataset("simulator-tiny").save(tmp_path / "set")
    short = [*SETTINGS[2:], "--set", "train.max_epochs=1"]
    distributed_train.main(["--dataset", "simulator-tiny", *short, "--out", str(tmp_path / "by-name")])
    distributed_train.main(["--folder", str(tmp_path / "set"), *short, "--out", str(tmp_path / "by-folder")])
    by_name, by_folder = (json.loads((tmp_path / d / "run.json").read_text()) for d in ("by-name", "by-folder"))
    assert by_folder["final_train_loss"] == pytest.approx(by_name["final_train_loss"], abs=1e-6)
    assert by_folder["metrics"]["test"] == pytest.approx(by_name["metrics"]["test"], abs=1e-9)
