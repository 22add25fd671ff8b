import json

from benchmarks import model_step


def test_every_model_gets_a_per_request_time_and_a_ratio_to_the_single_vector(tmp_path):
    args = ["--dataset", "simulator-tiny", "--preset", "tiny", "--requests", "6", "--warmup-calls", "2",
            "--batch", "8", "--batch-calls", "2", "--rounds", "2", "--out", str(tmp_path)]
    model_step.main(args)
    result = json.loads((tmp_path / "model-step-simulator-tiny.json").read_text())
    variants = ["gemirec K=4 restricted", "gemirec K=4 unrestricted", "gemirec K=8 restricted",
                "gemirec K=8 unrestricted"]
    assert list(result["models"]) == model_step.MODELS + variants
    for m in result["models"].values():
        for size, calls in (("1", 6), ("8", 2)):
            assert m[size]["calls"] == calls
            assert 0 < m[size]["median_ms"] <= m[size]["p95_ms"]
            ratio = m[size]["median_ms"] / result["models"]["single"][size]["median_ms"]
            assert abs(m[size]["ratio_to_single"] - ratio) < 1e-9
    assert result["models"]["single"]["1"]["ratio_to_single"] == 1.0
    assert result["models"]["comirec-sa"]["K"] == 4 and result["models"]["single"]["K"] == 1
    g = result["models"]["gemirec"]
    assert g["stage"] == "joint"  # the dictionary and the generator ran in the timed requests
    fixed = result["models"]["gemirec K=8 unrestricted"]
    assert fixed["K"] == 8 and fixed["restrict_family"] is False and not fixed["selected_on_validation"]
    assert result["models"]["gemirec K=4 restricted"]["restrict_family"] is True
    md = (tmp_path / "model-step-simulator-tiny.md").read_text()
    assert f"| gemirec | {g['K']} + u |" in md and "--preset tiny" in md


def test_the_summary_divides_by_the_single_vectors_median():
    times = {"single": {"1": [1.0, 2.0, 3.0]}, "gemirec": {"1": [4.0, 6.0, 100.0]}}
    s = model_step.summarise(times)
    assert s["gemirec"]["1"]["median_ms"] == 6.0 and s["gemirec"]["1"]["ratio_to_single"] == 3.0
    assert s["gemirec"]["1"]["p95_ms"] > 6.0
