import numpy as np
import pandas as pd
import pytest

from features import datasets, readers
from features.datasets import data_available, default_data_dir, detect_format, load_dataset, load_path
from features.events import IngestError, Interactions, validate_events


def _sequences(data: Interactions) -> dict[int, list[int]]:
    return {int(u): g["item_id"].tolist() for u, g in data.events.groupby("user_id", sort=True)}


def _assert_canonical(data: Interactions) -> None:
    events = data.events
    assert list(events.columns) == ["user_id", "item_id", "event_timestamp"]
    assert events["user_id"].dtype == np.int64 and events["item_id"].dtype == np.int64
    assert str(events["event_timestamp"].dtype) == "datetime64[ns, UTC]"
    keys = list(zip(events["user_id"], events["event_timestamp"]))
    assert keys == sorted(keys)
    assert set(events["item_id"]) <= set(data.items["item_id"])
    assert data.report.n_valid == len(events)


def test_pairs_keep_file_order_and_count_bad_lines(write):
    path = write("Video.txt", "1 10\n1 11\n2 x\n3 4 5\n2 12\n\n1 9\n")
    data = readers.read_pairs(path)
    _assert_canonical(data)
    report = data.report
    assert (report.n_rows, report.n_valid, report.n_malformed) == (6, 4, 2)
    assert report.malformed_examples[0] == "line 3: 2 x (non-integer id)"
    assert report.malformed_examples[1].startswith("line 4: 3 4 5 (expected")
    assert _sequences(data) == {1: [10, 11, 9], 2: [12]}
    assert report.timestamps_derived and report.n_users == 2 and report.n_items == 4


def test_gz_is_transparent(write):
    plain = readers.read_pairs(write("a.txt", "1 10\n1 11\n2 12\n"))
    zipped = readers.read_pairs(write("b.txt.gz", "1 10\n1 11\n2 12\n"))
    assert zipped.data_hash() == plain.data_hash()
    assert readers.read_pairs(zipped.report.source[:-3]).data_hash() == plain.data_hash()


def test_user_sequences_with_attributes(write):
    path = write("Beauty.txt", "1 5 6 7\n2 6 x\n3\n2 8 5\n")
    write("Beauty_item2attributes.json", '{"5": [3, 1], "6": [2], "7": [], "9": [4, 4]}')
    data = load_path(path)
    _assert_canonical(data)
    assert data.report.format == "user-sequences"
    assert (data.report.n_rows, data.report.n_malformed, data.report.n_valid) == (4, 2, 5)
    assert _sequences(data) == {1: [5, 6, 7], 2: [8, 5]}
    items = data.items.set_index("item_id")
    assert items.loc[5, "category"] == 3 and items.loc[5, "attributes"] == [3, 1]
    assert items.loc[7, "category"] == -1 and items.loc[8, "category"] == -1
    assert 9 in items.index  # known items stay even without events
    assert data.report.n_items == 4


def test_sessions_follow_global_file_order(write):
    train = write("train_sessions.txt", "1 2\n3 4 5\n")
    test = write("test_sessions.txt.gz", "2 3\n4 a\n6\n")
    data = readers.read_sessions([train, test])
    _assert_canonical(data)
    assert _sequences(data) == {1: [1, 2], 2: [3, 4, 5], 3: [2, 3], 4: [6]}
    assert data.report.n_malformed == 1 and "test_sessions.txt" in data.report.malformed_examples[0]
    first = data.events.groupby("user_id")["event_timestamp"].agg(["min", "max"])
    assert (first["min"].iloc[1:].to_numpy() > first["max"].iloc[:-1].to_numpy()).all()


def test_user_sets_merge_files_and_say_order_is_arbitrary(write):
    train = write("train.txt", "0 0 1 2\n1 3 4\n")
    test = write("test.txt", "0 5\n1 0\n")
    data = readers.read_user_sets([train, test])
    assert _sequences(data) == {0: [0, 1, 2, 5], 1: [3, 4, 0]}
    shuffled = readers.read_user_sets([train, test], shuffle_seed=0)
    assert {u: sorted(s[:-1]) for u, s in _sequences(shuffled).items()} == {0: [0, 1, 2], 1: [3, 4]}
    assert _sequences(shuffled)[0][-1] == 5  # train before test survives the shuffle
    assert any("NO order" in note for note in data.report.notes)


INTER = (
    "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
    "1\t10\t3\t100\n"
    "1\t11\t4\t50\n"
    "2\t10\t5\t70\t99\n"  # too many fields
    "2\tabc\t5\t70\n"
    "2\t12\t5\tnot-a-time\n"
    "1\t12\t2\t50\n"  # tie with (1, 11): source order kept
    "3\t\t1\t10\n"  # missing item
)
ITEMS = "item_id:token\tmovie_title:token_seq\tclass:token_seq\n10\tA\tDrama Action\n11\tB\tComedy\n"


