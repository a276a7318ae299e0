"""Arrays of embeddings, pair indices and labels from the files people already have.

:func:`read_array` reads one array from ``.npy`` (memory-mapped: nothing is read until the
rows are used), ``.npz``, ``.pt`` (a tensor, or a dict entry), ``.safetensors``, ``.parquet``
(a list/array column, or all numeric columns) and ``.csv``/``.tsv`` of numbers.
:func:`read_embeddings`, :func:`read_pairs`, :func:`read_labels` and :func:`read_views`
add the shape and type checks of each role, with messages that name the file.

Examples:
    >>> from alignuniform.data.embedding_files import read_embeddings, read_labels
    >>> x = read_embeddings("emb.npy")  # doctest: +SKIP
    >>> y = read_labels("labels.csv", n=x.shape[0])  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = [
    "SUPPORTED",
    "read_array",
    "read_embeddings",
    "read_labels",
    "read_pairs",
    "read_views",
]

#: file suffixes :func:`read_array` understands
SUPPORTED = (".npy", ".npz", ".pt", ".pth", ".safetensors", ".parquet", ".csv", ".tsv")
_SUPPORTED_TEXT = ".npy, .npz, .pt/.pth, .safetensors, .parquet, .csv, .tsv"


def _choose(path: Path, names: list[str], key: str | None, kind: str) -> str:
    """The entry ``key`` of a multi-array file, or its only entry."""
    if key is not None:
        if key not in names:
            raise ValueError(f"{path}: no entry {key!r} (--key); its {kind} are {names}")
        return key
    if len(names) == 1:
        return names[0]
    if not names:
        raise ValueError(f"{path}: the file holds no arrays")
    raise ValueError(f"{path} holds {len(names)} {kind} {names}: choose one with --key NAME")


def _read_npy(path: Path) -> np.ndarray:
    with open(path, "rb") as f:
        if f.read(6) != b"\x93NUMPY":
            raise ValueError(
                f"{path}: not a .npy file (no NumPy header); supported: {_SUPPORTED_TEXT}"
            )
    try:
        a = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as err:  # object arrays cannot be memory-mapped, nor read without pickle
        if "mmap length" not in str(err):
            raise ValueError(f"{path}: not a numeric .npy array ({err})") from err
        a = None
    if a is None or a.offset + a.nbytes > path.stat().st_size:
        raise ValueError(f"{path} is truncated: {_npy_header(path)}, but the file holds "
                         f"{path.stat().st_size:,} bytes; write it again (np.save)")
    return a


def _npy_header(path: Path) -> str:
    """What a .npy header promises: its shape, dtype and total size."""
    fmt = np.lib.format
    with open(path, "rb") as f:
        version = fmt.read_magic(f)
        read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
        shape, _, dtype = read(f)
        start = f.tell()
    size = start + int(np.prod(shape)) * dtype.itemsize
    return f"its header says shape {shape} of {dtype} ({size:,} bytes with the header)"


def _read_npz(path: Path, key: str | None) -> np.ndarray:
    with np.load(path, allow_pickle=False) as z:
        return np.asarray(z[_choose(path, list(z.files), key, "arrays")])


def _read_pt(path: Path, key: str | None) -> np.ndarray:
    import torch

    obj = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(obj, dict):
        tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
        if key is not None and key in obj and key not in tensors:
            raise ValueError(f"{path}: entry {key!r} is a {type(obj[key]).__name__}, not a tensor")
        obj = tensors[_choose(path, list(tensors), key, "tensor entries")]
    elif key is not None:
        raise ValueError(f"{path} holds one tensor, not a dict: drop --key {key}")
    if not isinstance(obj, torch.Tensor):
        kind = type(obj).__name__
        raise ValueError(f"{path}: expected a tensor or a dict of tensors, got {kind}")
    if obj.dtype == torch.bfloat16:
        obj = obj.float()
    return obj.detach().numpy()


def _read_safetensors(path: Path, key: str | None) -> np.ndarray:
    import torch
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        tensor = f.get_tensor(_choose(path, list(f.keys()), key, "tensors"))
    if tensor.dtype == torch.bfloat16:
        tensor = tensor.float()
    return tensor.numpy()


def _arrow_column(path: Path, name: str, column) -> np.ndarray:
    import pyarrow as pa
    import pyarrow.compute as pc

    if column.null_count:
        raise ValueError(f"{path}: column {name!r} has {column.null_count} missing values")
    kind = column.type
    if pa.types.is_fixed_size_list(kind):
        column = column.combine_chunks()
        values = column.flatten().to_numpy(zero_copy_only=False)
        return values.reshape(len(column), kind.list_size)
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        column = column.combine_chunks()
        lengths = pc.list_value_length(column).to_numpy(zero_copy_only=False)
        if len(lengths) and (lengths != lengths[0]).any():
            bad = int(np.flatnonzero(lengths != lengths[0])[0])
            raise ValueError(
                f"{path}: column {name!r} holds lists of different lengths (row 0 has "
                f"{lengths[0]}, row {bad} has {lengths[bad]}): embeddings need one length"
            )
        values = column.flatten()
        if values.null_count:
            raise ValueError(f"{path}: column {name!r} has {values.null_count} missing values")
        width = int(lengths[0]) if len(lengths) else 0
        return values.to_numpy(zero_copy_only=False).reshape(len(column), width)
    if pa.types.is_integer(kind) or pa.types.is_floating(kind):
        return column.to_numpy()
    raise ValueError(f"{path}: column {name!r} has type {kind}, not numbers or lists of numbers")


def _read_parquet(path: Path, key: str | None) -> np.ndarray:
    import pyarrow as pa
    import pyarrow.parquet as pq

    if key is not None:
        _choose(path, pq.read_schema(path).names, key, "columns")
    table = pq.read_table(path, columns=[key] if key is not None else None)
    if key is not None:
        return _arrow_column(path, key, table.column(key))
    lists = [
        f.name for f in table.schema
        if pa.types.is_list(f.type) or pa.types.is_large_list(f.type)
        or pa.types.is_fixed_size_list(f.type)
    ]
    if len(lists) == 1:
        return _arrow_column(path, lists[0], table.column(lists[0]))
    if len(lists) > 1:
        raise ValueError(f"{path} has {len(lists)} list columns {lists}: choose one with --key")
    numeric = [f.name for f in table.schema
               if pa.types.is_integer(f.type) or pa.types.is_floating(f.type)]
    if not numeric:
        raise ValueError(f"{path}: no list column and no numeric columns")
    cols = [_arrow_column(path, n, table.column(n)) for n in numeric]
    return np.stack(cols, axis=1) if len(cols) > 1 else cols[0]


def _read_text(path: Path, delimiter: str) -> np.ndarray:
    with open(path, encoding="utf-8") as f:
        first = f.readline()
        if not first.strip() and not f.read().strip():
            raise ValueError(f"{path} is empty: no rows of numbers")
    try:  # a header line is skipped
        [float(v) for v in first.strip().split(delimiter) if v.strip()]
        skip = 0
    except ValueError:
        skip = 1
    try:
        return np.loadtxt(path, delimiter=delimiter, skiprows=skip, ndmin=2, dtype=np.float64)
    except ValueError as err:
        raise ValueError(f"{path}: not a table of numbers ({err})") from err


def read_array(path: str | Path, key: str | None = None) -> np.ndarray:
    """One array from a file, by suffix (see :data:`SUPPORTED`).

    ``.npy`` files come back memory-mapped (read-only, nothing read yet); the other formats
    are read into memory. ``key`` picks an entry of ``.npz``, ``.pt`` dicts,
    ``.safetensors`` and a ``.parquet`` column; files with one entry need none.

    Raises:
        FileNotFoundError: no such file.
        ValueError: a folder, an unsupported suffix (the message lists the supported ones),
            an unreadable or truncated file, a ragged parquet list column, several entries
            and no key, or a ``key`` that is not in the file (the message lists what is).
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a folder, not a file: give the embeddings file in it")
    if not path.is_file():
        raise FileNotFoundError(f"no file at {path}")
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED:
        raise ValueError(
            f"{path}: unsupported file type {suffix or '(no suffix)'!r}; "
            f"supported: {_SUPPORTED_TEXT}"
        )
    try:
        if suffix == ".npy":
            return _read_npy(path)
        if suffix == ".npz":
            return _read_npz(path, key)
        if suffix in (".pt", ".pth"):
            return _read_pt(path, key)
        if suffix == ".safetensors":
            return _read_safetensors(path, key)
        if suffix == ".parquet":
            return _read_parquet(path, key)
        return _read_text(path, "\t" if suffix == ".tsv" else ",")
    except ImportError as err:  # optional readers: pyarrow, safetensors
        raise ValueError(
            f"{path}: reading {suffix} files needs the {err.name} package: "
            f"pip install 'alignuniform[files]'"
        ) from err
    except Exception as err:  # corrupt files raise whatever their reader raises
        ours = isinstance(err, ValueError) and str(err.args[0] if err.args else "")
        if ours and ours.startswith(str(path)):  # already names the file and the problem
            raise
        raise ValueError(
            f"{path}: could not read it as {suffix} ({type(err).__name__}: {err}); "
            f"supported: {_SUPPORTED_TEXT}"
        ) from err


