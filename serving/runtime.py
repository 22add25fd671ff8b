"""What the service runs on, as plain Python: its settings, the served model (hot-swapped when a new version
is promoted) and the response log. Nothing here knows about HTTP, so all of it is testable in-process.

Reload, without dropping a request: a background thread polls the registry's production pointer; a new
version is loaded, checked (manifest checksums, `model.persistence.saved.verify_folder`) and warmed up off the request
path, then published by one reference assignment. A request reads `holder.current` once and keeps that
snapshot to the end, so in-flight requests finish on the model they started with. A version that fails to
load (tampered, truncated, missing) is refused: the current model stays, and the failure is in `status()`.
The served version's own files are watched too: deleted or changed in the store, the copy in memory keeps
serving and `status()` says so (`store_intact: false`), so a restart would not surprise anyone.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from model.persistence.saved import LoadedModel, load_model
from serving.response_log import ResponseLog  # noqa: F401  (re-exported: its old home)

log = logging.getLogger(__name__)


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default).strip()


@dataclass(frozen=True)
class ServingConfig:
    """Every setting comes from the environment, so `bentoml serve` needs no flags of ours."""

    model_folder: Path | None = None  # serve this folder as is (no registry, no reload)
    registry_home: Path | None = None  # None: BENTOML_HOME, else ~/bentoml
    registry_name: str = "gemirec"
    reload_s: float = 10.0  # production-pointer poll interval; 0 = never reload
    feature_store: Path | None = None  # Feast store dir: user_id -> history; None: explicit histories only
    log_dir: Path | None = Path("runs/serving/logs")
    log_file_mb: float = 16.0  # rotate a response-log file past this size ...
    log_files: int = 32  # ... and keep at most this many files in the folder (bounded disk)
    api_token: str | None = None  # when set, API calls need "Authorization: Bearer <token>"
    batch_max: int = 16  # adaptive batching: largest batch; 1 = off
    batch_wait_ms: int = 5000  # a request waiting longer than this is shed with a 503 (overload only)
    torch_threads: int = 1
    index_breadth: int = 0  # IVF nprobe / HNSW efSearch of an ANN index in the folder; 0 = as saved
    # admission (BentoML traffic settings, docs/serving.md): requests in flight per service, split evenly
    # over the workers; one more is answered 429 at once. 0 = unbounded (every request queues)
    max_concurrency: int = 64
    request_timeout_s: float = 10.0  # no response started by then (a trickled body included): 504

    @classmethod
    def from_env(cls) -> ServingConfig:
        def path(name: str, default: str = "") -> Path | None:
            value = _env(name, default)
            return Path(value).expanduser() if value and value.lower() != "off" else None

        return cls(
            model_folder=path("GEMIREC_MODEL_FOLDER"),
            registry_home=path("GEMIREC_REGISTRY_HOME"),
            registry_name=_env("GEMIREC_REGISTRY_NAME", "gemirec"),
            reload_s=float(_env("GEMIREC_RELOAD_S", "10")),
            # unset: the store the served version's train run filled (its registry metadata); "off": none
            feature_store=(path("GEMIREC_FEATURE_STORE") if _env("GEMIREC_FEATURE_STORE", "")
                           else recorded_feature_store(path("GEMIREC_MODEL_FOLDER"), path("GEMIREC_REGISTRY_HOME"),
                                                       _env("GEMIREC_REGISTRY_NAME", "gemirec"))),
            log_dir=path("GEMIREC_LOG_DIR", "runs/serving/logs"),
            log_file_mb=float(_env("GEMIREC_LOG_FILE_MB", "16")),
            log_files=int(_env("GEMIREC_LOG_FILES", "32")),
            api_token=_env("GEMIREC_API_TOKEN", "") or None,
            batch_max=int(_env("GEMIREC_BATCH_MAX", "16")),
            batch_wait_ms=int(_env("GEMIREC_BATCH_WAIT_MS", "5000")),
            torch_threads=int(_env("GEMIREC_TORCH_THREADS", "1")),
            index_breadth=int(_env("GEMIREC_INDEX_BREADTH", "0")),
            max_concurrency=int(_env("GEMIREC_MAX_CONCURRENCY", "64")),
            request_timeout_s=float(_env("GEMIREC_TIMEOUT_S", "10")),
        )


def recorded_feature_store(model_folder: Path | None, registry_home: Path | None, name: str) -> Path | None:
    """The Feast store recorded by the train run of the production version (metadata ``feature_store``),
    when it is still there; None for a served folder, no production version, or an older version without it.
    Read once at start: a later version of the same registry name comes from the same data source's store."""
    if model_folder is not None:
        return None
    from serving.registry import Registry, production

    version = production(Registry(registry_home, name))
    recorded = version.metadata.get("feature_store") if version else None
    if not recorded or not (Path(recorded).expanduser() / "feature_store.yaml").exists():
        return None
    log.info("feature store %s, recorded by %s", recorded, version.tag)
    online = version.metadata.get("online_store")
    if online and online != (_env("GEMIREC_ONLINE_STORE", "") or "sqlite"):  # features.store.default_online
        log.warning("%s filled a %s online store, but this service reads %s (GEMIREC_ONLINE_STORE): every user "
                    "would look new; set GEMIREC_ONLINE_STORE=%s", version.tag, online,
                    _env("GEMIREC_ONLINE_STORE", "") or "sqlite", online)
    return Path(recorded).expanduser()


