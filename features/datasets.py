"""Named datasets (offline copies in shared/data, the simulator) and format detection for users' files."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from features import readers
from features.events import IngestError, Interactions, base_name, head_lines, resolve
from features.simulator import SimulatorConfig, simulate

logger = logging.getLogger(__name__)

DATA_DIR_ENV = "GEMIREC_DATA_DIR"
TINY_SIMULATOR = SimulatorConfig(n_users=300, n_items=600, n_topics=8, mean_length=30.0, min_length=10)
SIMULATOR_CONFIGS = {"simulator": SimulatorConfig(), "simulator-tiny": TINY_SIMULATOR}


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    files: tuple[str, ...]  # relative to the data dir; each may also exist as .gz
    loader: Callable[[Path], Interactions]
    description: str


def _ml_100k(d: Path) -> Interactions:
    return readers.read_recbole_atomic(d / "ml-100k/ml-100k.inter", d / "ml-100k/ml-100k.item")


def _s3rec(folder: str, stem: str) -> Callable[[Path], Interactions]:
    def load(d: Path) -> Interactions:
        return readers.read_user_sequences(
            d / folder / f"{stem}.txt", d / folder / f"{stem}_item2attributes.json"
        )

    return load


def _video(d: Path) -> Interactions:
    return readers.read_pairs(d / "amazon-video-sasrec/Video.txt")


def _gowalla(d: Path) -> Interactions:
    # design choice (not from the paper): train items before test items per user mirrors NGCF's 80/20 split,
    # and a seeded shuffle within each part hides the item-id order of the rebuilt train.txt
    folder = d / "gowalla-lightgcn"
    return readers.read_user_sets([folder / "train.txt", folder / "test.txt"], shuffle_seed=0)


def _sessions(folder: str) -> Callable[[Path], Interactions]:
    def load(d: Path) -> Interactions:
        return readers.read_sessions([d / folder / "train_sessions.txt", d / folder / "test_sessions.txt"])

    return load


def _ml_1m(d: Path) -> Interactions:
    items, vocabulary = readers.read_movielens_movies(d / "ml-1m-pairs/movies.dat")
    data = readers.read_table(
        d / "ml-1m-pairs/user_movie_pairs.csv", "user_id", "movie_id", items=items, derive_time=True
    )
    data.report.notes.append("source has NO time order (ratings.dat row order); category = first genre")
    return data


def _instacart(d: Path) -> Interactions:
    return readers.read_table(
        d / "instacart-sample/df_sample.csv",
        "user_id",
        "product_id",
        order_cols=("order_number", "add_to_cart_order"),
        derive_time=True,
    )


def _simulated(cfg: SimulatorConfig) -> Callable[[Path | None], Interactions]:
    def load(_: Path | None) -> Interactions:
        return simulate(cfg)[0]

    return load


DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec(
            "ml-100k",
            ("ml-100k/ml-100k.inter", "ml-100k/ml-100k.item"),
            _ml_100k,
            "MovieLens 100K, unix timestamps, genres",
        ),
        DatasetSpec(
            "amazon-beauty-s3rec",
            ("amazon-beauty-s3rec/Beauty.txt", "amazon-beauty-s3rec/Beauty_item2attributes.json"),
            _s3rec("amazon-beauty-s3rec", "Beauty"),
            "Amazon Beauty (S3-Rec), order only, attributes",
        ),
        DatasetSpec(
            "amazon-toys-s3rec",
            ("amazon-toys-s3rec/Toys_and_Games.txt", "amazon-toys-s3rec/Toys_and_Games_item2attributes.json"),
            _s3rec("amazon-toys-s3rec", "Toys_and_Games"),
            "Amazon Toys (S3-Rec), order only, attributes",
        ),
        DatasetSpec(
            "lastfm-s3rec",
            ("lastfm-s3rec/LastFM.txt", "lastfm-s3rec/LastFM_item2attributes.json"),
            _s3rec("lastfm-s3rec", "LastFM"),
            "LastFM (S3-Rec), order only, tags",
        ),
        DatasetSpec(
            "amazon-video-sasrec",
            ("amazon-video-sasrec/Video.txt",),
            _video,
            "Amazon Video Games (SASRec), order only",
        ),
        DatasetSpec(
            "gowalla-lightgcn",
            ("gowalla-lightgcn/train.txt", "gowalla-lightgcn/test.txt"),
            _gowalla,
            "Gowalla check-ins (LightGCN), NO order",
        ),
        DatasetSpec(
            "diginetica-sessions",
            ("diginetica-sessions/train_sessions.txt", "diginetica-sessions/test_sessions.txt"),
            _sessions("diginetica-sessions"),
            "Diginetica sessions, click order",
        ),
        DatasetSpec(
            "nowplaying-sessions",
            ("nowplaying-sessions/train_sessions.txt", "nowplaying-sessions/test_sessions.txt"),
            _sessions("nowplaying-sessions"),
            "Nowplaying sessions, play order",
        ),
        DatasetSpec(
            "ml-1m-pairs",
            ("ml-1m-pairs/user_movie_pairs.csv", "ml-1m-pairs/movies.dat"),
            _ml_1m,
            "MovieLens 1M pairs, NO order, genres",
        ),
        DatasetSpec(
            "instacart-sample",
            ("instacart-sample/df_sample.csv",),
            _instacart,
            "Instacart baskets, order by (order_number, add_to_cart_order)",
        ),
        DatasetSpec(
            "simulator",
            (),
            _simulated(SIMULATOR_CONFIGS["simulator"]),
            "simulated long mixed histories (default)",
        ),
        DatasetSpec("simulator-tiny", (), _simulated(TINY_SIMULATOR), "small simulator config for tests"),
    )
}


def default_data_dir() -> Path:
    """``$GEMIREC_DATA_DIR``, else ``shared/data`` beside the repository."""
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent.parent / "shared" / "data"


def _spec(name: str) -> DatasetSpec:
    if name not in DATASETS:
        raise IngestError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    return DATASETS[name]


def data_available(name: str, data_dir: str | Path | None = None) -> bool:
    spec = _spec(name)
    root = Path(data_dir) if data_dir is not None else default_data_dir()
    try:
        for relative in spec.files:
            resolve(root / relative)
    except IngestError:
        return False
    return True


def load_dataset(name: str, data_dir: str | Path | None = None) -> Interactions:
    spec = _spec(name)
    root = Path(data_dir) if data_dir is not None else default_data_dir()
    if spec.files and not root.is_dir():
        folder = spec.files[0].split("/")[0]
        raise IngestError(
            f"data directory {root} not found: set {DATA_DIR_ENV} to the folder holding {folder}/"
        )
    started = time.perf_counter()
    data = spec.loader(root)
    data.report.source = f"{name} ({data.report.source})" if spec.files else name
    logger.info(
        "loaded %s: %d events, %d users, %d items in %.2f s",
        name,
        data.report.n_valid,
        data.report.n_users,
        data.report.n_items,
        time.perf_counter() - started,
    )
    return data


def detect_format(path: str | Path) -> str:
    """Guess a reader from the file name, then from the first lines."""
    path = resolve(path)
    name = base_name(path).lower()
    if name.endswith(".inter"):
        return "recbole-atomic"
    if name.endswith((".csv", ".tsv", ".parquet")):
        return "table"
    if "session" in name:
        return "sessions"
    if _sibling(path, "_item2attributes.json") is not None:
        return "user-sequences"
    lines = [line for line in head_lines(path, 20) if line.strip()]
    if not lines:
        raise IngestError(f"{path.name}: empty file; expected interaction lines")
    first = lines[0]
    if ":token" in first or ":float" in first:
        return "recbole-atomic"
    # judge by the lines made of ids only, so that a few malformed lines do not hide the format
    widths = {len(line.split()) for line in lines if "".join(line.split()).isdigit()}
    if 2 * sum("".join(line.split()).isdigit() for line in lines) < len(lines):
        if any(sep in first for sep in (",", "\t", ";")):
            return "table"
        raise IngestError(
            f"{path.name}: unrecognised format; expected integer id lines ('user item' pairs, "
            "'user item ...' sequences, sessions), a RecBole .inter file or a CSV/parquet table with a header"
        )
    if widths == {2}:
        return "pairs"
    return "user-sequences"


def load_path(path: str | Path, format: str | None = None, **options) -> Interactions:  # noqa: A002
    """Read a user's own event file; ``format`` is one of ``readers.READERS`` or detected.

    ``options`` go to the reader, e.g. ``user_col=``, ``item_col=``, ``time_col=`` for tables or
    ``attributes_path=`` for user sequences (a sibling ``*_item2attributes.json`` is found automatically).
    """
    fmt = format or detect_format(path)
    if fmt not in readers.READERS:
        raise IngestError(f"{path}: unknown format {fmt!r}; expected one of {', '.join(readers.READERS)}")
    if fmt == "user-sequences" and "attributes_path" not in options:
        options["attributes_path"] = _sibling(path, "_item2attributes.json")
    if fmt == "recbole-atomic" and "item_path" not in options:
        options["item_path"] = _sibling(path, ".item")
    return readers.READERS[fmt](path, **options)


def _sibling(path: str | Path, suffix: str) -> Path | None:
    """``Beauty.txt`` -> ``Beauty_item2attributes.json`` (or ``.json.gz``) where it exists."""
    sibling = Path(path).with_name(base_name(path).rsplit(".", 1)[0] + suffix)
    return sibling if sibling.exists() or sibling.with_name(sibling.name + ".gz").exists() else None
