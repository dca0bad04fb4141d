"""What an artefact was made from: the code that made it and the media it read.

Every cached or stamped artefact (result parts, checkpoints, LoRA adapters, per-frame
features, decoded frames, generations) is keyed by these, so that a changed input or
changed code is never served a stale result:

- :func:`code_version`: emobench's version and a hash of its installed source files;
- :func:`file_token`: one media file or frame folder, by one of :data:`FINGERPRINTS`:

  - ``stat`` (default): size and modification time (for a frame folder: each image's name,
    size and modification time). Detects edits, replacements, deletions and touched files;
    misses a file rewritten with the same size and modification time (e.g. copied back
    with ``cp -p`` / ``rsync -t``).
  - ``content``: a BLAKE2b hash of the bytes (for a frame folder: of each image's name and
    bytes). Detects any change of content, and nothing else (a touched file keeps its
    token). Hashed once per file and status change in a process (BLAKE2b, ~1 GB/s).

- :func:`media_fingerprint`: a hash over (clip id, token) of a set of clips;
- :func:`file_sha256`: the SHA-256 of a file that names a model (weights, predictions).
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

import emobench

#: How media files are fingerprinted (``[cache] fingerprint``): see the module docstring.
FINGERPRINTS = ("stat", "content")

_CHUNK = 1 << 20


@functools.lru_cache(maxsize=1)
def code_version() -> dict[str, str]:
    """emobench's version and a short hash of its installed source files (``*.py``)."""

    root = Path(emobench.__file__).resolve().parent
    h = hashlib.sha256()
    for p in sorted(root.rglob("*.py")):
        h.update(p.relative_to(root).as_posix().encode())
        h.update(b"\0")
        h.update(p.read_bytes())
    return {"emobench": emobench.__version__, "source": h.hexdigest()[:16]}


@functools.lru_cache(maxsize=65536)
def _content_hash(path: str, inode: int, size: int, mtime_ns: int, ctime_ns: int) -> str:
    """BLAKE2b of a file's bytes, memoised by its inode, size, modification time and
    status-change time (which every write and every ``utime`` moves, and no call sets)."""
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


@functools.lru_cache(maxsize=4096)
def _sha256(path: str, inode: int, size: int, mtime_ns: int, ctime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 (hex) of a file's bytes, e.g. a weights or predictions file that names a
    model; memoised as :func:`_content_hash` is (inode, size, modification and
    status-change time), so a rewritten file is hashed again."""
    p = os.path.abspath(os.fspath(path))
    st = os.stat(p)
    return _sha256(p, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _file_token(path: str, st: os.stat_result, mode: str) -> str:
    if mode == "content":
        return _content_hash(path, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    return f"{st.st_size}:{st.st_mtime_ns}"


def file_token(path: str | os.PathLike[str], mode: str = "stat") -> str:
    """A short token that changes when the media at ``path`` changes (see the module
    docstring for what each ``mode`` detects); ``"missing"`` / ``"unreadable"`` when it
    cannot be read. A folder (frame images) is tokenised file by file."""
    if mode not in FINGERPRINTS:
        raise ValueError(f"unknown fingerprint mode {mode!r}; expected one of {FINGERPRINTS}")
    p = os.fspath(path)
    try:
        st = os.stat(p)
        if not os.path.isdir(p):
            return _file_token(p, st, mode)
        h = hashlib.blake2b(digest_size=16)
        with os.scandir(p) as it:
            entries = sorted((e for e in it if e.is_file()), key=lambda e: e.name)
        for e in entries:
            h.update(f"{e.name}\0{_file_token(e.path, e.stat(), mode)}\n".encode())
        return h.hexdigest()
    except FileNotFoundError:
        return "missing"
    except OSError as exc:  # a symlink loop, no permission, ...: never a traceback
        return f"unreadable ({exc.errno})"


def media_fingerprint(paths: Iterable[tuple[str, str]], mode: str = "stat") -> str:
    """A hash of each clip's media (clip id, :func:`file_token`); path-independent."""
    h = hashlib.sha256()
    for clip_id, path in sorted(set(paths)):
        h.update(f"{clip_id}|{file_token(path, mode)}\n".encode())
    return h.hexdigest()[:16]


__all__ = ["FINGERPRINTS", "code_version", "file_sha256", "file_token", "media_fingerprint"]