# ---------------------------------------------------------------- the served model


@dataclass(frozen=True, eq=False)
class Snapshot:
    """One loaded model version with everything a request needs precomputed. Never mutated once published."""

    loaded: LoadedModel
    version: str
    path: Path
    loaded_at: str
    sorted_ids: np.ndarray  # source item ids, sorted
    sorted_dense: np.ndarray  # their dense ids
    item_matrix: np.ndarray | None  # (n, d) scoring vectors; None for a model without item vectors
    popular: np.ndarray  # dense ids, most popular first (the cold-start answer)
    popular_share: np.ndarray  # their share of training interactions
    item_codes: np.ndarray | None  # (n + 1, C) GemiRec's item -> interest code table
    labels: dict[tuple[int, ...], str] = field(repr=False)

    @property
    def model(self):
        return self.loaded.model

    @property
    def item_ids(self) -> np.ndarray:
        return self.loaded.item_ids

    @property
    def maxlen(self) -> int:
        return self.loaded.cfg.data.maxlen

    @property
    def n_interests(self) -> int:
        return int(getattr(self.model, "K", 0)) if self.item_codes is not None else 0

    def encode(self, source_ids) -> np.ndarray:
        """Source ids -> dense ids, 0 for unknown (a binary search on the sorted table built at load)."""
        ids = np.asarray(source_ids, dtype=np.int64)
        pos = np.clip(np.searchsorted(self.sorted_ids, ids), 0, max(len(self.sorted_ids) - 1, 0))
        return np.where(self.sorted_ids[pos] == ids, self.sorted_dense[pos], 0)

    def histories(self, sequences: list[list[int]]) -> np.ndarray:
        """Known source-id histories -> left-padded dense (B, maxlen); unknown items are dropped."""
        out = np.zeros((len(sequences), self.maxlen), dtype=np.int64)
        for row, seq in enumerate(sequences):
            dense = self.encode(seq)
            dense = dense[dense > 0][-self.maxlen:]
            out[row, self.maxlen - len(dense):] = dense
        return out

    def label(self, code) -> str:
        key = tuple(int(c) for c in code)
        return self.labels.get(key, f"code {'/'.join(map(str, key))}")


