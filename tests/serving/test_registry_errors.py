"""A broken production pointer is a typed registry error, reported in /health's last_error (never a crash
at startup, never a silent loop); a request is computed on the model version it was prepared with."""

import json

import pytest

from serving import registry
from serving.engine import Engine
from serving.runtime import ModelHolder, ServingConfig, build_snapshot
from serving.schemas import InterestsRequest, RecommendRequest


@pytest.fixture
def reg(tmp_path, tiny_model_folder):
    reg = registry.Registry(tmp_path / "home", "gemirec-errors")
    registry.promote(reg, registry.register(reg, tiny_model_folder, {}, {}).tag, "test")
    return reg


def holder_of(reg) -> ModelHolder:
    return ModelHolder(ServingConfig(registry_home=reg.home, registry_name=reg.name, reload_s=0, log_dir=None))


@pytest.mark.parametrize("tag", ["Not A Tag!", "../../etc:passwd", "a:b:c", 7])
def test_a_hand_edited_pointer_with_a_bad_tag_is_a_typed_error(reg, tag):
    reg.pointer.write_text(json.dumps({"tag": tag}))
    with pytest.raises(registry.RegistryError, match="tag"):
        registry.production(reg)
    holder = holder_of(reg)
    holder.start()  # startup goes on, unready, and says why
    status = holder.status()
    assert not status["ready"] and status["last_error"] is not None
    assert "Bad" in status["last_error"]["error"] and "tag" in status["last_error"]["error"]


def test_a_bad_tag_after_startup_keeps_the_model_and_reports_it(reg):
    holder = holder_of(reg)
    holder.start()
    served = holder.current.version
    reg.pointer.write_text(json.dumps({"tag": "Bad Tag"}))
    assert not holder.check()
    status = holder.status()
    assert status["model_version"] == served and status["last_error"]["kept"] == served
    assert "BadTag" in status["last_error"]["error"]


@pytest.mark.parametrize("text", ["{not json", "[]", '{"tag": null}'])
def test_an_unreadable_pointer_is_reported(reg, text):
    reg.pointer.write_text(text)
    with pytest.raises(registry.BadPointer):
        registry.production(reg)
    holder = holder_of(reg)
    holder.start()
    assert "BadPointer" in holder.status()["last_error"]["error"]


def test_a_request_is_computed_on_the_version_it_was_prepared_with(tiny_model_folder):
    holder = ModelHolder(ServingConfig(model_folder=tiny_model_folder, log_dir=None))
    holder.start()
    engine = Engine(holder)
    first = holder.current
    prepared = engine.prepare(RecommendRequest(history=[1, 2, 3], n=5))
    holder.current = build_snapshot(tiny_model_folder, "v2")  # a reload lands between prepare and compute
    answer = engine.answer(prepared, engine.compute([prepared])[0])
    assert answer.model_version == first.version != "v2"
    later = engine.prepare(InterestsRequest(history=[1, 2, 3]))
    assert later.snapshot.version == "v2"
