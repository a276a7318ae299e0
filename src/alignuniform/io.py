"""Files, written so that a crash never leaves a half-written result, and read with errors
that name the file.

- :func:`atomic_write` and its text/JSON forms: the data goes to a temporary file in the
  destination's folder (created with mode ``0o666`` less the umask, like any file), which
  is flushed, fsynced, renamed over the destination, and the folder fsynced, so after a
  crash the destination holds the old or the new content, never a mix.
- :func:`remove_stale_temps` deletes the temporary files a ``kill -9`` left behind.
- :func:`write_json` writes strict JSON: ``NaN`` and ``Infinity`` are refused (they are
  not JSON, and most readers outside Python reject them).
- :func:`read_json` and :func:`read_jsonl` name the file (and line) in every error;
  ``read_jsonl`` skips a partial last line, which is what an interrupted append leaves.
- :class:`RunLock` holds an OS lock on a run folder for a process's life, so two
  processes never write one run.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import secrets
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

_TMP_SUFFIX = ".tmp"


def _temp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}{_TMP_SUFFIX}")


def fsync_dir(folder: str | Path) -> None:
    """Flush a folder's entries (a rename inside it) to disk; a no-op where unsupported."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems (and Windows) cannot fsync a directory
    finally:
        os.close(fd)


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], Any]) -> Path:
    """Write a file atomically: ``write(f)`` fills a temporary file, which then replaces
    ``path``.

    Args:
        path: Destination; its folder is created if needed.
        write: Called with the temporary file opened for binary writing.

    Returns:
        ``path`` as a Path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_name(path)
    # os.open with 0o666 applies the umask, as open() does (mkstemp would force 0o600)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    data = text.encode("utf-8")
    return atomic_write(path, lambda f: f.write(data))


def to_json(obj: Any, *, indent: int | None = 2, sort_keys: bool = False) -> str:
    """Serialise ``obj`` as strict JSON (NumPy and torch scalars become numbers).

    Raises:
        ValueError: ``obj`` holds a NaN or an infinity (say what the value means instead:
            ``None``, or a string).
    """
    try:
        return json.dumps(obj, indent=indent, sort_keys=sort_keys, allow_nan=False,
                          default=_json_default)
    except ValueError as err:
        found = _non_finite(obj, "")
        what = f"{found[0] or 'the value'} is {found[1]}" if found else str(err)
        raise ValueError(
            f"cannot write strict JSON: {what} (replace NaN/Infinity by null or a string)"
        ) from err


def _non_finite(obj: Any, where: str) -> tuple[str, float] | None:
    """The path (e.g. ``runs[2].uniformity``) and value of the first NaN or infinity in
    ``obj``, looking inside NumPy and torch values as :func:`to_json` serialises them."""
    if isinstance(obj, float):
        return None if math.isfinite(obj) else (where, obj)
    if isinstance(obj, dict):
        items = ((f"{where}.{k}" if where else str(k), v) for k, v in obj.items())
    elif isinstance(obj, (list, tuple)):
        items = ((f"{where}[{i}]", v) for i, v in enumerate(obj))
    elif callable(getattr(obj, "tolist", None)):
        return _non_finite(obj.tolist(), where)
    else:
        return None
    return next((hit for key, v in items if (hit := _non_finite(v, key))), None)


def _json_default(value: Any) -> Any:
    tolist = getattr(value, "tolist", None)  # numpy/torch scalars and arrays
    if callable(tolist):
        return tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def write_json(path: str | Path, obj: Any, *, sort_keys: bool = False) -> Path:
    """Write ``obj`` as indented strict JSON to ``path`` atomically."""
    return atomic_write_text(path, to_json(obj, sort_keys=sort_keys) + "\n")


def _read_text(path: Path) -> str:
    if not path.is_file():
        raise FileNotFoundError(f"no file at {path}")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        line = path.read_bytes()[: err.start].count(b"\n") + 1
        raise ValueError(f"{path}, line {line}: not UTF-8 text ({err.reason})") from err


def read_json(path: str | Path) -> Any:
    """Read a JSON file.

    Raises:
        FileNotFoundError: No file at ``path``.
        ValueError: The file is not UTF-8 or not valid JSON (truncated, say); the message
            names the file, line and column.
    """
    path = Path(path)
    text = _read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(
            f"{path}, line {err.lineno} column {err.colno}: not valid JSON ({err.msg}); "
            "the file may be truncated"
        ) from err


def read_jsonl(path: str | Path) -> list[Any]:
    """Read a JSON-lines file: one JSON value per line, blank lines ignored.

    A last line without its newline that does not parse is what an interrupted append
    leaves: it is skipped. Any other bad line is an error.

    Raises:
        FileNotFoundError: No file at ``path``.
        ValueError: A line (other than a partial last one) is not valid JSON; the message
            names the file and line.
    """
    path = Path(path)
    text = _read_text(path)
    lines = text.split("\n")
    rows = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as err:
            if number == len(lines):  # no newline after it: an append cut short
                break
            raise ValueError(f"{path}, line {number}: not valid JSON ({err.msg})") from err
    return rows


def append_jsonl(path: str | Path, row: Any) -> None:
    """Append one strict-JSON line to ``path`` (created if missing)."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(to_json(row, indent=None) + "\n")


