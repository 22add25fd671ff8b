"""The model registry: saved model folders as versions in the BentoML model store, plus which is production.

A registered version is the model folder copied into a BentoML model, so the service loads it with
``model.persistence.saved.load_model(bento_model.path)``; its manifest then also checksums the monitor's
reference tables (``integrity.seal``), and is re-signed when GEMIREC_MODEL_SIGNING_KEY is set. Labels (strings) and
metadata (metrics, data hash, config, code version, gate decision) make versions comparable with
``bentoml models list`` / ``bentoml models get``.

BentoML models are immutable, so "production" cannot be a label edited later: it is a pointer file beside
the store, ``<home>/gemirec/<name>.production.json``, replaced atomically, with every promotion appended to
``<name>.promotions.jsonl``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")  # no usage reporting from a local registry

import bentoml  # noqa: E402
from bentoml._internal.models import ModelStore  # noqa: E402  (the one store class; pinned bentoml)

from model.persistence.integrity import seal  # noqa: E402
from model.persistence.saved import verify_folder  # noqa: E402

log = logging.getLogger(__name__)

MODEL_NAME = "gemirec"
GATE_METRIC = "recall@50"


class RegistryError(RuntimeError):
    """A version is missing, or a folder cannot be registered."""


class BadTag(RegistryError):
    """A tag that is not a BentoML tag at all (a hand-edited production pointer, a typo)."""


class BadPointer(RegistryError):
    """The production pointer exists but cannot be read as ``{"tag": "<name>:<version>", ...}``."""


@dataclass(frozen=True)
class Registry:
    home: Path | None = None  # None: BentoML's own (BENTOML_HOME, else ~/bentoml)
    name: str = MODEL_NAME

    @property
    def root(self) -> Path:
        return Path(self.home or os.environ.get("BENTOML_HOME", "~/bentoml")).expanduser()

    @property
    def store(self) -> ModelStore:
        # an explicit store, not BentoML's process-wide one, so tests and runs can each use their own home
        path = self.root / "models"
        path.mkdir(parents=True, exist_ok=True)
        return ModelStore(str(path))

    @property
    def pointer(self) -> Path:
        return self.root / "gemirec" / f"{self.name}.production.json"


@dataclass(frozen=True)
class Version:
    tag: str
    path: Path
    created: str
    labels: dict[str, str]
    metadata: dict = field(repr=False)

    @property
    def val_recall(self) -> float:
        return float(self.metadata.get("metrics", {}).get("val", {}).get(GATE_METRIC, 0.0))


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    reason: str
    candidate: float
    production: float | None
    production_tag: str | None


def gate(candidate: float, production: Version | None, tolerance: float) -> GateDecision:
    """Promote unless the candidate's validation Recall@50 is below production's by more than tolerance."""
    if production is None:
        return GateDecision(True, "first model: no production version yet", candidate, None, None)
    floor = production.val_recall - tolerance
    ok = candidate >= floor
    verb = "≥" if ok else "<"
    reason = (f"val {GATE_METRIC} {candidate:.4f} {verb} production {production.val_recall:.4f} "
              f"− tolerance {tolerance:g} = {floor:.4f}")
    return GateDecision(ok, reason, candidate, production.val_recall, production.tag)


def _jsonable(value):
    """Plain types for BentoML's metadata validator: numpy scalars become floats, None values are dropped."""
    def drop_none(v):
        if isinstance(v, dict):
            return {k: drop_none(x) for k, x in v.items() if x is not None}
        if isinstance(v, list):
            return [drop_none(x) for x in v if x is not None]
        return v

    return drop_none(json.loads(json.dumps(value, default=float)))


def register(reg: Registry, folder: str | Path, labels: dict[str, str], metadata: dict) -> Version:
    """Copy a verified model folder into a new BentoML model version. All or nothing: BentoML only moves
    the model into the store when the block below finishes, so a failure leaves no half version."""
    folder = Path(folder)
    manifest = verify_folder(folder)
    meta = _jsonable({"metrics": manifest.get("metrics", {}), "lineage": manifest.get("lineage", {}),
                      "code_version": manifest.get("code_version"), **metadata})
    with bentoml.models.create(reg.name, labels={k: str(v) for k, v in labels.items()}, metadata=meta,
                               _model_store=reg.store) as bento_model:
        for item in folder.iterdir():
            target = Path(bento_model.path) / item.name
            if item.is_dir():
                shutil.copytree(item, target)
            else:
                shutil.copy2(item, target)
        seal(Path(bento_model.path))  # the reference tables written after saving get checksums too
        tag = str(bento_model.tag)
    log.info("registered %s from %s", tag, folder)
    return get(reg, tag)


def _version(model) -> Version:
    info = model.info
    return Version(tag=str(model.tag), path=Path(model.path), created=info.creation_time.isoformat(),
                   labels=dict(info.labels), metadata=dict(info.metadata))


def get(reg: Registry, tag: str) -> Version:
    if not isinstance(tag, str):
        raise BadTag(f"tag {tag!r} is not a string like '{reg.name}:<version>'")
    try:
        return _version(bentoml.models.get(tag, _model_store=reg.store))
    except bentoml.exceptions.NotFound as e:
        raise RegistryError(f"no model {tag!r} in {reg.root}") from e
    except (ValueError, bentoml.exceptions.BentoMLException) as e:  # BentoML's tag parser refused it
        raise BadTag(f"{tag!r} is not a valid model tag ('{reg.name}:<version>'): {e}") from e


def pointed_tag(reg: Registry) -> str | None:
    """The tag the production pointer names; None without a pointer; BadPointer when it is unreadable."""
    try:
        record = json.loads(reg.pointer.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:  # half-written or hand-edited
        raise BadPointer(f"unreadable production pointer {reg.pointer}: {e}") from e
    if not isinstance(record, dict) or not isinstance(record.get("tag"), str):
        raise BadPointer(f"production pointer {reg.pointer} has no \"tag\" string")
    return record["tag"]


def versions(reg: Registry) -> list[Version]:
    """All versions of the registry's model, oldest first."""
    try:
        found = bentoml.models.list(reg.name, _model_store=reg.store)
    except bentoml.exceptions.NotFound:
        return []
    return sorted((_version(m) for m in found), key=lambda v: v.created)


def production(reg: Registry) -> Version | None:
    """The production version; None without a pointer or when it names a version no longer stored.
    BadPointer / BadTag when the pointer itself is broken: that needs a person, not a fallback."""
    tag = pointed_tag(reg)
    if tag is None:
        return None
    try:
        return get(reg, tag)
    except BadTag:
        raise
    except RegistryError:
        log.warning("production pointer names %s, which is no longer in the store", tag)
        return None


def promote(reg: Registry, tag: str, reason: str) -> None:
    get(reg, tag)  # refuse to point at a version that does not exist
    reg.pointer.parent.mkdir(parents=True, exist_ok=True)
    record = {"tag": tag, "promoted_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "reason": reason}
    tmp = reg.pointer.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=1))
    tmp.replace(reg.pointer)
    with open(reg.pointer.with_name(f"{reg.name}.promotions.jsonl"), "a") as history:
        history.write(json.dumps(record) + "\n")
    log.info("production is now %s (%s)", tag, reason)
