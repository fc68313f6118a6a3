"""Running the Numba kernels (cpu_numba.py, numba_pool.py, ...) on one thread or several.

Parallelism.  Every kernel loops over a range [t0, t1) of independent tasks (an (n, c)
plane, a row of col) and releases the GIL (each is decorated ``@njit(cache=True, nogil=True)``
where it is defined); ``run`` can split the tasks
into THREADS chunks run on a small thread pool.  This is Numba's ``parallel=True``/``prange``
done by hand, for measured reasons: a ``parallel=True`` kernel takes 3-5x longer to compile
(the first conv call of a fresh process must stay under 3 s), and OpenMP's worker threads,
which spin after a parallel region, fight OpenBLAS's threads for the same two cores in the
im2col -> GEMM -> swap sequence.  The GEMMs, where the arithmetic is, use every core
through BLAS; see THREADS below for the Numba loops.  Our own worker spins too, but only
for SPIN_SECONDS (50 us) after a job, and a split call's hand-off costs about 5 us for it
instead of about 50 us (see _Worker).
"""
import ctypes
import functools
import glob
import os
import threading
import time
from contextlib import contextmanager

import numpy as np

from . import atomics
from .jit import njit

# Below this many array elements touched, one thread does the whole job (a hand-off to a
# worker thread costs microseconds: 4-5 us on the AMD EPYC Zen 5, see _Worker; the value
# was set on the Intel Xeon when a hand-off cost 15 us there).
MIN_ELEMENTS_TO_SPLIT = 1 << 15

# Threads for the Numba kernels (BLAS has its own).  After each call, OpenBLAS's worker
# threads spin on the other cores for up to 2^28 cycles (about 0.1 s) before they sleep, so
# a Numba worker thread started then finds its core taken: splitting gained nothing and the
# hand-off sometimes stalled for 0.1-0.2 s.  With OPENBLAS_THREAD_TIMEOUT=4 the BLAS workers
# sleep at once (``import tinynet`` sets it when NumPy is not loaded yet; OpenBLAS reads it
# when NumPy loads it), and two kernel threads pay: the demo's training step 15% and its
# evaluation 22% faster on the 2-vCPU AMD EPYC, alternated; either change alone gained
# nothing.  So: every core this process may use when the BLAS workers sleep, else 1.
# TINYNET_KERNEL_THREADS=N overrides.
BLAS_TIMEOUT_THAT_SLEEPS = 4      # OpenBLAS's minimum: 2^4 cycles of spinning


def default_threads(environ=os.environ):
    """The number of kernel threads for these environment variables (see above)."""
    chosen = (environ.get("TINYNET_KERNEL_THREADS") or "").strip()
    if chosen:
        return max(1, int(chosen))
    timeout = (environ.get("OPENBLAS_THREAD_TIMEOUT") or "").strip()
    if timeout.isdigit() and int(timeout) <= BLAS_TIMEOUT_THAT_SLEEPS:
        return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                   else os.cpu_count() or 1)
    return 1


THREADS = default_threads()


# ---- the hand-off to a worker thread ---------------------------------------------------------
# A thread blocked on a lock leaves its vCPU idle, and the hypervisor halts an idle vCPU:
# waking it again took 15 us on the Intel Xeon and 45-55 us on the AMD EPYC Zen 4 and Zen 5
# VMs, per split call, which is most of a small layer's time (a depthwise 4x4-plane layer:
# 114 us against PyTorch's 68 us on the Zen 5, 2026-12-06).  So the two threads spin for a
# while before they sleep, the way OpenMP's threads do: the worker, after its job, watches
# for the next one (SPIN_SECONDS, outside the GIL), and the caller watches for the worker's
# "done".  Each spin ends in a sleep on a lock, announced with a flag, so that an idle
# process costs nothing.  (Python's Lock.acquire cannot spin first: hence atomics.py.)
#
# The GIL.  Each side needs it briefly: to call the kernel, and to return from it.  A thread
# that asks while the other holds it sleeps on CPython's condition variable, and pays the
# wake-up again.  So the worker, once it sees a job, waits DELAY_SECONDS more (the caller
# meanwhile calls its own chunk, releasing the GIL inside), and it publishes "done" only
# after it has released the GIL (inside _finish_then_wait).  Measured on the Zen 5,
# 2026-12-06, with a kernel of no work: 53 us per split call with locks, 30 us spinning
# without the delay, 4 us with it.

