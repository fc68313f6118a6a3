"""Reusable memory for the Numba kernels: an allocator, kept apart from the loops.

Why: a fresh NumPy array of many MiB is new memory from the operating system, and the first
write to each 4 KiB page of it costs a page fault: about a fifth of a convolution's time at
the reference CNN's sizes.  So the arrays that live only inside one kernel call (col, the
GEMM results before their layout swap, the swapped dL/dy) come from one growing buffer per
thread and role (``scratch``), and the cols a forward pass saves for dL/dW go back to a small
pool when their Function is released (``recycle``), to be handed out by the next forward
(``new_buffer``).

The rest of a step's arrays (activations, gradients) are made by NumPy and freed each step,
and glibc's malloc hands large freed blocks back to the operating system, so the next step
faults them in again.  ``keep_freed_memory`` (called when tinynet is imported; opt out with
TINYNET_KEEP_FREED_MEMORY=0) tells malloc to keep them for reuse: measured on the demo's
step (2-vCPU AMD EPYC VM), 375 -> 298-311 ms per training step and 944 -> 612-625 ms per
evaluation batch of 256, for about 1.2x the peak resident memory.  PyTorch in the same
process gains as much (it allocates through the same malloc).

Every array a kernel writes starts GAP bytes into its allocation (``empty``).  Why: LLVM
vectorises the kernels' loops behind a run-time check that the output does not overlap an
input, and that check is conservative by a few bytes.  An output that begins less than 32
bytes after an input's end fails it and runs the scalar loop instead, 5-25x slower
(measured: ReLU's backward on 64x64x32x32, 34 ms instead of 2.7 ms).  That is exactly where
malloc puts an array allocated right after another: one 16-byte header further on.

Nothing here holds an op's saved state: what backward needs lives on the Function (see
functional/conv.py).  What stays between calls is only memory to write into again, bounded:
one buffer per role and thread, and at most MAX_SPARE_BYTES of spare cols.  ``release()``
frees all of it.
"""
import ctypes
import math
import os
import platform
import threading
import weakref

import numpy as np

GAP = 64                            # bytes before each kernel output; keeps 16-byte alignment

_per_thread = threading.local()     # role -> uint8 buffer, grown as needed

_spare = {}                         # nbytes -> [uint8 buffers a finished backward gave back]
MAX_SPARE_BYTES = 256 * 2**20
# The buffers new_buffer has handed out and nobody has given back yet, by id.  recycle takes
# only these: a kernel output from ``empty`` is allocated the same way, and taking a view
# of a live activation into the pool would let the next new_buffer write into it.
_handed_out = weakref.WeakValueDictionary()


def _allocate(nbytes):
    """A uint8 buffer of nbytes + GAP; its first GAP bytes are never used (``_usable``)."""
    return np.empty(nbytes + GAP, dtype=np.uint8)


def _usable(buffer, nbytes):
    return buffer[GAP:GAP + nbytes]


def empty(shape, dtype):
    """np.empty(shape, dtype), C-ordered, for a kernel to write into: never right behind
    another array, so the kernel's vectorised loop is not refused."""
    nbytes = math.prod(shape) * np.dtype(dtype).itemsize
    return _usable(_allocate(nbytes), nbytes).view(dtype).reshape(shape)


def empty_like(a):
    return empty(a.shape, a.dtype)


def scratch(role, shape, dtype):
    """An uninitialized array of ``shape`` in this thread's reusable buffer for ``role``.
    Valid until the next call for the same role on this thread."""
    buffers = _per_thread.__dict__
    nbytes = math.prod(shape) * np.dtype(dtype).itemsize
    buffer = buffers.get(role)
    if buffer is None or buffer.size - GAP < nbytes:
        buffer = buffers[role] = _allocate(nbytes)
    return _usable(buffer, nbytes).view(dtype).reshape(shape)


def new_buffer(shape, dtype):
    """An uninitialized array of its own (a spare one of this size when there is one)."""
    nbytes = math.prod(shape) * np.dtype(dtype).itemsize
    spares = _spare.get(nbytes)
    buffer = spares.pop() if spares else _allocate(nbytes)
    _handed_out[id(buffer)] = buffer
    return _usable(buffer, nbytes).view(dtype).reshape(shape)


def recycle(array):
    """Give back an array from ``new_buffer`` that nothing reads any more.  Anything else
    (a kernel output, a NumPy array, a buffer already given back) is ignored."""
    buffer = array.base             # NumPy points every view at the array owning the memory
    if buffer is None or _handed_out.get(id(buffer)) is not buffer \
            or buffer.size != array.nbytes + GAP:
        return
    del _handed_out[id(buffer)]
    spare_bytes = sum(b.nbytes for buffers in list(_spare.values()) for b in buffers)
    if spare_bytes + buffer.nbytes <= MAX_SPARE_BYTES:
        _spare.setdefault(array.nbytes, []).append(buffer)


_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4      # mallopt's parameter numbers (glibc malloc.h)


def keep_freed_memory():
    """Make glibc's malloc keep freed memory for the next allocation instead of returning
    it to the operating system: no blocks served by mmap (M_MMAP_MAX = 0), and the heap's
    free top trimmed only beyond 2 GiB.  Process-wide; True when it took effect (Linux with
    glibc), False elsewhere.  ``import tinynet`` calls it unless TINYNET_KEEP_FREED_MEMORY=0."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    return bool(libc.mallopt(_M_MMAP_MAX, 0) and libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))


def _keep_freed_memory_by_default():
    if os.environ.get("TINYNET_KEEP_FREED_MEMORY", "1").strip() not in ("0", "false", "no"):
        keep_freed_memory()


def held_bytes():
    """Bytes held between calls: this thread's scratch buffers and the spare pool."""
    mine = sum(b.nbytes for b in _per_thread.__dict__.values())
    return mine + sum(b.nbytes for buffers in list(_spare.values()) for b in buffers)


def release():
    """Free this thread's scratch buffers and the spare pool."""
    _per_thread.__dict__.clear()
    _spare.clear()
    _handed_out.clear()
