from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from model.config import load_config
from model.training.pipeline import train_model

# ---------------------------------------------------------------- a real, started service (session-wide)

TOKEN = "test-token"
SERVED_NAME = "gemirec-served"


@dataclass
class Served:
    url: str
    headers: dict
    registry: object
    folder: Path  # the trained model folder behind the first version
    first_tag: str
    log_dir: Path
    server: object


@pytest.fixture(scope="session")
def trained_tiny(tmp_path_factory):
    """GemiRec on the tiny simulator, 2 epochs (a few seconds): a real model with interests and labels."""
    from features.datasets import load_dataset

    inter = load_dataset("simulator-tiny")
    cfg = load_config("tiny", ["model=gemirec", "train.max_epochs=2", "train.threads=1"])
    out = tmp_path_factory.mktemp("served-model")
    return train_model(inter.events, inter.items, cfg, out, progress=False).folder


@pytest.fixture(scope="session")
def served(tmp_path_factory, trained_tiny):
    """`bentoml serve` on 127.0.0.1 of the registered tiny model, with a token, response logs and a fast
    reload poll; shared by every serving test module and stopped at the end of the session."""
    from serving import registry
    from serving.launch import serve

    home = tmp_path_factory.mktemp("bentoml-home")
    reg = registry.Registry(home, SERVED_NAME)
    version = registry.register(reg, trained_tiny, {"model": "gemirec"}, {})
    registry.promote(reg, version.tag, "test")
    log_dir = home / "logs"
    env = {"BENTOML_HOME": str(home), "GEMIREC_REGISTRY_NAME": SERVED_NAME, "GEMIREC_RELOAD_S": "0.3",
           "GEMIREC_LOG_DIR": str(log_dir), "GEMIREC_API_TOKEN": TOKEN}
    with serve(env) as server:
        yield Served(server.url, {"Authorization": f"Bearer {TOKEN}"}, reg, trained_tiny, version.tag,
                     log_dir, server)


@pytest.fixture(scope="module")
def client(served):
    """An HTTP client of the session's served model, with its token."""
    with httpx.Client(base_url=served.url, headers=served.headers, timeout=30) as c:
        yield c