def remove_stale_temps(folder: str | Path, *, older_than: float | None = None) -> list[Path]:
    """Delete the temporary files that :func:`atomic_write` left in ``folder`` when its
    process was killed; return what was removed.

    Call it only while no other process writes there (under a :class:`RunLock`), or, in a
    folder shared without a lock (a data cache), with ``older_than``: only files last
    modified more than that many seconds ago go, which no live write can be.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    cutoff = time.time() - older_than if older_than is not None else math.inf
    stale = [p for p in folder.glob(f".*{_TMP_SUFFIX}")
             if p.is_file() and p.stat().st_mtime < cutoff]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def check_writable_dir(folder: str | Path) -> Path:
    """Create ``folder`` if needed and check that files can be written in it.

    Raises:
        ValueError: ``folder`` exists but is not a folder, or cannot be created or written
            (read-only, no permission); the message says which.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"output folder {folder} exists and is not a folder: choose another --out")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = _temp_name(folder / "write-check")
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise ValueError(
            f"cannot write to output folder {folder}: {err.strerror or err}; choose a writable "
            "--out"
        ) from err
    return folder


class RunLockedError(RuntimeError):
    """Another process holds the run folder's lock."""


class RunLock:
    """An exclusive OS lock on a run folder (``DIR/.lock``), held until :meth:`release` or
    the process ends (the OS drops it even after ``kill -9``, so no stale lock remains).

    The lock file records the holder (pid, host, command) so a refused process can name it.

    Examples:
        >>> import tempfile
        >>> with RunLock(tempfile.mkdtemp()) as lock:
        ...     lock.held
        True
    """

    def __init__(self, folder: str | Path):
        self.folder = check_writable_dir(folder)
        self.path = self.folder / ".lock"
        self._file: IO[str] | None = None
        self.acquire()

    @property
    def held(self) -> bool:
        return self._file is not None

    def acquire(self) -> None:
        """Take the lock at once, or raise :class:`RunLockedError` naming the holder."""
        if self._file is not None:
            return
        f = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 (held for the run's life)
        try:
            _lock_file(f)
        except OSError as err:
            f.seek(0)
            holder = f.read().strip() or "another process"
            f.close()
            raise RunLockedError(
                f"{self.folder} is in use by {holder}; wait for it to finish, or choose "
                "another --out"
            ) from err
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()} on {socket.gethostname()} ({' '.join(sys.argv)[:200]})\n")
        f.flush()
        self._file = f

    def release(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.seek(0)
                self._file.truncate()
            self._file.close()  # closing drops the lock
            self._file = None

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _lock_file(f: IO[str]) -> None:
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt

        f.seek(0)
        msvcrt.locking(f.fileno(), msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]
        return
    fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
