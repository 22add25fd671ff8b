"""A tampered model folder is refused before anything of it is served: each case of issue 25 (a replaced
index with its manifest entry removed, names outside the folder, devices, altered references, an index of
another catalogue), plus symlinks, size limits and the optional manifest signature."""

import json
import os
import shutil
import time

import numpy as np
import pytest

from model.faiss_index import ItemIndex
from model.persistence import integrity
from model.persistence.integrity import seal
from model.persistence.saved import ModelFolderError, load_model, sha256_file, verify_folder
from serving import registry
from serving.runtime import ModelHolder, ServingConfig


@pytest.fixture
def folder(tmp_path, tiny_model_folder):
    copy = tmp_path / "model"
    shutil.copytree(tiny_model_folder, copy)
    (copy / "reference").mkdir(exist_ok=True)
    (copy / "reference" / "history_length.parquet").write_bytes(b"PAR1 reference table PAR1")
    return copy


def edit_manifest(folder, change) -> None:
    manifest = json.loads((folder / "manifest.json").read_text())
    change(manifest)
    (folder / "manifest.json").write_text(json.dumps(manifest))


def refused(folder, match: str) -> str:
    with pytest.raises(ModelFolderError, match=match) as e:
        load_model(folder)
    holder = ModelHolder(ServingConfig(model_folder=folder, log_dir=None))
    holder.start()  # the service stays up, unready, and says why
    assert holder.current is None and "ModelFolderError" in holder.status()["last_error"]["error"]
    return str(e.value)


def test_the_untouched_folder_loads(folder):
    assert load_model(folder).index.n_items == len(load_model(folder).items)


def test_a_replaced_index_whose_manifest_entry_was_removed_is_refused(folder, tiny_model_folder):
    (folder / "index.faiss").write_bytes((tiny_model_folder / "index.faiss").read_bytes()[:-64] + b"x" * 64)
    edit_manifest(folder, lambda m: m["files"].pop("index.faiss"))
    refused(folder, "index.faiss present but not in the manifest")


@pytest.mark.parametrize("name", ["../../../etc/hostname", "/etc/shadow", "/dev/zero", "reference/../x.json"])
def test_a_manifest_naming_files_outside_the_folder_is_refused_unopened(folder, name):
    edit_manifest(folder, lambda m: m["files"].update({name: "0" * 64}))
    started = time.monotonic()
    message = refused(folder, "may not hold")
    assert time.monotonic() - started < 30  # /dev/zero was never read (it used to hang the loader)
    assert "root:" not in message and "does not match" not in message  # nothing of it was hashed


@pytest.mark.parametrize("target", ["/dev/zero", "/etc/hostname"])
def test_a_core_file_that_is_a_symlink_or_device_is_refused(folder, target):
    os.unlink(folder / "index.faiss")
    os.symlink(target, folder / "index.faiss")
    refused(folder, "index.faiss: cannot be opened as a plain file")


def test_a_fifo_in_place_of_a_file_does_not_hang_the_loader(folder):
    os.unlink(folder / "weights.pt")
    os.mkfifo(folder / "weights.pt")
    refused(folder, "weights.pt: not a regular file")


def test_a_reference_folder_that_is_a_symlink_is_refused(folder, tmp_path):
    shutil.move(folder / "reference", tmp_path / "elsewhere")
    os.symlink(tmp_path / "elsewhere", folder / "reference")
    refused(folder, "reference: not a plain folder")


def test_files_over_their_size_limit_are_refused(folder, monkeypatch):
    monkeypatch.setitem(integrity.CORE_LIMITS, "config.json", 100)
    refused(folder, "config.json: .* over the 100-byte limit")


def test_an_index_of_another_catalogue_is_refused_before_publishing(folder):
    loaded = load_model(folder)
    doubled = np.concatenate([loaded.index.vectors()] * 2)  # 2x the items, checksum updated to match
    ItemIndex.build(doubled).save(folder / "index.faiss")
    edit_manifest(folder, lambda m: m["files"].update({"index.faiss": sha256_file(folder / "index.faiss")}))
    verify_folder(folder)  # the checksums agree: only the catalogue check catches it
    refused(folder, f"holds {2 * len(loaded.items)} vectors .* catalogue {len(loaded.items)} items")


def test_registered_reference_tables_are_checksummed(folder, tmp_path):
    reg = registry.Registry(tmp_path / "home", "gemirec-tamper")
    version = registry.register(reg, folder, {}, {})
    assert "reference/history_length.parquet" in verify_folder(version.path)["files"]
    table = version.path / "reference" / "history_length.parquet"
    table.write_bytes(table.read_bytes().replace(b"reference", b"REFERENCE"))
    with pytest.raises(ModelFolderError, match="reference/history_length.parquet does not match"):
        verify_folder(version.path)
    (version.path / "reference" / "extra.parquet").write_bytes(b"added later")
    with pytest.raises(ModelFolderError, match="extra.parquet present but not in the manifest"):
        verify_folder(version.path)


def test_with_a_signing_key_unsigned_or_altered_folders_are_refused(folder, monkeypatch):
    monkeypatch.setenv(integrity.SIGNING_KEY_VAR, "test-signing-key")
    refused(folder, "unsigned manifest")
    # what save_model (and the registry's seal) write when the key is set: a signed manifest
    integrity.write_manifest(folder, json.loads((folder / "manifest.json").read_text()))
    seal(folder)  # re-sealing a signed folder keeps it signed
    assert load_model(folder).manifest["signature"]
    edit_manifest(folder, lambda m: m["metrics"].update({"val": {"recall@50": 0.99}}))
    refused(folder, "signature does not match")
    seal_with_other_key = integrity.sign(json.loads((folder / "manifest.json").read_text()), b"another key")
    (folder / "manifest.json").write_text(json.dumps(seal_with_other_key))
    refused(folder, "signature does not match")
    monkeypatch.delenv(integrity.SIGNING_KEY_VAR)
    load_model(folder)  # without a key the signature is not checked (nothing to check it against)
