"""Which model the bento carries, and whether this code runs from a bento.

    bentoml build -f serving/bentofile.yaml .          # packs the registry's production version
    GEMIREC_BENTO_MODEL=gemirec:<version> bentoml build -f serving/bentofile.yaml .   # or this one
    bentoml serve gemirec:<bento version>              # serves the packed model, on any host

A bento is the deployable unit, so it holds its model: `model_to_pack` names a registry version as a
`BentoModel` class attribute of the service, which `bentoml build` copies into the bento's own model store.
Served from the bento, the service loads that copy and nothing else (no registry, no reload), so a
containerized image or another host answers exactly what was built. `GEMIREC_FOLLOW_REGISTRY=1` keeps the
development mode inside a bento too: follow the host registry's production pointer, as `bentoml serve
serving.service:GemiRec` from the repository always does.
"""

from __future__ import annotations

import os
from pathlib import Path

import bentoml
import yaml

from serving.registry import Registry, production

SOURCE = Path(__file__).resolve().parent.parent  # the repository, or <bento>/src inside a bento


def bento_root() -> Path | None:
    """The bento this code runs from (<bento>/src/serving/bento.py), None in a repository checkout."""
    root = SOURCE.parent
    return root if SOURCE.name == "src" and (root / "bento.yaml").is_file() else None


def packed_tag(root: Path) -> str | None:
    """The model tag the bento at ``root`` was built with. Its bento.yaml lists the models of each service;
    `bentoml export` carries them, and `bentoml import` puts them into the importing home's model store."""
    info = yaml.safe_load((root / "bento.yaml").read_text()) or {}
    listed = [*(info.get("models") or []), *(m for svc in info.get("services") or [] for m in svc.get("models") or [])]
    tags = [str(m["tag"]) for m in listed if isinstance(m, dict) and m.get("tag")]
    return tags[0] if tags else None


def model_to_pack(registry_home: Path | None, registry_name: str) -> str | None:
    """The tag `bentoml build` should pack: GEMIREC_BENTO_MODEL, else the registry's production version
    (None: nothing promoted yet, and the bento would carry no model)."""
    explicit = os.environ.get("GEMIREC_BENTO_MODEL", "").strip()
    if explicit:
        return explicit
    version = production(Registry(registry_home, registry_name))
    return version.tag if version else None


def follow_registry() -> bool:
    return os.environ.get("GEMIREC_FOLLOW_REGISTRY", "0").strip() == "1"


def model_reference(registry_home: Path | None, registry_name: str) -> bentoml.models.BentoModel | None:
    """The service's model attribute: in a bento, the model it was built with; in a checkout, the version
    a `bentoml build` would pack now. BentoML resolves it only when read, so declaring it costs nothing."""
    root = bento_root()
    tag = packed_tag(root) if root is not None else model_to_pack(registry_home, registry_name)
    return bentoml.models.BentoModel(tag) if tag else None