DELAY_SECONDS = 2.5e-6           # how long the worker lets the caller go first (above)

# How long a thread spins before it sleeps.  Spinning is for cores that are ours: when
# another process wants the worker's core, a spinning worker is always runnable, so the
# scheduler runs it only in its turn, milliseconds later, where a sleeping one, woken, runs
# at once.  Measured on the 2-vCPU Zen 5, 2026-12-06, alternated in one process, the
# hand-off with locks alone against spins of 20, 50, 100 and 200 us (us; quiet machine /
# with a busy loop in a second process):
#   depthwise 32x128x8x8 forward+backward   589, 542, 490, 461, 458 / 809, 900, 1004, 1296, 1860
#   depthwise 32x256x4x4 forward+backward   503, 444, 372, 345, 354 / 580, 627, 776, 1069, 1606
#   MobileNet v2's forward (ms)     12.1, 11.2, 10.0, 11.0, 11.4 / 15.1, 15.9, 17.6, 21.4, 30.6
# A backward has Python work between its kernel calls, so short spins miss the next call;
# long ones cost most where the machine is shared.  50 us: most of the quiet gain, and
# 1.04x-1.35x the locks' time on a shared machine (200 us: up to 2.8x; small depthwise
# forwards alone, benchmarks/bench_handoff.py run beside a busy loop: 1.3x-1.55x).
# (The kernels in those runs had 512-bit vectors, not jit.py's 256: RESULTS.md, 2026-12-06,
# fifth session.  The hand-off's own cost does not depend on it: bench_handoff read +4-7 us
# per split call with 256-bit kernels too.)
SPIN_SECONDS = 50e-6

# flag offsets in a worker's int64 array, a cache line (8 int64) apart
_POSTED, _FINISHED, _WORKER_ASLEEP, _CALLER_ASLEEP = 0, 8, 16, 24
_JOB, _WAKE_CALLER, _TIMED_OUT = 0, 1, 2


@njit(cache=True, nogil=True)
def _wait_for_change(flags, index, old, spins):
    """Spin until flags[index] != old, at most ``spins`` rounds; True if it changed."""
    for _ in range(spins):
        if atomics.load(flags, index) != old:
            return True
        atomics.pause()
    return False


@njit(cache=True, nogil=True)
def _finish_then_wait(flags, seen, publish, spins, delay):
    """The worker between jobs, without the GIL: with ``publish``, mark job ``seen`` done
    (_WAKE_CALLER: the caller sleeps, wake it); then spin until job seen + 1 is posted
    (_JOB, after ``delay`` rounds more) or ``spins`` rounds pass (_TIMED_OUT)."""
    if publish:
        atomics.store(flags, _FINISHED, seen)
        if atomics.exchange(flags, _CALLER_ASLEEP, 0) == 1:
            return _WAKE_CALLER
    if not _wait_for_change(flags, _POSTED, seen, spins):
        return _TIMED_OUT
    for _ in range(delay):
        atomics.pause()
    return _JOB


@njit(cache=True, nogil=True)
def _post(flags, number):
    """The caller posts job ``number``; True if the worker sleeps and must be woken."""
    atomics.store(flags, _POSTED, number)
    return atomics.exchange(flags, _WORKER_ASLEEP, 0) == 1


@njit(cache=True, nogil=True)
def _announce_sleep(flags, asleep, index, old):
    """Before a thread sleeps until flags[index] != old: flags[asleep] = 1, and a last look.
    True: sleep (the other thread saw the announcement, or will: it sets flags[index] first,
    then takes flags[asleep] back to 0 and wakes the sleeper); False: flags[index] changed,
    and the announcement was taken back before the other thread saw it."""
    atomics.store(flags, asleep, 1)
    if atomics.load(flags, index) == old:
        return True
    return atomics.exchange(flags, asleep, 0) == 0     # 0: taken, so a wake-up is coming


def _rounds(seconds, _per_second=[]):
    """Spin rounds (an atomic load and a pause) lasting about ``seconds`` on this CPU (a
    pause takes 10-140 cycles, by CPU type): measured once."""
    if not _per_second:
        flags = np.zeros(1, np.int64)
        _wait_for_change(flags, 0, 0, 100)             # compiled or loaded
        start = time.perf_counter()
        _wait_for_change(flags, 0, 0, 20000)
        _per_second.append(20000 / max(time.perf_counter() - start, 1e-6))
    return max(1, int(seconds * _per_second[0]))