def _numeric(a: np.ndarray, path: Path, what: str, *, integer: bool = False) -> None:
    kind = a.dtype.kind
    ok = "iu" if integer else "iuf"
    if kind not in ok and not (integer and kind == "f"):
        raise ValueError(f"{what} {path}: expected numbers, got dtype {a.dtype}")


def read_embeddings(path: str | Path, key: str | None = None, *, what: str = "EMB") -> np.ndarray:
    """A (N, d) numeric array of embeddings (a memmap for ``.npy``); values not yet checked.

    Raises ``ValueError`` for a 1-D or 3-D array, an empty one or a non-numeric dtype.
    """
    path = Path(path)
    a = read_array(path, key)
    _numeric(a, path, what)
    if a.ndim != 2:
        hint = (" (one number per row: labels? pass them with --labels)" if a.ndim == 1
                else "; flatten the trailing dimensions first, e.g. x.reshape(len(x), -1)")
        raise ValueError(
            f"{what} {path} must be 2-D (N rows x d dimensions), got shape {a.shape}{hint}"
        )
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(f"{what} {path} is empty (shape {a.shape})")
    return a


def _as_index(a: np.ndarray, path: Path, what: str) -> np.ndarray:
    _numeric(a, path, what, integer=True)
    if a.dtype.kind == "f":  # csv, or a float array of whole numbers
        if not np.isfinite(a).all() or (a != np.round(a)).any():
            raise ValueError(f"{what} {path}: expected integers, found fractional or NaN values")
    return np.asarray(a, dtype=np.int64)


