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


def test_the_readme_results_table_is_a_fresh_rendering():
    """README.md's table between the markers is what `python -m benchmarks.summary` writes now."""
    text = summary.README.read_text()
    assert summary.README_START in text and summary.README_END in text
    assert summary.render_readme(text) == text, "README results table is stale: run python -m benchmarks.summary"
    assert len(summary.readme_table()) >= 3  # header, rule and at least one dataset


def test_render_readme_replaces_only_the_block_between_the_markers():
    text = f"before\n{summary.README_START}\n| old | table |\n{summary.README_END}\nafter\n"
    out = summary.render_readme(text)
    assert out.startswith(f"before\n{summary.README_START}\n") and out.endswith(f"{summary.README_END}\nafter\n")
    assert "| old | table |" not in out


def test_readme_is_at_most_8000_bytes():
    assert len(summary.README.read_bytes()) <= 8000