class _Worker:
    """A kernel thread that runs one chunk at a time, handed over through the flags above
    (job number posted, job number finished), with two locks to sleep on."""

    def __init__(self, delay_seconds):
        self._flags = np.zeros(32, np.int64)
        self._wake, self._wake_caller = threading.Lock(), threading.Lock()
        self._wake.acquire()
        self._wake_caller.acquire()
        self._spins, self._delay = _rounds(SPIN_SECONDS), _rounds(delay_seconds)
        self._job = self._error = None
        self._number = 0                 # of the last job posted
        self.thread = threading.Thread(target=self._loop, name="tinynet-kernel", daemon=True)
        self.thread.start()

    def _loop(self):
        flags, seen, publish = self._flags, 0, False
        while True:
            outcome = _finish_then_wait(flags, seen, publish, self._spins, self._delay)
            publish = False
            if outcome == _WAKE_CALLER:
                self._wake_caller.release()
                continue
            if outcome == _TIMED_OUT and _announce_sleep(flags, _WORKER_ASLEEP, _POSTED, seen):
                self._wake.acquire()
            seen += 1                    # jobs come one at a time: 1, 2, 3, ...
            kernel, args = self._job
            try:
                kernel(*args)
            except BaseException as exc:     # handed to the caller by wait()
                self._error = exc
            publish = True

    def submit(self, kernel, args):
        self._job = (kernel, args)
        self._number += 1
        if _post(self._flags, self._number):
            self._wake.release()

    def wait(self):
        old = self._number - 1
        if (not _wait_for_change(self._flags, _FINISHED, old, self._spins)
                and _announce_sleep(self._flags, _CALLER_ASLEEP, _FINISHED, old)):
            self._wake_caller.acquire()
        error, self._job, self._error = self._error, None, None
        if error is not None:
            raise error


_workers = []                    # grown to THREADS - 1 on first use
_in_use = threading.Lock()       # the workers serve one run() at a time


def _forget_workers():           # a forked child has none of its parent's threads
    global _in_use
    _workers.clear()
    _in_use = threading.Lock()
    _forget_blas_users()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_workers)