def read_pairs(path: str | Path, n: int, key: str | None = None) -> np.ndarray:
    """A (K, 2) int64 array of row indices into a set of ``n`` embeddings, all in range."""
    path = Path(path)
    a = read_array(path, key)
    if a.ndim != 2 or a.shape[1] != 2:
        raise ValueError(
            f"pairs {path} must have shape (K, 2) (row i pairs EMB[a] with EMB[b]), "
            f"got {a.shape}"
        )
    if a.shape[0] == 0:
        raise ValueError(f"pairs {path} holds no pairs")
    a = _as_index(np.asarray(a), path, "pairs")
    bad = (a < 0) | (a >= n)
    if bad.any():
        row = int(np.flatnonzero(bad.any(axis=1))[0])
        raise ValueError(
            f"pairs {path}: {int(bad.any(axis=1).sum())} pairs hold indices out of range "
            f"[0, {n - 1}] (first: pair {row} = {a[row].tolist()}; EMB has {n} rows)"
        )
    return a


def read_labels(path: str | Path, n: int, key: str | None = None) -> np.ndarray:
    """A (n,) int64 array of class labels, one per embedding row."""
    path = Path(path)
    a = np.asarray(read_array(path, key))
    if a.ndim == 2 and a.shape[1] == 1:
        a = a[:, 0]
    if a.ndim != 1:
        raise ValueError(f"labels {path} must be one integer per row, got shape {a.shape}")
    if a.shape[0] != n:
        raise ValueError(f"labels {path} has {a.shape[0]} entries but EMB has {n} rows")
    a = _as_index(a, path, "labels")
    if (a < 0).any():
        raise ValueError(f"labels {path}: {int((a < 0).sum())} labels are negative")
    return a


def read_views(path: str | Path, key: str | None = None) -> np.ndarray:
    """A (n, q, d) numeric array: q >= 2 augmented views of each of n >= 2 samples (LiDAR's
    input; a memmap for ``.npy``); values not yet checked. Only the formats that hold
    N-dimensional arrays can: .npy, .npz, .pt/.pth, .safetensors."""
    path = Path(path)
    a = read_array(path, key)
    _numeric(a, path, "views")
    if a.ndim != 3:
        tables = path.suffix.lower() in (".parquet", ".csv", ".tsv")
        flat = " (.parquet/.csv/.tsv hold 2-D tables only: save views as .npy)" if tables else ""
        raise ValueError(
            f"views {path} must be 3-D (n samples x q views x d dimensions), got shape "
            f"{a.shape}{flat}"
        )
    if a.shape[0] < 2 or a.shape[1] < 2 or a.shape[2] == 0:
        raise ValueError(
            f"views {path} must hold q >= 2 views of n >= 2 samples, got shape {a.shape}"
        )
    return a