def test_recbole_atomic_with_items_and_malformed_rows(write):
    inter = write("ml.inter", INTER)
    write("ml.item.gz", ITEMS)
    data = load_path(inter)
    _assert_canonical(data)
    report = data.report
    assert report.format == "recbole-atomic" and not report.timestamps_derived
    assert (report.n_rows, report.n_valid, report.n_malformed) == (7, 3, 4)
    joined = " | ".join(report.malformed_examples)
    assert "line 4:" in joined and "wrong number of fields" in joined
    assert "line 5: 2\tabc\t5\t70 (bad item_id)" in joined
    assert "line 6:" in joined and "bad timestamp" in joined
    assert "line 8:" in joined
    assert _sequences(data) == {1: [11, 12, 10]}
    assert data.events["event_timestamp"].iloc[0] == pd.Timestamp(50, unit="s", tz="UTC")
    items = data.items.set_index("item_id")
    # genre ids are alphabetical: Action=0, Comedy=1, Drama=2; category = the first listed genre
    assert items.loc[10, "category"] == 2 and items.loc[10, "attributes"] == [2, 0]
    assert items.loc[12, "category"] == -1


def test_recbole_bad_header_names_file_and_expectation(write):
    path = write("ml-100k.inter", "user\titem\n1\t2\n")
    with pytest.raises(
        IngestError, match=r"ml-100k.inter: expected a RecBole atomic header like 'user_id:token"
    ):
        readers.read_recbole_atomic(path)


def test_missing_file_names_the_file(tmp_path):
    with pytest.raises(IngestError, match="nothing.txt: file not found"):
        readers.read_pairs(tmp_path / "nothing.txt")
    with pytest.raises(IngestError, match="nothing.csv"):
        load_path(tmp_path / "nothing.csv")


def test_unrecognised_format(write):
    path = write("notes.txt", "hello world\nthis is prose\n")
    with pytest.raises(IngestError, match=r"notes.txt: unrecognised format; expected"):
        load_path(path)
    with pytest.raises(IngestError, match="unknown format 'xml'"):
        load_path(path, format="xml")
    with pytest.raises(IngestError, match=r"notes.txt: expected 'user item'"):
        readers.read_pairs(path)


def test_table_with_dates_and_custom_columns(write):
    text = (
        "uid,product,ts,extra\n7,1,2024-01-02T00:00:00Z,a\n7,2,2024-01-01,b\n"
        "8,x,2024-01-01,c\n8,3,soon,d\n9,4\n"
    )
    data = load_path(write("mine.csv", text), user_col="uid", item_col="product", time_col="ts")
    _assert_canonical(data)
    assert data.report.format == "table"
    assert (data.report.n_rows, data.report.n_valid, data.report.n_malformed) == (5, 2, 3)
    assert _sequences(data) == {7: [2, 1]}
    assert data.report.malformed_examples[0] == "line 4: 8,x,2024-01-01,c (bad item_id)"
    with pytest.raises(IngestError, match=r"mine.csv: expected a user column 'user'"):
        load_path(write("mine.csv", text), user_col="user")


def test_table_without_time_uses_order_columns(write):
    text = (
        ",order_id,user_id,order_number,product_id,add_to_cart_order\n"
        "0,1,5,2,30,1.0\n0,1,5,1,20,2.0\n0,1,5,1,10,1.0\n0,2,6,1,40,\n0,2,6,1,41,1.0\n"
    )
    data = readers.read_table(
        write("df_sample.csv.gz", text),
        "user_id",
        "product_id",
        order_cols=("order_number", "add_to_cart_order"),
        derive_time=True,
    )
    assert _sequences(data) == {5: [10, 20, 30], 6: [41]}
    assert data.report.timestamps_derived and data.report.n_malformed == 1
    assert "bad order value" in data.report.malformed_examples[0]
    pairs = load_path(write("pairs.csv", "user_id,movie_id\n1,5\n1,3\n2,5\n"))
    assert _sequences(pairs) == {1: [5, 3], 2: [5]} and pairs.report.timestamps_derived


def test_parquet_table(tmp_path):
    frame = pd.DataFrame({"user_id": [1, 1, 2], "item_id": [3, 4, 5], "timestamp": [20, 10, 5]})
    frame.to_parquet(tmp_path / "events.parquet")
    data = load_path(tmp_path / "events.parquet")
    assert _sequences(data) == {1: [4, 3], 2: [5]}