def run(kernel, tasks, elements, *args):
    """kernel(*args, t0, t1) over tasks [0, tasks), split across the cores when worth it.
    A call made while another thread's call holds the workers runs whole on its own thread
    (the same result: no kernel's result depends on the split)."""
    chunks = min(THREADS, tasks)
    if chunks < 2 or elements < MIN_ELEMENTS_TO_SPLIT or not _in_use.acquire(blocking=False):
        kernel(*args, 0, tasks)
        return
    try:
        while len(_workers) < chunks - 1:
            _workers.append(_Worker(DELAY_SECONDS * (len(_workers) + 1)))
        bounds = [tasks * i // chunks for i in range(chunks + 1)]
        for i in range(1, chunks):
            _workers[i - 1].submit(kernel, args + (bounds[i], bounds[i + 1]))
        try:
            kernel(*args, bounds[0], bounds[1])      # the first chunk on this thread
        finally:
            errors = []
            for worker in _workers[:chunks - 1]:     # every chunk ends before we return
                try:
                    worker.wait()
                except BaseException as exc:
                    errors.append(exc)
        if errors:
            raise errors[0]
    finally:
        _in_use.release()


# ---- OpenBLAS on one thread while the kernel threads call it --------------------------------
# Kernels that call a GEMM from each kernel thread (winograd.py: a block of tiles per call)
# want each GEMM on its calling thread.  Left to itself, OpenBLAS gave each of the two
# callers its two threads: a product of Winograd's size took 14.6 ms instead of 0.94 ms, and
# Winograd layers ran 2x-8x slower (2-core Intel Xeon, 2026-12-05).  OpenBLAS's thread
# count is one number for the process (its "_local" setter, tried first, reported in one
# thread the count set in the other), so ``one_blas_thread`` sets it to 1 while such a
# kernel runs and restores it after the last one ends; a GEMM another Python thread runs
# meanwhile also runs on one thread.  The library is NumPy's OpenBLAS; with another BLAS
# (MKL, Accelerate) ``blas_threads_controllable`` is False, and winograd.py then runs its
# blocks on the calling thread, each GEMM on BLAS's own threads.
_GETTERS = ("openblas_get_num_threads", "scipy_openblas_get_num_threads64_",
            "scipy_openblas_get_num_threads")
_SETTERS = ("openblas_set_num_threads", "scipy_openblas_set_num_threads64_",
            "scipy_openblas_set_num_threads")


def _openblas_libraries():
    """Paths of the OpenBLAS NumPy uses: the one its wheel ships, else one this process has
    loaded that is not SciPy's (SciPy's wheel ships its own copy, which Numba loads; setting
    that one's threads changes nothing for NumPy's GEMMs)."""
    import numpy
    base = os.path.dirname(numpy.__file__)
    paths = []
    for pattern in ("../numpy.libs/*openblas*", ".dylibs/*openblas*"):
        paths += glob.glob(os.path.join(base, pattern))
    if not paths:
        try:
            with open("/proc/self/maps") as maps:
                paths = [line.split()[-1] for line in maps
                         if "openblas" in line.lower() and "scipy" not in line.lower()]
        except OSError:
            pass
    paths = [os.path.realpath(p) for p in paths if os.path.isfile(p)]
    return list(dict.fromkeys(paths))


def _loaded_openblas():
    """NumPy's OpenBLAS libraries (_openblas_libraries), loaded through ctypes."""
    for path in _openblas_libraries():
        try:
            yield ctypes.CDLL(path)
        except OSError:
            continue


def _function(library, names):
    """The first of these functions the library exports, or None."""
    return next((getattr(library, n) for n in names if hasattr(library, n)), None)


def _find_thread_functions():
    """(get, set) of OpenBLAS's thread count, or None."""
    for library in _loaded_openblas():
        get, set_ = _function(library, _GETTERS), _function(library, _SETTERS)
        if get is not None and set_ is not None:
            get.argtypes, get.restype = [], ctypes.c_int
            set_.argtypes, set_.restype = [ctypes.c_int], None
            return get, set_
    return None


OPENBLAS_AVX512_KERNELS = ("SkylakeX", "Cooperlake", "SapphireRapids")   # its AVX-512 sets


@functools.cache                 # OpenBLAS picks its kernels once, when it loads
def openblas_kernels():
    """The kernel set NumPy's OpenBLAS chose ("Haswell", "SkylakeX", ...), or None.  It
    decides the products' speed: on the AMD Zen 5 the AVX-512 set ran them 1.8x faster
    than the AVX2 one that OPENBLAS_CORETYPE=Haswell forces (RESULTS.md, 2026-12-06)."""
    for library in _loaded_openblas():
        corename = _function(library, ("openblas_get_corename", "scipy_openblas_get_corename64_",
                                       "scipy_openblas_get_corename"))
        if corename is not None:
            corename.argtypes, corename.restype = [], ctypes.c_char_p
            return corename().decode()
    return None


_blas_threads = "not looked for"
_blas_lock = threading.Lock()
_blas_users = 0                  # one_blas_thread blocks running now
_blas_before = None              # OpenBLAS's thread count before the first of them


def blas_threads_controllable():
    """True when ``one_blas_thread`` can set OpenBLAS's thread count."""
    global _blas_threads
    if _blas_threads == "not looked for":
        _blas_threads = _find_thread_functions()
    return _blas_threads is not None


def _forget_blas_users():
    """In a forked child: the threads inside one_blas_thread blocks are gone, so nobody will
    restore OpenBLAS's count; restore it now (and take a fresh lock: the parent's may have
    been held)."""
    global _blas_lock, _blas_users
    _blas_lock = threading.Lock()
    if _blas_users and isinstance(_blas_threads, tuple):
        _blas_threads[1](_blas_before)
    _blas_users = 0


@contextmanager
def one_blas_thread():
    """OpenBLAS's GEMMs on their calling thread only, inside this block (nested or from
    several threads: the count is restored when the last block ends)."""
    global _blas_users, _blas_before
    if not blas_threads_controllable():
        yield
        return
    get, set_ = _blas_threads
    with _blas_lock:
        if _blas_users == 0:
            _blas_before = get()
            set_(1)
        _blas_users += 1
    try:
        yield
    finally:
        with _blas_lock:
            if _blas_users > 0:          # 0 here: a fork handler has restored it already
                _blas_users -= 1
                if _blas_users == 0:
                    set_(_blas_before)