def build_snapshot(folder: Path, version: str, index_breadth: int = 0) -> Snapshot:
    """Load, verify and warm up a model folder (raises model.persistence.saved.ModelFolderError when it is tampered)."""
    loaded = load_model(folder)
    if index_breadth > 0 and loaded.index is not None:
        loaded.index.set_breadth(index_breadth)  # IVF nprobe / HNSW efSearch; the exact index ignores it
    ids = loaded.item_ids.astype(np.int64)
    order = np.argsort(ids, kind="stable")
    pop = loaded.items["popularity"].to_numpy(dtype=np.float64)
    popular = np.argsort(-pop, kind="stable")
    matrix = None
    if loaded.index is not None:
        matrix = np.ascontiguousarray(loaded.model.item_matrix(), dtype=np.float32)
        if hasattr(loaded.model, "pin_item_matrix"):
            loaded.model.pin_item_matrix(matrix)
    codes = getattr(loaded.model, "item_codes", None)
    labels = {}
    if (folder / "interests.json").exists():
        described = json.loads((folder / "interests.json").read_text())
        labels = {tuple(e["code"]): str(e["label"]) for e in described}
    snap = Snapshot(loaded=loaded, version=version, path=folder, loaded_at=_now(), sorted_ids=ids[order],
                    sorted_dense=(order + 1).astype(np.int64), item_matrix=matrix, popular=popular + 1,
                    popular_share=pop[popular] / max(pop.sum(), 1.0),
                    item_codes=None if codes is None else codes.cpu().numpy(), labels=labels)
    if loaded.index is not None and len(ids):  # first calls pay for lazy init: not on a user's request
        snap.model.recommend(snap.histories([[int(ids[0])]]), loaded.index, 10)
    return snap


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class ModelHolder:
    """The current Snapshot, swapped atomically when the production pointer names a new version."""

    def __init__(self, config: ServingConfig):
        self.config = config
        self.current: Snapshot | None = None
        self.reloads = 0
        self.last_check: str | None = None
        self.last_error: dict | None = None
        self._failed: tuple[str, float] | None = None  # (tag, pointer mtime) already refused
        self._files: dict[str, tuple[int, int]] = {}  # the served folder's files at load: (size, mtime)
        self.store_intact = True
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._registry = None
        self.reporters: list = []  # more status() sources, e.g. the response log's health
        if config.model_folder is None:
            from serving.registry import Registry

            self._registry = Registry(config.registry_home, config.registry_name)

    def check(self) -> bool:
        """One poll: load the production version if it changed. True when a new model was published."""
        self.last_check = _now()
        if self.config.model_folder is not None:
            if self.current is not None:
                return False
            return self._load(self.config.model_folder, f"folder:{self.config.model_folder.name}", None)
        from serving.registry import RegistryError, get, pointed_tag

        pointer = self._registry.pointer
        try:
            mtime = pointer.stat().st_mtime
            tag = pointed_tag(self._registry)
        except FileNotFoundError:
            tag = None
        except RegistryError as e:  # BadPointer: half-written or hand-edited
            self.last_error = {"version": None, "error": f"{type(e).__name__}: {e}", "at": self.last_check,
                               "kept": self.current.version if self.current else None}
            return False
        if tag is None:
            if self.current is None:
                self.last_error = {"version": None, "error": f"no production model: {pointer} not found",
                                   "at": self.last_check}
            return False
        if self.current is not None and self.current.version == tag:
            self._check_store()
            return False
        if self._failed == (tag, mtime):
            return False
        try:
            path = get(self._registry, tag).path
        except RegistryError as e:  # BadTag included: a hand-edited pointer is reported, never a crash
            self._refuse(tag, mtime, f"{type(e).__name__}: {e}")
            return False
        return self._load(path, tag, mtime)

    def _load(self, folder: Path, tag: str, mtime: float | None) -> bool:
        started = time.perf_counter()
        try:
            snap = build_snapshot(Path(folder), tag, self.config.index_breadth)
        except Exception as e:  # noqa: BLE001 - any broken version is refused; serving goes on
            log.exception("refused model %s from %s", tag, folder)
            self._refuse(tag, mtime, f"{type(e).__name__}: {e}")
            return False
        previous = self.current
        self._files, self.store_intact = _file_stats(Path(folder)), True
        self.current = snap  # the swap: one reference assignment, atomic for every reader
        self.reloads += previous is not None
        self.last_error = None
        self._failed = None
        log.info("serving %s (%s) after %.1f s%s", tag, folder, time.perf_counter() - started,
                 f", replacing {previous.version}" if previous else "")
        return True

    def _check_store(self) -> None:
        """Compare the served version's files in the store with what was loaded (a stat per file, no
        hashing): a deleted or rewritten version keeps serving from memory, but is reported, once."""
        snap = self.current
        now = _file_stats(snap.path)
        changed = sorted(name for name, stat in self._files.items() if now.get(name) != stat)
        if not changed:
            if not self.store_intact:
                log.info("store entry of %s is back as loaded", snap.version)
                self.store_intact, self.last_error = True, None
            return
        if self.store_intact:
            what = "is gone" if not snap.path.exists() else f"changed on disk ({', '.join(changed)})"
            self.store_intact = False
            self.last_error = {"version": snap.version, "kept": snap.version, "at": _now(),
                               "error": f"the served version's store entry {what}; still serving the copy "
                                        f"loaded at {snap.loaded_at}, which a restart could not reload"}
            log.error("%s", self.last_error["error"])

    def _refuse(self, tag: str, mtime: float | None, error: str) -> None:
        self._failed = (tag, mtime)
        kept = self.current.version if self.current else None
        self.last_error = {"version": tag, "error": error, "at": _now(), "kept": kept}
        log.error("model %s refused (%s); still serving %s", tag, error, kept)

    def start(self) -> None:
        """Load now, then poll in the background (a daemon thread: it never holds the process open)."""
        self.check()
        if self.config.reload_s > 0 and self.config.model_folder is None:
            self._thread = threading.Thread(target=self._poll, name="gemirec-reload", daemon=True)
            self._thread.start()

    def _poll(self) -> None:
        while not self._stop.wait(self.config.reload_s):
            try:
                self.check()
            except Exception:  # noqa: BLE001 - the poller must outlive any one bad poll
                log.exception("reload poll failed")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def status(self) -> dict:
        snap = self.current
        source = (f"folder {self.config.model_folder}" if self.config.model_folder is not None
                  else f"registry {self._registry.name} at {self._registry.root}")
        return {
            "ready": snap is not None,
            "model_version": snap.version if snap else None,
            "model": snap.loaded.cfg.model if snap else None,
            "n_items": len(snap.sorted_ids) if snap else None,
            "n_interests": snap.n_interests if snap else None,
            "loaded_at": snap.loaded_at if snap else None,
            "source": source,
            "store_intact": self.store_intact if snap else None,
            "reloads": self.reloads,
            "reload_every_s": self.config.reload_s if self.config.model_folder is None else 0,
            "last_check": self.last_check,
            "last_error": self.last_error,
        } | {k: v for report in self.reporters for k, v in report().items()}


def _file_stats(folder: Path) -> dict[str, tuple[int, int]]:
    try:
        return {f.name: (f.stat().st_size, f.stat().st_mtime_ns) for f in folder.iterdir() if f.is_file()}
    except OSError:  # the folder itself is gone
        return {}


def feast_history_reader(store_dir: Path):
    """user_id -> stored history (oldest first, [] for an unknown user) through features/store.py, the one
    module that talks to Feast. Imported only when a store is configured: Feast is slow to import."""
    from features.store import StoreConfig, online_history, open_store

    cfg = StoreConfig(Path(store_dir))
    store, lock = open_store(cfg), threading.Lock()  # opened once: opening costs more than a read

    def history_of(user_id: int) -> list[int]:
        with lock:  # one SQLite connection per store: reads take turns
            return online_history(cfg, [int(user_id)], store=store).get(int(user_id), [])

    return history_of
