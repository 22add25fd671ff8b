import json

from benchmarks import summary


def _entry(val: list[float]) -> dict:
    return {"seeds": [0, 1], "test": {"recall@50": [0.1, 0.1]}, "val_recall@50": val}


def test_validation_ratios_use_each_models_validation_means(tmp_path, monkeypatch):
    table = {"single": _entry([0.20, 0.22]), "comirec-sa": _entry([0.18, 0.20]), "mind": _entry([0.10, 0.10]),
             "mostpop": _entry([None, None]), "gemirec": _entry([0.23, 0.23])}
    (tmp_path / "ml-100k.json").write_text(json.dumps(table))
    monkeypatch.setattr(summary, "RESULTS", tmp_path)
    rows = [r for r in summary._validation() if r.startswith("| ml-100k")]
    # 0.23 / 0.19 against the best multi-interest model, 0.23 / 0.21 against single (the best of all)
    assert rows == ["| ml-100k | 1.211 (comirec-sa) | 1.095 | 1.095 (single) |"]


def test_the_ceiling_section_is_absent_until_the_reference_has_run(tmp_path, monkeypatch):
    monkeypatch.setattr(summary, "RESULTS", tmp_path)
    assert summary._ceiling() == []
