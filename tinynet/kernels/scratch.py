"""Reusable memory for the Numba kernels: an allocator, kept apart from the loops.

Why: a fresh NumPy array of many MiB is new memory from the operating system, and the first
write to each 4 KiB page of it costs a page fault: about a fifth of a convolution's time at
the reference CNN's sizes.  So the arrays that live only inside one kernel call (col, the
GEMM results before their layout swap, the swapped dL/dy) come from one growing buffer per
thread and role (``scratch``), and the cols a forward pass saves for dL/dW go back to a small
pool when their Function is released (``recycle``), to be handed out by the next forward
(``new_buffer``).

Nothing here holds an op's saved state: what backward needs lives on the Function (see
functional/conv.py).  What stays between calls is only memory to write into again, bounded:
one buffer per role and thread, and at most MAX_SPARE_BYTES of spare cols.  ``release()``
frees all of it.
"""
import threading

import numpy as np

_per_thread = threading.local()     # role -> uint8 buffer, grown as needed

_spare = {}                         # nbytes -> [uint8 buffers a finished backward gave back]
MAX_SPARE_BYTES = 256 * 2**20


def scratch(role, shape, dtype):
    """An uninitialized array of ``shape`` in this thread's reusable buffer for ``role``.
    Valid until the next call for the same role on this thread."""
    buffers = _per_thread.__dict__
    size = int(np.prod(shape)) * np.dtype(dtype).itemsize
    buffer = buffers.get(role)
    if buffer is None or buffer.size < size:
        buffer = buffers[role] = np.empty(size, dtype=np.uint8)
    return buffer[:size].view(dtype).reshape(shape)


def new_buffer(shape, dtype):
    """An uninitialized array of its own (a spare one of this size when there is one)."""
    nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    spares = _spare.get(nbytes)
    buffer = spares.pop() if spares else np.empty(nbytes, dtype=np.uint8)
    return buffer.view(dtype).reshape(shape)


def recycle(array):
    """Give back an array from ``new_buffer`` that nothing reads any more."""
    buffer = array.base
    if buffer is None or buffer.dtype != np.uint8 or buffer.base is not None:
        return
    spare_bytes = sum(b.nbytes for buffers in list(_spare.values()) for b in buffers)
    if spare_bytes + buffer.nbytes <= MAX_SPARE_BYTES:
        _spare.setdefault(buffer.nbytes, []).append(buffer)


def held_bytes():
    """Bytes held between calls: this thread's scratch buffers and the spare pool."""
    mine = sum(b.nbytes for b in _per_thread.__dict__.values())
    return mine + sum(b.nbytes for buffers in list(_spare.values()) for b in buffers)


def release():
    """Free this thread's scratch buffers and the spare pool."""
    _per_thread.__dict__.clear()
    _spare.clear()
