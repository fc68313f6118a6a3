"""kernels/numba_threads.py: how many threads the Numba kernels use, and that splitting the
work over threads never changes a result.

The rule (measured reasons in numba_threads.py): every usable core when OpenBLAS's workers
sleep between calls (OPENBLAS_THREAD_TIMEOUT <= 4, which ``import tinynet`` sets when NumPy
is not loaded yet), else one thread; TINYNET_KERNEL_THREADS overrides.
"""
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("numba")

from tinynet.kernels import numba_activation, numba_norm, numba_pool, numba_threads  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


@pytest.mark.parametrize("environ, expected", [
    ({}, 1),
    ({"OPENBLAS_THREAD_TIMEOUT": "28"}, 1),             # OpenBLAS's default spin
    ({"OPENBLAS_THREAD_TIMEOUT": "4"}, CORES),
    ({"OPENBLAS_THREAD_TIMEOUT": "4", "TINYNET_KERNEL_THREADS": "3"}, 3),
    ({"TINYNET_KERNEL_THREADS": "2"}, 2),
    ({"TINYNET_KERNEL_THREADS": "0"}, 1),
])
def test_default_threads(environ, expected):
    assert numba_threads.default_threads(environ) == expected


_REPORT = ("import os, json, tinynet; from tinynet.kernels import numba_threads as t; "
           "print(json.dumps([os.environ.get('OPENBLAS_THREAD_TIMEOUT'), t.THREADS]))")


