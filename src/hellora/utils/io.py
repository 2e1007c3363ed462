"""Atomic file and folder writes, and JSON helpers.

Every result file hellora writes goes through here so that a crash or a kill mid-write never leaves a
half-written file in place of a good one: we write to a temporary file in the same folder, flush and fsync it,
then `os.replace` it over the target (atomic on POSIX and Windows). A result made of several files (an adapter,
a checkpoint) is written whole into a temporary sibling folder by `atomic_dir` and swapped in by `replace_dir`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator


def current_umask() -> int:
    """The process's umask (read by setting it and putting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _as_umask_allows(path: str | os.PathLike, mode: int) -> None:
    """Give a file made by mkstemp/mkdtemp (always 0600/0700) the mode a plain open/mkdir would: `mode & ~umask`."""
    try:
        os.chmod(path, mode & ~current_umask())
    except OSError:
        pass


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Call `write(tmp_path)` to produce the file, then move it over `path` atomically. The file gets the
    permissions the user's umask gives a new file (0644 under umask 022), not mkstemp's private 0600."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        _as_umask_allows(tmp, 0o666)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _fsync_dir(folder: Path) -> None:
    """Make renames inside `folder` durable (POSIX; a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def replace_dir(new: str | os.PathLike, path: str | os.PathLike) -> Path:
    """Move the complete folder `new` to `path`, replacing any folder there as a whole.

    The old folder is renamed away, `new` renamed in, and only then is the old one removed, so `path` always names
    either the complete old folder or the complete new one (between the two renames it briefly names nothing; a
    crash exactly there leaves the old folder beside it as `.<name>.old-*`). If the second rename fails the old
    folder is put back. `new` must be on the same filesystem as `path` (a sibling).
    """
    new, path = Path(new), Path(path)
    old = None
    if path.exists():
        old = path.with_name(f".{path.name}.old-{uuid.uuid4().hex[:12]}")
        os.rename(path, old)
    try:
        os.rename(new, path)
    except BaseException:
        if old is not None:
            os.rename(old, path)
        raise
    _fsync_dir(path.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return path


def fsync_tree(folder: str | os.PathLike) -> None:
    """Flush every file under `folder`, then every folder (deepest first), to disk.

    A rename is atomic but not durable by itself: after a host crash the new name can point at files whose data
    never reached the disk (empty or truncated). Syncing the contents before the rename closes that window.
    """
    folder = Path(folder)
    for root, _dirs, files in os.walk(folder, topdown=False):
        for name in files:
            fd = os.open(os.path.join(root, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(Path(root))


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


@contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temporary sibling of `path` to write into; on success it replaces `path` (`replace_dir`).

    The files are fsynced before the rename (`fsync_tree`). If the body raises, the temporary folder is removed
    and `path` is left exactly as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    _as_umask_allows(tmp, 0o777)
    try:
        yield tmp
        fsync_tree(tmp)
        replace_dir(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True


def _lock_path(folder: Path, given: Path) -> Path:
    """`.<name>.lock` beside `folder` (a real path), refusing the filesystem root, which has no beside."""
    from hellora.utils.errors import HelloraError

    if folder.parent == folder or not folder.name:
        raise HelloraError(f"{given}: a filesystem root cannot be an output folder; choose a folder inside it "
                           f"(nothing was changed)")
    return folder.parent / f".{folder.name}.lock"


def _take_lock(path: Path, shown) -> int:
    """Open and flock `path`, retrying when the file we locked was meanwhile removed by its previous holder (who
    unlinks it on release): the lock is held only on the file that the path names."""
    import fcntl

    from hellora.utils.errors import HelloraError

    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise HelloraError(f"{shown} is in use by another hellora process (pid {holder}); wait for it to "
                               "finish or choose another output_dir (nothing was changed)") from None
        try:
            mine, named = os.fstat(fd), os.stat(path)
            if (mine.st_dev, mine.st_ino) == (named.st_dev, named.st_ino):
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)


@contextmanager
def folder_lock(folder: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive advisory lock on `folder` while the body runs, or fail at once naming the holder.

    Two processes writing one run folder (a double launch, two sweeps over one output_dir) would interleave their
    files without either noticing. The lock is `flock` on the sibling `.<name>.lock` of the folder's real path
    (symlinks resolved), so every way of reaching one folder takes the same lock; a filesystem root is refused
    (it has no sibling). Parent folders made for the lock are removed again when the folder itself was never made.
    The holder writes its pid in the file and removes the file when the body ends, however
    it ends (a refusal included), so nothing is left behind; a process that opened the file before it was removed
    notices that the path now names another file and takes the lock again (`_take_lock`). The kernel releases an
    flock when its holder exits, even by SIGKILL; what such a death leaves is the file with the dead holder's pid.
    That stale record is what "reclaiming" means here: the next holder finds the pid dead, logs that it takes the
    lock over, and removes the file when done. Where `fcntl` does not exist (Windows) nothing is locked.
    """
    try:
        import fcntl  # noqa: F401
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    given = Path(folder)
    folder = Path(os.path.realpath(given))
    path = _lock_path(folder, given)
    shown = given if given == folder else f"{given} (= {folder})"
    made = [p for p in (folder.parent, *folder.parent.parents) if not p.exists()]
    folder.parent.mkdir(parents=True, exist_ok=True)
    fd = _take_lock(path, shown)
    try:
        previous = os.pread(fd, 32, 0).decode(errors="replace").strip()
        if previous.isdigit() and int(previous) != os.getpid() and not _pid_alive(int(previous)):
            logging.getLogger(__name__).warning("reclaimed the lock of %s left by pid %s, which is no longer running",
                                                folder, previous)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        try:
            os.unlink(path)  # still holding the lock: a waiting process then retries on a fresh file
        except OSError:
            pass
        os.close(fd)  # releases the lock
        if not folder.exists():  # nothing was written (a refusal): the parents made for the lock go too
            for parent in made:
                try:
                    parent.rmdir()
                except OSError:
                    break


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    def _write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)

    return atomic_write(path, _write)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def read_json(path: str | os.PathLike, what: str = "file") -> Any:
    """Read a JSON file; a missing or malformed file raises `HelloraError` naming it (and the line)."""
    from hellora.utils.errors import HelloraError

    path = Path(path)
    if not path.is_file():
        raise HelloraError(f"{what} not found: {path}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise HelloraError(f"{what} {path} is not valid JSON (line {e.lineno}, column {e.colno}): {e.msg}") from None
    except UnicodeDecodeError:
        raise HelloraError(f"{what} {path} is not UTF-8 text") from None


def iter_jsonl(path: str | os.PathLike, what: str = "file") -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, object) for each non-blank line of a JSONL file (gzip when it ends in .gz).

    A missing file, a line that is not JSON, or a line that is not an object raises `HelloraError` naming `what`,
    the file and the 1-based line.
    """
    import gzip

    from hellora.utils.errors import HelloraError

    path = Path(path)
    if not path.is_file():
        raise HelloraError(f"{what} not found: {path}")
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as e:
                    raise HelloraError(f"{what} {path} line {lineno}: not valid JSON ({e.msg})") from None
                if not isinstance(row, dict):
                    raise HelloraError(f"{what} {path} line {lineno}: expected a JSON object, got "
                                       f"{type(row).__name__}")
                yield lineno, row
    except (OSError, EOFError, UnicodeDecodeError) as e:
        raise HelloraError(f"cannot read {what} {path}: {e}") from None
