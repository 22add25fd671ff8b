from benchmarks.catalogue import catalogue_bench
from benchmarks.serve_bench import checks, report


def test_catalogue_bench_compares_every_index_kind_against_exact():
    rows = catalogue_bench([3000], dim=16, n_queries=40, k_queries=5)
    kinds = [r["index"] for r in rows]
    assert kinds[0] == "flat" and {"ivf", "ivfpq", "hnsw"} <= set(kinds)
    assert rows[0]["recall@50"] == 1.0 and rows[0]["speedup_vs_exact"] == 1.0
    for r in rows:
        assert 0.0 < r["recall@50"] <= 1.0 and r["search_ms_per_request"] > 0
    ivfpq = [r for r in rows if r["index"] == "ivfpq"]
    widest = max(ivfpq, key=lambda r: int(r["setting"].split()[1].split("/")[0]))
    assert widest["recall@50"] >= 0.9  # a sixth of the lists, re-scored exactly
    text = report({"tiny": False, "command": "x", "date": "d", "machine": "m", "k_queries": 5,
                   "catalogue": rows})
    assert "| 3,000 | ivfpq |" in text
    assert checks({"catalogue": rows}) == []  # the 1M bar is judged only at 1M items
