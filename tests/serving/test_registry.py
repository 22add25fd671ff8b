"""Model registry on a tmp BentoML home: versions, the gate, the production pointer (serving/registry.py)."""

import json

import pytest

from model.persistence.saved import ModelFolderError, load_model, sha256_file, verify_folder
from serving import registry


def fake_folder(path, val_recall: float):
    """A folder verify_folder accepts: manifest with metrics and the checksum of every listed file."""
    path.mkdir(parents=True)
    (path / "weights.pt").write_bytes(b"not really weights")
    (path / "config.json").write_text("{}")
    files = {name: sha256_file(path / name) for name in ("weights.pt", "config.json")}
    metrics = {"val": {"recall@50": val_recall}, "test": {"recall@50": val_recall / 2}}
    (path / "manifest.json").write_text(json.dumps({"metrics": metrics, "code_version": "abc1234",
                                                    "lineage": {"data_hash": "f00d"}, "files": files}))
    (path / "reference").mkdir()
    (path / "reference" / "reference.json").write_text("{}")
    return path


@pytest.fixture
def reg(tmp_path):
    return registry.Registry(tmp_path / "bentoml", name="gemirec-test")


def test_register_keeps_the_folder_intact_with_labels_and_metadata(reg, tmp_path):
    folder = fake_folder(tmp_path / "m1", 0.2)
    version = registry.register(reg, folder, {"model": "gemirec", "preset": "tiny"},
                                {"data_hash": "f00d", "config": {"model": "gemirec"}, "gate": {"x": None}})
    assert version.tag.startswith("gemirec-test:")
    assert verify_folder(version.path)["code_version"] == "abc1234"  # checksums still hold in the store
    assert (version.path / "reference" / "reference.json").exists()
    assert version.labels == {"model": "gemirec", "preset": "tiny"}
    assert version.metadata["metrics"]["val"]["recall@50"] == 0.2
    assert version.metadata["data_hash"] == "f00d" and version.metadata["code_version"] == "abc1234"
    assert version.val_recall == 0.2
    assert [v.tag for v in registry.versions(reg)] == [version.tag]


def test_versions_accumulate_and_production_is_a_pointer(reg, tmp_path):
    assert registry.versions(reg) == [] and registry.production(reg) is None
    first = registry.register(reg, fake_folder(tmp_path / "m1", 0.2), {}, {})
    registry.promote(reg, first.tag, "first")
    second = registry.register(reg, fake_folder(tmp_path / "m2", 0.1), {}, {})
    assert [v.tag for v in registry.versions(reg)] == [first.tag, second.tag]
    assert registry.production(reg).tag == first.tag  # registering alone promotes nothing
    registry.promote(reg, second.tag, "manual")
    assert registry.production(reg).tag == second.tag
    history = reg.pointer.with_name("gemirec-test.promotions.jsonl").read_text().splitlines()
    assert [json.loads(line)["tag"] for line in history] == [first.tag, second.tag]
    with pytest.raises(registry.RegistryError):
        registry.promote(reg, "gemirec-test:doesnotexist", "typo")


def test_gate():
    assert registry.gate(0.05, None, 0.0).promote  # the first model always promotes
    prod = registry.Version("m:1", None, "", {}, {"metrics": {"val": {"recall@50": 0.30}}})
    assert registry.gate(0.30, prod, 0.0).promote
    assert registry.gate(0.296, prod, 0.005).promote  # within tolerance
    held = registry.gate(0.29, prod, 0.005)
    assert not held.promote and held.production == 0.30 and held.production_tag == "m:1"
    assert "0.2900" in held.reason and "0.2950" in held.reason


def test_a_tampered_folder_is_refused_and_nothing_is_registered(reg, tmp_path):
    folder = fake_folder(tmp_path / "m1", 0.2)
    (folder / "weights.pt").write_bytes(b"tampered")
    with pytest.raises(ModelFolderError):
        registry.register(reg, folder, {}, {})
    assert registry.versions(reg) == []


def test_a_real_model_loads_from_the_registered_version(reg, tmp_path, tiny_model_folder):
    version = registry.register(reg, tiny_model_folder, {}, {})
    assert load_model(version.path).recommend([[1, 2, 3]], 5).ranked.shape == (1, 5)
