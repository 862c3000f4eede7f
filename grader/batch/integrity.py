"""Stored results a resumed batch can trust: each result.json is signed (HMAC-SHA256) by the batch that wrote
it, with a key kept outside the results folder.

A result.json rewritten by anyone else (a submission that found the results folder, a hand edit) no longer
matches its signature, so a resumed run grades that submission again instead of keeping a forged grade. The
key lives in the user's state folder, created once with mode 0600; REDIS_GRADER_BATCH_KEY names another key
file (tests, or several results folders that must not share one).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path
from typing import Any

KEY_VAR = "REDIS_GRADER_BATCH_KEY"
KEY_BYTES = 32


def key_path() -> Path:
    override = os.environ.get(KEY_VAR)
    if override:
        return Path(override).expanduser()
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "redis-grader" / "batch.key"


def signing_key(*, create: bool = True) -> bytes | None:
    """The batch key; created (0600, never readable by others) when there is none and `create`. None when it
    is missing or unreadable and not to be created: then no stored result can be verified."""
    path = key_path()
    try:
        key = path.read_bytes()
    except FileNotFoundError:
        if not create:
            return None
        return _create_key(path)
    except OSError:
        return None
    return key if len(key) >= KEY_BYTES else None


def _create_key(path: Path) -> bytes | None:
    key = secrets.token_bytes(KEY_BYTES)
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another batch created it meanwhile: use theirs
        return signing_key(create=False)
    except OSError:
        return None
    with os.fdopen(fd, "wb") as fh:
        fh.write(key)
    return key


def signature(key: bytes, result: bytes, settings: dict[str, Any], folder: str) -> str:
    """HMAC-SHA256 over the result document's bytes, the settings it was graded with and the name of the folder it
    is stored in (so none can be swapped for another's: a student's result copied into another's folder is not that
    student's)."""
    message = json.dumps({**settings, "folder": folder}, sort_keys=True).encode() + b"\n" + result
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def verified(key: bytes | None, result: bytes, settings: dict[str, Any], folder: str, claimed: object) -> bool:
    if key is None or not isinstance(claimed, str):
        return False
    return hmac.compare_digest(signature(key, result, settings, folder), claimed)
