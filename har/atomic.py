"""Writing a JSON file atomically: readers see the old file or the new one, never half of one."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def write_json_atomic(path: str | os.PathLike[str], data: Any, *, fsync: bool = False,
                      sort_keys: bool = False) -> Path:
    """Write ``data`` as indented JSON to ``path`` through ``path.tmp`` and :func:`os.replace`.
    ``fsync`` forces the bytes to disk before the rename (a recording's sidecar on close)."""
    p = Path(path)
    tmp = p.with_name(p.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, sort_keys=sort_keys)
        f.write("\n")
        if fsync:
            f.flush()
            os.fsync(f.fileno())
    os.replace(tmp, p)
    return p


def replace_dir(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> Path:
    """Move the complete directory ``src`` to ``dst`` by renames (same file system): readers see
    the old ``dst`` or the new one, never a half-written one. An existing ``dst`` is renamed
    aside first and removed once ``src`` is in place (between the two renames ``dst`` is absent,
    never partial)."""
    import shutil
    import tempfile

    s, d = Path(src), Path(dst)
    old: Path | None = None
    if d.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{d.name}.old-", dir=d.parent))
        os.replace(d, old / d.name)
    try:
        os.replace(s, d)
    except OSError:
        if old is not None:
            os.replace(old / d.name, d)
            old.rmdir()
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return d