def test_validate_events_on_generic_table():
    frame = pd.DataFrame(
        {
            "user_id": [1, None, "3", 4.5, 5],
            "item_id": ["10", 11, 12, 13, -1],
            "event_timestamp": ["2024-01-01", 0, "garbage", 1, 2],
        }
    )
    clean, n_bad, examples = validate_events(frame)
    assert n_bad == 4 and len(clean) == 1 and len(examples) == 4
    assert clean["item_id"].tolist() == [10] and examples[1].endswith("(bad timestamp)")


def test_save_load_round_trip_and_hash(write, tmp_path):
    data = load_path(write("ml.inter", INTER))
    data.save(tmp_path / "out")
    back = Interactions.load(tmp_path / "out")
    pd.testing.assert_frame_equal(back.events, data.events)
    pd.testing.assert_frame_equal(back.items, data.items)
    assert back.report == data.report
    assert back.data_hash() == data.data_hash() == load_path(write("ml.inter", INTER)).data_hash()


def test_detect_format(write):
    assert detect_format(write("x.inter", INTER)) == "recbole-atomic"
    assert detect_format(write("v.txt", "1 2\n1 3\n")) == "pairs"
    assert detect_format(write("s.txt", "1 2 3\n2 4\n")) == "user-sequences"
    assert detect_format(write("train_sessions.txt", "1 2 3\n")) == "sessions"
    assert detect_format(write("t.tsv", "a\tb\n")) == "table"


def test_dataset_registry_errors(tmp_path, monkeypatch):
    with pytest.raises(IngestError, match="unknown dataset 'nope'; known: ml-100k"):
        load_dataset("nope")
    with pytest.raises(IngestError, match="GEMIREC_DATA_DIR"):
        load_dataset("ml-100k", tmp_path / "missing")
    monkeypatch.setenv("GEMIREC_DATA_DIR", str(tmp_path))
    assert default_data_dir() == tmp_path
    assert not data_available("ml-100k") and data_available("simulator-tiny")


# name: (users, items, interactions); counts from shared/data/README.md
REAL = {
    "ml-100k": (943, 1682, 100_000),
    "amazon-beauty-s3rec": (22_363, 12_101, 198_502),
    "amazon-toys-s3rec": (19_412, 11_924, 167_597),
    "lastfm-s3rec": (1_090, 3_646, 52_551),
    "amazon-video-sasrec": (31_013, 23_715, 287_107),
    "instacart-sample": (593, 14_190, 150_000),
}
REAL_SLOW = {
    "gowalla-lightgcn": (29_858, 40_981, 1_027_370),
    "diginetica-sessions": (202_633, 43_097, 982_961),
    "nowplaying-sessions": (142_556, 60_416, 1_057_684),
    "ml-1m-pairs": (6_040, 3_706, 1_000_209),
}


def _check_real(name: str, expected: tuple[int, int, int]) -> None:
    data = load_dataset(name)
    report = data.report
    assert (report.n_users, report.n_items, report.n_valid) == expected
    assert report.n_malformed == 0
    assert data.events["user_id"].dtype == np.int64
    assert data.events["user_id"].is_monotonic_increasing


@pytest.mark.data
@pytest.mark.parametrize("name", list(REAL))
def test_real_dataset_counts(name):
    if not data_available(name):
        pytest.skip(f"{name} not in {default_data_dir()}")
    _check_real(name, REAL[name])


@pytest.mark.data
@pytest.mark.slow
@pytest.mark.parametrize("name", list(REAL_SLOW))
def test_real_dataset_counts_large(name):
    if not data_available(name):
        pytest.skip(f"{name} not in {default_data_dir()}")
    _check_real(name, REAL_SLOW[name])


@pytest.mark.data
def test_real_categories():
    if not (data_available("ml-100k") and data_available("amazon-beauty-s3rec")):
        pytest.skip("data not available")
    movies = load_dataset("ml-100k").items
    assert (movies["category"] >= 0).all() and len(movies) == 1682
    assert datasets.DATASETS["ml-100k"].files
    beauty = load_dataset("amazon-beauty-s3rec").items
    assert (beauty["category"] >= 0).all()
    assert beauty["attributes"].map(len).mean() == pytest.approx(3.72, abs=0.01)


def test_ingest_cli(write, tmp_path):
    from typer.testing import CliRunner

    from features.ingest import app

    runner = CliRunner()
    source = write("Video.txt", "1 10\n1 x\n2 12\n")
    result = runner.invoke(app, [str(source), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    back = Interactions.load(tmp_path / "out")
    assert back.report.n_malformed == 1 and len(back.events) == 2
    failed = runner.invoke(app, [str(tmp_path / "missing.txt"), "--out", str(tmp_path / "x")])
    assert failed.exit_code == 2 and "missing.txt: file not found" in failed.output
