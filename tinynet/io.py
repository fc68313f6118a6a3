"""Saving and loading weights and checkpoints as ``.npz`` files, never pickle.

    tn.save(model.state_dict(), "model.npz")
    model.load_state_dict(tn.load("model.npz"))
    tn.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": 3}, "ckpt.npz")

A flat ``{name: array}`` dict is stored as one npz member per array, readable by plain
``np.load``.  Anything else (nested dicts, lists, numbers, strings: a training checkpoint)
is stored as its arrays plus a JSON description of the structure in the member
``__tinynet_tree__``, and ``load`` rebuilds it.

Safety:
* ``load`` uses ``allow_pickle=False``: a pickle cannot run code on your machine.  A file
  holding pickled objects is refused with an error.
* ``save`` writes to a temporary file in the same folder, flushes it to disk (fsync) and
  renames it over the target (``os.replace`` is atomic), so a crash mid-write leaves the
  previous file intact, never a half-written one.
* Every error names the file.
"""
import json
import os
import tempfile
import zipfile

import numpy as np

from . import backend
from .autograd import Tensor

TREE_KEY = "__tinynet_tree__"


def _as_array(value):
    if isinstance(value, Tensor):
        value = value.data
    if backend.is_cupy_array(value):
        value = backend.to_cpu(value)
    return value


def _is_array(value):
    return isinstance(value, (np.ndarray, Tensor)) or backend.is_cupy_array(value)


def _encode(value, arrays, path):
    """The JSON-able skeleton of ``value``; arrays are moved into ``arrays``."""
    if _is_array(value):
        key = "/".join(path) or "array"
        while key in arrays or key == TREE_KEY:
            key += "_"
        arrays[key] = _as_array(value)
        return {"__array__": key}
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, dict):
        items = []
        for k, v in value.items():
            if not isinstance(k, (str, int)) or isinstance(k, bool):
                raise TypeError(f"save: dict keys must be str or int, got {k!r}")
            items.append([k, _encode(v, arrays, path + [str(k)])])
        return {"__dict__": items}
    if isinstance(value, (list, tuple)):
        encoded = [_encode(v, arrays, path + [str(i)]) for i, v in enumerate(value)]
        return {"__tuple__": encoded} if isinstance(value, tuple) else encoded
    raise TypeError(f"save: cannot store a {type(value).__name__} at "
                    f"'{'/'.join(path)}' (arrays, numbers, strings, lists and dicts only)")


def _decode(node, arrays):
    if isinstance(node, list):
        return [_decode(v, arrays) for v in node]
    if isinstance(node, dict):
        if "__array__" in node:
            return arrays[node["__array__"]]
        if "__tuple__" in node:
            return tuple(_decode(v, arrays) for v in node["__tuple__"])
        return {k: _decode(v, arrays) for k, v in node["__dict__"]}
    return node


def _write_npz(file, arrays):
    """Write ``arrays`` into the open binary ``file`` (one place, so tests can fail it)."""
    np.savez(file, **arrays)


def save(obj, path):
    """Save a state_dict (``{name: array}``) or a nested checkpoint to ``path`` atomically."""
    path = os.fspath(path)
    if not isinstance(obj, dict):
        raise TypeError(f"save: expected a dict (a state_dict or checkpoint) for '{path}', "
                        f"got {type(obj).__name__}")
    if all(isinstance(k, str) and _is_array(v) for k, v in obj.items()) and TREE_KEY not in obj:
        arrays = {k: _as_array(v) for k, v in obj.items()}
    else:
        arrays = {}
        tree = _encode(obj, arrays, [])
        arrays[TREE_KEY] = np.frombuffer(json.dumps(tree).encode("utf-8"), dtype=np.uint8)
    for key, array in arrays.items():
        if array.dtype.hasobject:
            raise TypeError(f"save: '{key}' has dtype object, which would need pickle; "
                            f"not writing '{path}'")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"save: folder '{folder}' for '{path}' does not exist")
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp",
                               dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            _write_npz(f, arrays)
            f.flush()
            os.fsync(f.fileno())          # the bytes are on disk before the rename
        os.replace(tmp, path)             # atomic: readers see the old or the new file
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    try:                                  # make the rename itself durable
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:                       # e.g. platforms that cannot open folders
        pass


def _check_file_kind(path):
    """Name what ``path`` is when it is not an .npz (a zip) file: NumPy would call any such
    file "pickled data"."""
    with open(path, "rb") as f:
        head = f.read(8)
    if head.startswith(b"PK") or head.startswith(b"\x93NUMPY"):
        return                                    # a zip (.npz) or a single .npy array
    if head.startswith(b"\x80") or head[:1] in (b"(", b"}", b"]"):
        return                                    # a pickle: the message below says so
    if not head:
        kind = "an empty file"
    elif all(32 <= b < 127 or b in b"\t\r\n" for b in head):
        kind = f"a text file (it starts with {head.decode('ascii')!r})"
    else:
        kind = f"not a zip archive (it starts with the bytes {head!r})"
    raise ValueError(f"load: '{path}' is {kind}, not an .npz file written by tn.save")


def load(path):
    """Load what ``save`` wrote: a ``{name: ndarray}`` dict, or the nested checkpoint."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"load: no such file '{path}'")
    _check_file_kind(path)
    try:
        npz = np.load(path, allow_pickle=False)
        if not isinstance(npz, np.lib.npyio.NpzFile):
            raise ValueError(f"load: '{path}' is a single .npy array, not an .npz "
                             "state_dict written by tn.save")
        with npz:
            arrays = {key: npz[key] for key in npz.files}   # reads (and checks) every member
        for key, value in arrays.items():
            if not isinstance(value, np.ndarray):    # NumPy hands back other members as bytes
                raise ValueError(f"load: '{path}' member '{key}' is not a .npy array; "
                                 "tn.save writes only .npy members")
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise ValueError(f"load: '{path}' holds pickled Python objects; refusing to "
                             "load it (pickle can run arbitrary code). Re-save the weights "
                             "as plain arrays with tn.save.") from exc
        if str(exc).startswith("load:"):
            raise
        raise ValueError(f"load: '{path}' is not a readable .npz file "
                         f"(truncated or corrupt?): {exc}") from exc
    except (zipfile.BadZipFile, EOFError, OSError, KeyError) as exc:
        raise ValueError(f"load: '{path}' is not a readable .npz file "
                         f"(truncated or corrupt?): {exc}") from exc
    if TREE_KEY not in arrays:
        return arrays
    try:
        tree = json.loads(arrays.pop(TREE_KEY).tobytes().decode("utf-8"))
        return _decode(tree, arrays)
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"load: '{path}' has a damaged structure description: {exc}") from exc
