"""Directories and files that appear complete or not at all.

Everything is written into a temporary sibling (`.<name>.tmp-XXXXXXXX`, same file system) and renamed
into place only when complete, so an interrupted write never leaves a path that looks valid and an
existing one is untouched until the new one is ready:

    with atomic_directory(out_dir, overwrite=True) as tmp:
        write_everything_into(tmp)          # an exception removes tmp; out_dir stays as it was

Replacing an existing directory is one `renameat2(RENAME_EXCHANGE)` on Linux (the path is always either
the old or the new directory); elsewhere it takes two renames and the path is missing in between (the
old directory is put back if the second rename fails).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import secrets
import shutil
import sys
from pathlib import Path
from typing import Callable, Iterator, Optional, Union

PathLike = Union[str, os.PathLike]

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def make_sibling_dir(path: PathLike, tag: str) -> Path:
    """A new, uniquely named directory `.<name>.<tag>-XXXXXXXX` beside `path`, with the usual
    permissions (tempfile.mkdtemp would make it private to the user, and a rename keeps that)."""
    path = Path(path).absolute()
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(100):
        candidate = path.parent / f".{path.name}.{tag}-{secrets.token_hex(4)}"
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            continue
    raise FileExistsError(f"cannot create a temporary directory beside {path}")


def remove(path: PathLike) -> None:
    """Deletes a file, link or directory tree; missing paths are fine."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def exchange(a: PathLike, b: PathLike) -> bool:
    """Atomically swaps two existing paths (Linux renameat2 RENAME_EXCHANGE); False where the platform,
    C library or file system cannot."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    renameat2.restype = ctypes.c_int
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False
    raise OSError(err, f"cannot exchange {a} and {b}: {os.strerror(err)}")


def replace_directory(new: PathLike, path: PathLike) -> None:
    """Puts the complete directory `new` at `path`, deleting what was there (see the module doc)."""
    new, path = Path(new), Path(path)
    if not path.exists() and not path.is_symlink():
        os.replace(new, path)
    elif exchange(new, path):
        remove(new)  # `new` now holds the old content.
    else:
        old = make_sibling_dir(path, "old")
        os.replace(path, old / path.name)
        try:
            os.replace(new, path)
        except BaseException:
            os.replace(old / path.name, path)
            old.rmdir()
            raise
        remove(old)


@contextlib.contextmanager
def atomic_directory(path: PathLike, overwrite: bool = False,
                     replaceable: Optional[Callable[[Path], bool]] = None) -> Iterator[Path]:
    """Yields a temporary directory that becomes `path` when the block finishes without an exception.

    overwrite: whether an existing `path` may be replaced. replaceable: with overwrite, a check that the
    existing directory is one this writer made (e.g. it holds a marker file); an existing path that fails
    it is refused. A non-empty directory appearing at `path` meanwhile is never silently replaced unless
    overwrite is set. Raises FileExistsError (before writing anything) when `path` may not be replaced.
    """
    path = Path(path).absolute()
    if path.exists() or path.is_symlink():
        if not path.is_dir():
            raise FileExistsError(f"{path} exists and is not a directory")
        empty = not any(path.iterdir())
        if not empty and not overwrite:
            raise FileExistsError(f"{path} exists and is not empty (pass overwrite=True / --overwrite to replace it)")
        if not empty and replaceable is not None and not replaceable(path):
            raise FileExistsError(f"{path} is not a directory this tool wrote; refusing to replace it")
    tmp = make_sibling_dir(path, "tmp")
    try:
        yield tmp
        if path.is_dir() and not any(path.iterdir()):
            path.rmdir()
        if overwrite:
            replace_directory(tmp, path)
        else:
            os.rename(tmp, path)  # fails (ENOTEMPTY/EEXIST) rather than replace a non-empty newcomer
    except BaseException:
        remove(tmp)
        raise


def write_text(path: PathLike, text: str) -> None:
    """Writes a text file atomically (temporary sibling, fsync, rename)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{secrets.token_hex(4)}")
    try:
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


__all__ = ["atomic_directory", "exchange", "make_sibling_dir", "remove", "replace_directory", "write_text"]
