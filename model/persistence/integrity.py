"""Is a model folder complete and untampered? Checked against a FIXED list of the files a saved model may
hold, never against the folder's own say-so: a manifest is written by whoever wrote the folder.

- Names: only the files below, inside the folder (no `..`, no absolute paths: a manifest naming
  `../../../etc/hostname`, `/etc/shadow` or `/dev/zero` is refused before anything is opened).
- Kinds and sizes: each must be a regular file (symlinks, devices and FIFOs are refused, opened with
  O_NOFOLLOW | O_NONBLOCK so none can redirect or hang the loader) within its size limit.
- Completeness: every core file present must be in the manifest with its sha256 (a replaced index.faiss
  whose entry was removed is refused), the model's own kind decides which are required, and the
  monitor's reference tables (`reference/*.parquet`, `reference/*.json`) are checksummed once sealed.
- Authorship (optional): with GEMIREC_MODEL_SIGNING_KEY set, the manifest must carry an HMAC-SHA256 of its
  own content under that key; an unsigned or wrongly signed folder is refused. Without the key the
  checksums catch accidents and partial tampering, not someone who rewrites the manifest too.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import re
import stat
from pathlib import Path

SIGNING_KEY_VAR = "GEMIREC_MODEL_SIGNING_KEY"
MANIFEST = "manifest.json"
MiB, GiB = 1 << 20, 1 << 30
CORE_LIMITS = {  # every file a saved model may hold, with the most it may weigh
    "config.json": 1 * MiB,
    "items.parquet": 4 * GiB,
    "weights.pt": 16 * GiB,
    "index.faiss": 64 * GiB,
    "item_codes.parquet": 4 * GiB,
    "interests.json": 64 * MiB,
}
MANIFEST_LIMIT = 1 * MiB
REFERENCE_DIR = "reference"
REFERENCE_NAME = re.compile(r"reference/[A-Za-z0-9_][A-Za-z0-9_.-]{0,100}\.(parquet|json)")
REFERENCE_LIMIT = 1 * GiB
MAX_REFERENCE_FILES = 64


class ModelFolderError(RuntimeError):
    """The folder is not a complete, untampered saved model."""


def required_files(model: str | None) -> set[str]:
    """What a model of this kind cannot be loaded without (the manifest's `model`)."""
    if model is None:
        return {"config.json"}
    if model == "mostpop":
        return {"config.json", "items.parquet"}
    return {"config.json", "items.parquet", "weights.pt", "index.faiss"}


def limit_of(name: str) -> int | None:
    """The size limit of an allowed name; None for a name a model folder may not hold."""
    if name in CORE_LIMITS:
        return CORE_LIMITS[name]
    return REFERENCE_LIMIT if REFERENCE_NAME.fullmatch(name) else None


def open_regular(path: Path, limit: int) -> int:
    """A descriptor of `path` if it is a regular file (not followed through a symlink) within `limit`."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError as e:
        raise ModelFolderError(f"{path.parent}: {path.name} is missing") from e
    except OSError as e:  # ELOOP: a symlink
        raise ModelFolderError(f"{path}: cannot be opened as a plain file ({e.strerror})") from e
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise ModelFolderError(f"{path}: not a regular file")
    if info.st_size > limit:
        os.close(fd)
        raise ModelFolderError(f"{path}: {info.st_size} bytes, over the {limit}-byte limit")
    return fd


def sha256_fd(fd: int, limit: int) -> str:
    h, read = hashlib.sha256(), 0
    with os.fdopen(fd, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            read += len(block)
            if read > limit:  # grew while read
                raise ModelFolderError(f"a file grew past its {limit}-byte limit while hashed")
            h.update(block)
    return h.hexdigest()


def sha256_file(path: Path, limit: int | None = None) -> str:
    return sha256_fd(open_regular(Path(path), limit or max(CORE_LIMITS.values())), limit or 1 << 62)


def present_files(folder: Path) -> list[str]:
    """Allowed names that exist in the folder (core files and reference tables), as manifest names."""
    names = [n for n in CORE_LIMITS if os.path.lexists(folder / n)]
    ref = folder / REFERENCE_DIR
    if os.path.lexists(ref):
        if ref.is_symlink() or not ref.is_dir():
            raise ModelFolderError(f"{ref}: not a plain folder")
        refs = sorted(f"{REFERENCE_DIR}/{p.name}" for p in ref.iterdir())
        if len(refs) > MAX_REFERENCE_FILES:
            raise ModelFolderError(f"{ref}: {len(refs)} files, more than {MAX_REFERENCE_FILES}")
        names += [r for r in refs if REFERENCE_NAME.fullmatch(r)]
    return names


def canonical(manifest: dict) -> bytes:
    return json.dumps({k: v for k, v in manifest.items() if k != "signature"}, sort_keys=True,
                      separators=(",", ":"), default=float).encode()


def signing_key() -> bytes | None:
    key = os.environ.get(SIGNING_KEY_VAR, "")
    return key.encode() if key else None


def sign(manifest: dict, key: bytes | None = None) -> dict:
    """The manifest with its HMAC signature when a key is given or set in the environment."""
    key = key if key is not None else signing_key()
    unsigned = {k: v for k, v in manifest.items() if k != "signature"}
    if key is None:
        return unsigned
    return {**unsigned, "signature": hmac.new(key, canonical(unsigned), hashlib.sha256).hexdigest()}


def write_manifest(folder: Path, manifest: dict) -> None:
    tmp = folder / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps(sign(manifest), indent=1, default=float))
    tmp.replace(folder / MANIFEST)


def read_manifest(folder: Path) -> dict:
    path = folder / MANIFEST
    if not os.path.lexists(path):
        raise ModelFolderError(f"{folder}: no {MANIFEST}, not a saved GemiRec model folder")
    fd = open_regular(path, MANIFEST_LIMIT)
    with os.fdopen(fd, "rb") as f:
        raw = f.read(MANIFEST_LIMIT + 1)
    try:
        manifest = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelFolderError(f"{path}: unreadable manifest ({e})") from e
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files", {}), dict):
        raise ModelFolderError(f"{path}: not a manifest (an object with a 'files' object)")
    return manifest


def check_signature(folder: Path, manifest: dict) -> None:
    key = signing_key()
    if key is None:
        return
    given = manifest.get("signature")
    if not isinstance(given, str):
        raise ModelFolderError(f"{folder}: unsigned manifest, and {SIGNING_KEY_VAR} is set")
    expected = hmac.new(key, canonical(manifest), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(given, expected):
        raise ModelFolderError(f"{folder}: the manifest's signature does not match (altered, or signed "
                               "with another key)")


def verify_folder(folder: str | Path) -> dict:
    """The manifest of a complete, untampered folder; ModelFolderError says what is wrong otherwise."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    check_signature(folder, manifest)
    listed = manifest.get("files", {})
    for name, digest in listed.items():  # names first: nothing outside the fixed list is ever opened
        if not isinstance(name, str) or limit_of(name) is None:
            raise ModelFolderError(f"{folder}: the manifest lists {name!r}, which a model folder may not hold")
        if not isinstance(digest, str):
            raise ModelFolderError(f"{folder}: the manifest's checksum of {name} is not a string")
    present = present_files(folder)
    unlisted = sorted(n for n in present if n not in listed and (n in CORE_LIMITS or _sealed(listed)))
    if unlisted:
        raise ModelFolderError(f"{folder}: {', '.join(unlisted)} present but not in the manifest (replaced "
                               "or added after saving)")
    missing = sorted(required_files(manifest.get("model")) - set(listed))
    if missing:
        raise ModelFolderError(f"{folder}: the manifest lacks {', '.join(missing)}")
    for name, digest in listed.items():
        if sha256_fd(open_regular(folder / name, limit_of(name)), limit_of(name)) != digest:
            raise ModelFolderError(f"{folder}: {name} does not match its checksum (tampered or truncated)")
    return manifest


def _sealed(listed: dict) -> bool:
    """References count as part of the model once any is checksummed (sealed by the registry)."""
    return any(n.startswith(f"{REFERENCE_DIR}/") for n in listed)


def seal(folder: str | Path) -> dict:
    """Checksum the reference tables written after the model was saved into its manifest (and re-sign):
    the folder as registered is then verified whole. Core files are verified first, never re-hashed
    into the manifest, so sealing cannot bless a tampered model."""
    folder = Path(folder)
    manifest = verify_folder(folder)
    files = dict(manifest.get("files", {}))
    for name in present_files(folder):
        if name.startswith(f"{REFERENCE_DIR}/") and name not in files:
            files[name] = sha256_file(folder / name, REFERENCE_LIMIT)
    manifest = {**manifest, "files": files}
    write_manifest(folder, manifest)
    with contextlib.suppress(OSError):
        (folder / f".{MANIFEST}.tmp").unlink()
    return verify_folder(folder)
