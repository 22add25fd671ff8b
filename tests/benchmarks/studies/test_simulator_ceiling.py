import json

import numpy as np

from benchmarks.studies import simulator_ceiling as sc
from features.datasets import SIMULATOR_CONFIGS, load_dataset
from features.simulator import build_world
from model.config import load_config
from model.evaluation import metrics as M
from model.sequences import SequenceData


def _tiny():
    inter = load_dataset("simulator-tiny")
    return SequenceData.from_frames(inter.events, inter.items, load_config("simulator").data)


def test_true_item_probabilities_follow_the_worlds_zipf_ranks():
    data = _tiny()
    world = build_world(SIMULATOR_CONFIGS["simulator-tiny"])
    p = sc.world_item_probs(data, world)
    per_topic = np.bincount(data.item_category[1:], weights=p[1:])
    assert np.all(per_topic <= 1 + 1e-9) and np.all(per_topic > 0.9)  # a few rare items never occur
    dense = {raw: i for i, raw in enumerate(data.item_ids) if i > 0}
    topic0 = [dense[r] for r in world.topic_items[world.item_topic[world.topic_items - 1] == 0] if r in dense]
    assert np.all(np.diff(p[topic0]) < 0)  # topic_items lists the most popular first


def test_the_reference_beats_popularity_and_writes_its_table(tmp_path):
    result = sc.main(["--dataset", "simulator-tiny", "--out", str(tmp_path)])
    data = _tiny()
    val = data.eval_set(1)
    popular = np.argsort(-data.item_popularity())[: sc.N][None].repeat(len(val), 0)
    pop_recall = M.recall_at(M.hits_matrix(popular, val.targets), val.targets, sc.N).mean()
    assert result["oracle"]["val_recall@50"] > pop_recall + 0.05
    assert result["oracle"]["decay"] in sc.DECAYS and result["oracle"]["adoption"] in sc.ADOPTION
    stored = json.loads((tmp_path / "simulator-tiny-ceiling.json").read_text())
    assert stored["oracle"]["test_recall@50"] == result["oracle"]["test_recall@50"]
    table = (tmp_path / "simulator-tiny-ceiling.md").read_text()
    assert f"{100 * result['oracle']['test_recall@50']:.2f} |" in table
