"""Streaming CSV ingest (features/stream_ingest.py): canonical order, malformed rows counted, chunked."""

import json

import pandas as pd

from features.events import Interactions
from features.simulator import scaled_config
from features.stream_ingest import ingest_csv

CSV = """uid,iid,ts,extra
2,20,300,a
1,10,200,b
x,11,100,c
1,12,100,d
2,21,100,e
1,13,,f
2,22,300,g
3,-5,100,h
1,14,100,i,too,many
"""


def test_rows_are_validated_in_chunks_and_sorted_canonically(tmp_path):
    (tmp_path / "log.csv").write_text(CSV)
    report = ingest_csv(tmp_path / "log.csv", tmp_path / "out", "uid", "iid", "ts", chunk_bytes=40)
    assert (report.n_rows, report.n_valid, report.n_malformed) == (9, 5, 4)
    assert "data row 3: x 11 100 (bad user_id)" in report.malformed_examples
    assert "1,14,100,i,too,many (wrong number of fields)" in report.malformed_examples
    data = Interactions.load(tmp_path / "out")
    # by user, then time; user 2's two events at 300 s keep their source order (20 before 22)
    assert data.events["user_id"].tolist() == [1, 1, 2, 2, 2]
    assert data.events["item_id"].tolist() == [12, 10, 21, 20, 22]
    assert data.items["item_id"].tolist() == [10, 12, 20, 21, 22]
    assert json.loads((tmp_path / "out" / "ingest_report.json").read_text())["n_malformed"] == 4
    assert not (tmp_path / "out" / "unsorted.parquet").exists()


def test_scaled_simulator_grows_users_items_and_topics():
    small, large = scaled_config(100_000), scaled_config(10_000_000)
    assert large.n_items >= 200_000 and large.n_users == 100 * small.n_users
    assert large.n_topics > small.n_topics
    assert pd.Series([small.mean_length, large.mean_length]).nunique() == 1
