"""Files and folders only their owner may open: databases, keys, the audit anchor.

What the bot creates is made 0700 (folders) or 0600 (files) whatever the
process's umask, because each holds secrets or the data that guards them.
Folders and files that already exist keep their permissions: the operator
chose those.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

FOLDER_MODE = 0o700
FILE_MODE = 0o600


def make_private_dir(path: Path) -> None:
    """Create ``path`` and any missing parents, each readable by the owner only."""
    missing: list[Path] = []
    current = path
    while not current.exists():
        missing.append(current)
        current = current.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=FOLDER_MODE)
        except FileExistsError:
            continue  # another process made it a moment ago
        # mkdir's mode passes through the umask; chmod sets it exactly.
        folder.chmod(FOLDER_MODE)


def create_private_file(path: Path, content: bytes = b"") -> bool:
    """Create ``path`` (0600) with ``content``; ``False``, and nothing written, when it already exists."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        return False
    with os.fdopen(descriptor, "wb") as handle:
        os.fchmod(handle.fileno(), FILE_MODE)
        handle.write(content)
        handle.flush()
        os.fsync(handle.fileno())
    return True


def replace_private_file(path: Path, content: bytes) -> None:
    """Write ``content`` to ``path`` (0600) so that a reader sees the old or the new file, never half of one."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()  # left behind by a process with our pid that died mid-write
    create_private_file(temporary, content)
    os.replace(temporary, path)