def _report(prelude, **environ):
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENBLAS_THREAD_TIMEOUT", "TINYNET_KERNEL_THREADS")}
    env.update(environ)
    out = subprocess.run([sys.executable, "-c", prelude + _REPORT], env=env, cwd=str(ROOT),
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_tinynet_first_lets_blas_threads_sleep_and_uses_every_core():
    assert _report("") == ["4", CORES]


def test_numpy_loaded_first_keeps_one_kernel_thread():
    # OpenBLAS has read its environment already; setting the variable now would change
    # nothing, so tinynet leaves it unset and the kernels stay on one thread
    assert _report("import numpy; ") == [None, 1]


def test_a_users_blas_setting_is_kept():
    assert _report("", OPENBLAS_THREAD_TIMEOUT="20") == ["20", 1]


@pytest.fixture
def threads(monkeypatch):
    def use(n):
        monkeypatch.setattr(numba_threads, "THREADS", n)
        monkeypatch.setattr(numba_threads, "MIN_ELEMENTS_TO_SPLIT", 0)
    return use


def _all_kernels(rng):
    x = rng.standard_normal((3, 5, 8, 6)).astype(np.float32)
    grad = rng.standard_normal(x.shape).astype(np.float32)
    y = numba_activation.relu_forward(x)
    mean, var = numba_norm.channel_mean_var(x)
    inv_std = 1 / np.sqrt(var + 1e-5)
    weight = rng.standard_normal(5)
    pooled, argmax = numba_pool.max_pool2d_forward(x, (2, 2), (2, 2), (0, 0))
    y6 = np.clip(3 * x, 0, 6)
    return [y, numba_activation.relu_backward(grad, y), y6,
            numba_activation.relu6_backward(grad, y6), mean, var,
            numba_norm.normalize(x, mean, inv_std, weight, rng.standard_normal(5)),
            *[g for g in numba_norm.batch_norm_backward(grad, x, mean, inv_std, weight,
                                                        True, True, True)],
            pooled, argmax, numba_pool.max_pool2d_backward(grad[:, :, ::2, ::2], argmax,
                                                           x.shape)]


def test_splitting_over_threads_changes_no_bit(threads):
    threads(1)
    one = _all_kernels(np.random.default_rng(0))
    threads(3)
    split = _all_kernels(np.random.default_rng(0))
    for i, (a, b) in enumerate(zip(one, split)):
        assert a.dtype == b.dtype and np.array_equal(a, b), f"output {i} differs when split"


def _fill(out, value, t0, t1):
    """A kernel in plain Python (run() takes any callable of this form)."""
    if value < 0 and t0 > 0:
        raise ValueError(f"chunk starting at {t0}")
    out[t0:t1] = value


def test_an_error_in_a_worker_thread_reaches_the_caller(threads):
    threads(3)
    out = np.zeros(9)
    with pytest.raises(ValueError, match="chunk starting at"):
        numba_threads.run(_fill, 9, 9, out, -1.0)
    numba_threads.run(_fill, 9, 9, out, 2.0)          # the workers still serve after it
    assert np.all(out == 2.0)


def test_calls_from_several_threads_at_once_each_get_their_whole_result(threads):
    """The workers serve one run() at a time; a call that finds them busy runs whole on its
    own thread, so every caller's tasks all run."""
    import threading
    threads(2)
    outs, errors = [np.zeros(1000) for _ in range(8)], []

    def call(i):
        try:
            for _ in range(200):
                numba_threads.run(_fill, 1000, 1000, outs[i], float(i + 1))
        except BaseException as exc:
            errors.append(exc)

    callers = [threading.Thread(target=call, args=(i,), daemon=True) for i in range(8)]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join(timeout=30)
    assert not any(caller.is_alive() for caller in callers), "a run() call never returned"
    assert not errors, errors
    for i, out in enumerate(outs):
        assert np.all(out == i + 1), f"caller {i}'s tasks did not all run"


@pytest.fixture
def openblas_at_two_threads():
    """NumPy's OpenBLAS thread count (getter) set to 2 for the test, restored after it, with
    no one_blas_thread user left behind."""
    if not numba_threads.blas_threads_controllable():
        pytest.skip("NumPy's BLAS here is not an OpenBLAS whose threads can be set")
    get, set_ = numba_threads._blas_threads
    before = get()
    set_(2)
    yield get
    numba_threads._blas_users = 0
    set_(before)


def test_one_blas_thread_sets_numpys_openblas_and_restores_it_after_the_last_user(
        openblas_at_two_threads):
    """winograd.py's kernel threads each call a GEMM; OpenBLAS runs them on one thread
    inside ``one_blas_thread`` and gets its own count back when the last such block (of any
    thread, nested or not) ends."""
    get = openblas_at_two_threads
    with numba_threads.one_blas_thread():
        assert get() == 1
        with numba_threads.one_blas_thread():
            assert get() == 1
        assert get() == 1                         # the outer block still runs
    assert get() == 2
    inside = []

    def user():
        with numba_threads.one_blas_thread():
            inside.append(get())

    threads = [threading.Thread(target=user) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert inside == [1] * 8 and get() == 2


def test_the_openblas_found_is_numpys_not_scipys():
    """SciPy's wheel ships a second OpenBLAS, which Numba loads: setting its threads would
    leave NumPy's GEMMs on theirs (measured: Winograd layers 2x-10x slower)."""
    pytest.importorskip("scipy.linalg")            # loads SciPy's OpenBLAS, if it has one
    assert not any("scipy.libs" in path for path in numba_threads._openblas_libraries())


def test_a_forked_child_gets_openblas_back_from_blocks_it_will_never_leave(
        openblas_at_two_threads):
    """Forked while a thread sat inside one_blas_thread: the child has no such thread, so
    the fork handler restores OpenBLAS's count and clears the count of users."""
    get = openblas_at_two_threads
    with numba_threads.one_blas_thread():
        assert get() == 1
        numba_threads._forget_workers()           # what the child runs after fork
        assert get() == 2 and numba_threads._blas_users == 0
    assert numba_threads._blas_users == 0 and get() == 2   # leaving it changes nothing


# ---- the hand-off: atomics and the spin-then-sleep protocol ---------------------------------

from tinynet.kernels import atomics          # noqa: E402
from tinynet.kernels.jit import njit         # noqa: E402


@njit(nogil=True)
def _atomics_in_sequence(flags):
    atomics.store(flags, 0, 5)
    old = atomics.exchange(flags, 0, 7)
    atomics.pause()
    return old, atomics.load(flags, 0)


def test_atomic_store_exchange_load():
    flags = np.zeros(4, np.int64)
    assert _atomics_in_sequence(flags) == (5, 7) and flags[0] == 7


@njit(nogil=True)
def _add_under_spin_lock(flags, times):
    """flags[8] += 1, ``times`` times, each inside a lock taken by exchange(flags[0], 1)."""
    for _ in range(times):
        while atomics.exchange(flags, 0, 1) == 1:
            atomics.pause()
        atomics.store(flags, 8, atomics.load(flags, 8) + 1)
        atomics.store(flags, 0, 0)


def test_exchange_is_one_step_between_threads():
    """Two threads take a lock by exchange 20,000 times each: had another thread's write
    slipped in between an exchange's read and its write, both would hold the lock at once
    and increments would be lost."""
    flags = np.zeros(16, np.int64)
    _add_under_spin_lock(flags, 1)
    flags[:] = 0
    adders = [threading.Thread(target=_add_under_spin_lock, args=(flags, 20000))
              for _ in range(2)]
    for adder in adders:
        adder.start()
    for adder in adders:
        adder.join(timeout=60)
    assert flags[8] == 40000


def _record(log, number, seconds, t0, t1):
    if seconds:
        time.sleep(seconds)
    log.append(number)


@pytest.mark.parametrize("spin_seconds", [1e-9, numba_threads.SPIN_SECONDS])
def test_every_job_is_handed_over_once_whether_the_threads_spin_or_sleep(monkeypatch,
                                                                         spin_seconds):
    """Jobs posted to a worker at random moments, some longer than the spin (the caller
    then sleeps), some after a pause longer than it (the worker sleeps): each job runs once,
    in order, and wait() returns only after it has run."""
    monkeypatch.setattr(numba_threads, "SPIN_SECONDS", spin_seconds)
    worker = numba_threads._Worker(numba_threads.DELAY_SECONDS)
    rng = np.random.default_rng(0)
    log = []
    for number in range(1, 301):
        job_seconds, gap = rng.choice([0, 0, 2e-4, 1e-3]), rng.choice([0, 0, 2e-4, 1e-3])
        worker.submit(_record, (log, number, job_seconds, 0, 1))
        worker.wait()
        assert log == list(range(1, number + 1)), f"job {number}"
        if gap:
            time.sleep(gap)


def _cpu_seconds_of_thread(native_id):
    """User + system CPU time of one thread of this process, from /proc (Linux)."""
    fields = Path(f"/proc/self/task/{native_id}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_an_idle_worker_sleeps_instead_of_spinning():
    """After its spin (SPIN_SECONDS) the worker sleeps on a lock: an idle process costs no
    CPU.  Measured from the worker thread's own CPU time over 0.5 s of idleness."""
    if not Path("/proc/self/task").is_dir():
        pytest.skip("needs Linux's /proc to read a thread's CPU time")
    worker = numba_threads._Worker(numba_threads.DELAY_SECONDS)
    log = []
    worker.submit(_record, (log, 1, 0, 0, 1))
    worker.wait()
    time.sleep(0.05)                                  # past the spin
    before = _cpu_seconds_of_thread(worker.thread.native_id)
    time.sleep(0.5)
    assert _cpu_seconds_of_thread(worker.thread.native_id) - before < 0.05
