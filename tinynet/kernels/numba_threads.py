"""Running the Numba kernels (cpu_numba.py, numba_pool.py, ...) on one thread or several.

Parallelism.  Every kernel loops over a range [t0, t1) of independent tasks (an (n, c)
plane, a row of col) and releases the GIL (each is decorated ``@njit(cache=True, nogil=True)``
where it is defined); ``run`` can split the tasks
into THREADS chunks run on a small thread pool.  This is Numba's ``parallel=True``/``prange``
done by hand, for measured reasons: a ``parallel=True`` kernel takes 3-5x longer to compile
(the first conv call of a fresh process must stay under 3 s), and OpenMP's worker threads,
which spin after a parallel region, fight OpenBLAS's threads for the same two cores in the
im2col -> GEMM -> swap sequence.  The GEMMs, where the arithmetic is, use every core
through BLAS; see THREADS below for the Numba loops.
"""
import ctypes
import glob
import os
import threading
from contextlib import contextmanager

# Below this many array elements touched, one thread does the whole job (a hand-off to a
# worker thread costs microseconds: about 15 us on the Intel Xeon, see _Worker).
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


class _Worker:
    """A kernel thread that runs one chunk at a time, handed over through two locks (start:
    a chunk is waiting; done: it has run).  ThreadPoolExecutor's futures and queue cost
    29 us per split call on the 2-core Intel Xeon, this about 15 us (2026-12-05): MobileNet
    v2's forward ran 1.10x faster for it, small depthwise layers' steps 1.05-1.08x."""

    def __init__(self):
        self._start, self._done = threading.Lock(), threading.Lock()
        self._start.acquire()
        self._done.acquire()
        self._job = self._error = None
        threading.Thread(target=self._loop, name="tinynet-kernel", daemon=True).start()

    def _loop(self):
        while True:
            self._start.acquire()
            kernel, args = self._job
            try:
                kernel(*args)
            except BaseException as exc:     # handed to the caller by wait()
                self._error = exc
            self._done.release()

    def submit(self, kernel, args):
        self._job = (kernel, args)
        self._start.release()

    def wait(self):
        self._done.acquire()
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
            _workers.append(_Worker())
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


def _find_thread_functions():
    """(get, set) of OpenBLAS's thread count, or None."""
    for path in _openblas_libraries():
        try:
            library = ctypes.CDLL(path)
        except OSError:
            continue
        get = next((getattr(library, n) for n in _GETTERS if hasattr(library, n)), None)
        set_ = next((getattr(library, n) for n in _SETTERS if hasattr(library, n)), None)
        if get is not None and set_ is not None:
            get.argtypes, get.restype = [], ctypes.c_int
            set_.argtypes, set_.restype = [ctypes.c_int], None
            return get, set_
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
