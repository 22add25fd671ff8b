"""A bento carries its model: built in one BentoML home, exported, imported into a fresh home that holds only
that bento, and served there with `bentoml serve gemirec:<version>`, it answers from the packed version.
Real BentoML commands throughout (build, export, import, serve), each on its own home under tmp."""

import os
import subprocess
import sys

import httpx
import pandas as pd
import pytest
import yaml

from local_stack import processes
from serving import registry
from serving.launch import ROOT, free_port

NAME = "gemirec-bento"


def _bentoml(home, *args, cwd=ROOT, extra=None, timeout=300):
    env = {**os.environ, "BENTOML_HOME": str(home), "BENTOML_DO_NOT_TRACK": "True", **(extra or {})}
    run = subprocess.run([sys.executable, "-m", "bentoml", *args], cwd=cwd, env=env, capture_output=True,
                         text=True, timeout=timeout)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return run.stdout


@pytest.fixture(scope="module")
def built(tmp_path_factory, trained_tiny):
    """The tiny model promoted in a build home, and the bento `bentoml build` makes there."""
    home = tmp_path_factory.mktemp("build-home")
    reg = registry.Registry(home, NAME)
    version = registry.register(reg, trained_tiny, {"model": "gemirec"}, {})
    registry.promote(reg, version.tag, "test")
    out = _bentoml(home, "build", "-f", "serving/bentofile.yaml", ".", "-o", "tag",
                   extra={"GEMIREC_REGISTRY_NAME": NAME})
    bento_tag = out.strip().splitlines()[-1].removeprefix("__tag__:")
    assert bento_tag.startswith("gemirec:"), out
    return home, bento_tag, version.tag


def test_the_build_packs_the_production_version(built):
    home, bento_tag, model_tag = built
    name, version = bento_tag.split(":")
    info = yaml.safe_load((home / "bentos" / name / version / "bento.yaml").read_text())
    packed = [m["tag"] for svc in info["services"] for m in svc["models"]]
    assert packed == [model_tag]


def test_a_fresh_home_serves_the_packed_model(built, tmp_path, trained_tiny):
    home, bento_tag, model_tag = built
    archive = tmp_path / "gemirec.bento"
    _bentoml(home, "export", bento_tag, str(archive))
    fresh = tmp_path / "fresh-home"
    fresh.mkdir()
    _bentoml(fresh, "import", str(archive))
    assert sorted(p.name for p in (fresh / "bentos").iterdir()) == ["gemirec"]
    assert [p.name for p in (fresh / "models").iterdir()] == [NAME]  # the packed model came with it
    assert not (fresh / "gemirec").exists()  # no registry, no production pointer in this home

    port = free_port()
    env = {**os.environ, "BENTOML_HOME": str(fresh), "BENTOML_DO_NOT_TRACK": "True", "OMP_NUM_THREADS": "1",
           "GEMIREC_LOG_DIR": str(tmp_path / "logs")}
    for var in ("GEMIREC_REGISTRY_NAME", "GEMIREC_MODEL_FOLDER", "GEMIREC_FOLLOW_REGISTRY"):
        env.pop(var, None)
    log = tmp_path / "serve.log"
    with open(log, "wb") as sink:  # cwd outside the repository: only the bento's own code can be imported
        proc, record = processes.spawn([sys.executable, "-m", "bentoml", "serve", bento_tag, "--host",
                                        "127.0.0.1", "--port", str(port)], env, cwd=tmp_path, stdout=sink,
                                       stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        processes.wait_ready(f"{url}/readyz", proc, "the bento", 180, where=lambda: log.read_text()[-3000:])
        health = httpx.get(f"{url}/health").json()
        assert health["model_version"] == model_tag and str(fresh) in health["source"]
        items = pd.read_parquet(trained_tiny / "items.parquet")["item_id"].head(5).tolist()
        r = httpx.post(f"{url}/recommend", json={"history": items, "n": 5}, timeout=30)
        assert r.status_code == 200, r.text
        assert r.json()["model_version"] == model_tag and len(r.json()["items"]) == 5
        assert not r.json()["cold_start"]
    finally:
        processes.stop_record(record)
