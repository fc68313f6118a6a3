"""kernels/scratch.py: where the Numba kernels' arrays come from, and malloc's policy.

Both are about speed, which tests do not time (benchmarks/ does), so these check the
mechanisms: every kernel output starts GAP bytes into its own allocation, the saved-col pool
hands a given-back buffer out again, and with keep_freed_memory a freed block is reused
without new page faults.
"""
import platform
import subprocess
import sys
import textwrap

import numpy as np
import pytest

pytest.importorskip("numba")

from tinynet.kernels import cpu_numba, numba_activation, numba_norm, numba_pool  # noqa: E402
from tinynet.kernels import scratch  # noqa: E402


def _starts_gap_into_own_buffer(array):
    owner = array.base
    return (owner is not None and owner.dtype == np.uint8 and owner.base is None
            and array.ctypes.data - owner.ctypes.data == scratch.GAP
            and owner.nbytes >= array.nbytes + scratch.GAP)


def test_empty_has_the_shape_dtype_and_alignment_asked_for():
    for shape, dtype in [((3, 5), np.float32), ((2, 3, 4, 5), np.float64), ((7,), np.int64)]:
        a = scratch.empty(shape, dtype)
        assert a.shape == shape and a.dtype == dtype and a.flags.c_contiguous
        assert a.ctypes.data % 16 == 0
        assert _starts_gap_into_own_buffer(a)


def test_every_kernel_output_starts_gap_bytes_into_its_allocation():
    # (not dL/dW of a dense convolution: BLAS writes it, and BLAS checks no overlap)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 3, 16, 16)).astype(np.float32)
    w = rng.standard_normal((8, 3, 3, 3)).astype(np.float32)
    y, _ = cpu_numba.conv2d_forward(x, w, (1, 1), (1, 1), (1, 1), 1)
    gy = rng.standard_normal(y.shape).astype(np.float32)
    outputs = {
        "conv forward": y,
        "conv dL/dx": cpu_numba.conv2d_backward_input(gy, w, x.shape, (1, 1), (1, 1), (1, 1), 1),
        "relu forward": numba_activation.relu_forward(y),
        "relu backward": numba_activation.relu_backward(gy, y),
        "relu6 backward": numba_activation.relu6_backward(gy, y),
    }
    pooled, argmax = numba_pool.max_pool2d_forward(y, (2, 2), (2, 2), (0, 0))
    outputs["max-pool forward"] = pooled
    outputs["max-pool argmax"] = argmax
    outputs["max-pool backward"] = numba_pool.max_pool2d_backward(
        np.ones_like(pooled), argmax, y.shape)
    mean, var = numba_norm.channel_mean_var(y)
    inv_std = 1 / np.sqrt(var + 1e-5)
    outputs["batchnorm forward"] = numba_norm.normalize(y, mean, inv_std, None, None)
    outputs["batchnorm dL/dx"] = numba_norm.batch_norm_backward(
        gy, y, mean, inv_std, None, True, False, False)[0]
    wrong = [name for name, a in outputs.items() if not _starts_gap_into_own_buffer(a)]
    assert not wrong, f"outputs not from scratch.empty: {wrong}"


def test_a_recycled_col_is_handed_out_again():
    scratch.release()
    a = scratch.new_buffer((6, 4, 10), np.float32)
    owner = a.base
    scratch.recycle(a)
    assert scratch.held_bytes() >= owner.nbytes
    b = scratch.new_buffer((6, 4, 10), np.float32)
    assert b.base is owner and b.shape == (6, 4, 10)
    c = scratch.new_buffer((6, 4, 10), np.float32)      # the pool is empty again
    assert c.base is not owner
    scratch.release()
    assert scratch.held_bytes() == 0


def test_recycle_ignores_arrays_it_did_not_hand_out():
    scratch.release()
    scratch.recycle(np.empty((6, 4, 10), np.float32))
    scratch.recycle(scratch.empty((6, 4, 10), np.float32)[1:])
    # a kernel output of exactly a col's size, allocated the same way as new_buffer's:
    # taking it would hand a live activation's memory out again
    scratch.recycle(scratch.empty((6, 4, 10), np.float32))
    assert scratch.held_bytes() == 0


def test_a_buffer_given_back_twice_is_pooled_once():
    scratch.release()
    a = scratch.new_buffer((6, 4, 10), np.float32)
    scratch.recycle(a)
    scratch.recycle(a)                  # a second release of the same col: ignored
    b = scratch.new_buffer((6, 4, 10), np.float32)
    c = scratch.new_buffer((6, 4, 10), np.float32)
    assert b.base is a.base and c.base is not a.base      # not handed out twice
    scratch.release()


def test_a_kept_col_of_one_example_is_not_a_view_of_the_input():
    """A 1x1 convolution of one example may read x in place as col, but not when col is
    kept for dL/dW: the kept col is recycled after backward, and x (a kernel's output,
    allocated like a buffer of new_buffer's) would be handed out again while it lives."""
    import tinynet as tn
    import tinynet.functional as F
    scratch.release()
    rng = np.random.default_rng(0)
    x = F.relu(tn.tensor(rng.standard_normal((1, 8, 32, 32)).astype(np.float32)))
    assert x.numpy().base is not None           # from scratch.empty, as kernel outputs are
    w = tn.tensor(rng.standard_normal((4, 8, 1, 1)).astype(np.float32), requires_grad=True)
    kept = x.numpy().copy()
    F.conv2d(x, w).sum().backward()
    fresh = scratch.new_buffer(x.shape, np.float32)     # a recycled buffer if there is one
    assert not np.shares_memory(fresh, x.numpy())
    fresh[...] = 7
    np.testing.assert_array_equal(x.numpy(), kept)
    scratch.release()


_FAULTS_ON_REUSE = textwrap.dedent("""
    import resource, numpy as np
    import tinynet
    a = np.ones(64 * 2**20 // 4, np.float32)
    del a
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    b = np.ones(64 * 2**20 // 4, np.float32)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
""")


def _faults_on_reuse(keep):
    env = {"TINYNET_KEEP_FREED_MEMORY": "1" if keep else "0", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", _FAULTS_ON_REUSE], env=env, check=True,
                         capture_output=True, text=True, cwd=str(_repo_root()))
    return int(out.stdout.split()[-1])


def _repo_root():
    import pathlib
    return pathlib.Path(__file__).resolve().parent.parent


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                    reason="keep_freed_memory sets glibc's malloc; a no-op elsewhere")
def test_keep_freed_memory_reuses_a_freed_block_without_page_faults():
    kept = _faults_on_reuse(keep=True)
    given_back = _faults_on_reuse(keep=False)
    # 64 MiB is 16384 pages of 4 KiB, or 32 transparent huge pages: given back to the
    # system, the second array faults every one of them in again; kept, none.
    assert kept < 8, f"{kept} page faults writing a reused 64 MiB block (expected ~0)"
    assert given_back >= 32, f"only {given_back} faults with TINYNET_KEEP_FREED_MEMORY=0"
