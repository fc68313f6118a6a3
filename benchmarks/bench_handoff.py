"""The cost of splitting a Numba kernel over two threads: the hand-off to the kernel thread.

    python -m benchmarks.bench_handoff [--repeats 7]

Two hand-offs, alternated in one process, each as ``numba_threads.run`` uses it:
- "spin": ``numba_threads._Worker``, tinynet's own: both threads spin on atomic flags for
  SPIN_SECONDS before they sleep (see numba_threads.py);
- "locks": the hand-off it replaced (2026-12-06), kept here as the reference: the worker
  sleeps on one lock until a job is posted, the caller on another until it is done.
And "one thread": the kernel unsplit.  Timed: a kernel with no work (the hand-off alone,
microseconds per call) and depthwise 3x3 forwards on small planes (MobileNet's, batch 32),
where one split call is most of a layer's time.  Needs two usable cores (the kernel
threads' default; see numba_threads.py).  Run it beside a busy program (a second process
in a loop) to see what spinning costs when the cores are shared: there the locks win.
"""
import os
import sys

if __package__ in (None, ""):        # run as a script: python benchmarks/NAME.py
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import benchmarks  # noqa: F401,E402  (imports tinynet before NumPy: see its __init__)

import argparse
import threading

import numpy as np

from benchmarks._common import alternate, header, median, table

import tinynet as tn                                     # noqa: E402
import tinynet.functional as F                           # noqa: E402
from tinynet.kernels import numba_threads                # noqa: E402
from tinynet.kernels.jit import njit                     # noqa: E402


class LockWorker:
    """The reference hand-off: a kernel thread that sleeps on a lock between jobs."""

    def __init__(self):
        self._start, self._done = threading.Lock(), threading.Lock()
        self._start.acquire()
        self._done.acquire()
        self._job = self._error = None
        threading.Thread(target=self._loop, daemon=True).start()

    def _loop(self):
        while True:
            self._start.acquire()
            kernel, args = self._job
            try:
                kernel(*args)
            except BaseException as exc:
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


@njit(cache=True, nogil=True)
def no_work(out, t0, t1):
    for t in range(t0, t1):
        out[t] += 1.0


def with_workers(workers, fn):
    """fn() with numba_threads.run handing off to ``workers`` (None: unsplit)."""
    def call():
        saved_workers, saved_threads = list(numba_threads._workers), numba_threads.THREADS
        numba_threads._workers[:] = workers or []
        numba_threads.THREADS = 2 if workers else 1
        try:
            fn()
        finally:
            numba_threads._workers[:] = saved_workers
            numba_threads.THREADS = saved_threads
    return call


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    header("kernel-thread hand-off: tinynet's spinning worker against sleeping on locks")
    spin = [numba_threads._Worker(numba_threads.DELAY_SECONDS)]
    locks = [LockWorker()]
    out = np.zeros(2)

    def empty_kernel(calls):
        def fn():
            for _ in range(calls):
                numba_threads.run(no_work, 2, 1 << 30, out)
        return fn

    per = 200
    t = alternate({k: with_workers(w, empty_kernel(per)) for k, w in
                   (("one thread", None), ("locks", locks), ("spin", spin))},
                  repeats=args.repeats)
    us = {k: median(v) / per * 1e6 for k, v in t.items()}
    extra = {k: us[k] - us["one thread"] for k in ("locks", "spin")}
    rows = [["empty kernel", f"{us['one thread']:.1f}", f"+{extra['locks']:.1f}",
             f"+{extra['spin']:.1f}", f"{extra['locks'] / max(extra['spin'], 0.1):.1f}x"]]
    rng = np.random.default_rng(0)
    for n, c, size, stride in [(32, 256, 4, 1), (32, 128, 8, 1), (32, 128, 8, 2),
                               (32, 64, 16, 2)]:
        x = tn.tensor(rng.standard_normal((n, c, size, size), dtype=np.float32))
        w = tn.tensor(rng.standard_normal((c, 1, 3, 3), dtype=np.float32))

        def forward(x=x, w=w, c=c, stride=stride):
            with tn.no_grad():
                F.conv2d(x, w, stride=stride, padding=1, groups=c)
        t = alternate({k: with_workers(wk, forward) for k, wk in
                       (("one thread", None), ("locks", locks), ("spin", spin))},
                      repeats=args.repeats, min_time=0.03)
        us = {k: median(v) * 1e6 for k, v in t.items()}
        rows.append([f"depthwise forward {n}x{c}x{size}x{size} s{stride}",
                     f"{us['one thread']:.0f}", f"{us['locks']:.0f}", f"{us['spin']:.0f}",
                     f"{us['locks'] / us['spin']:.2f}x"])
    table(rows, ["us per call", "one thread", "locks", "spin", "locks / spin"])
    print("\nempty kernel: 'one thread' is the whole call unsplit; 'locks' and 'spin' what "
          "the hand-off adds to it")


if __name__ == "__main__":
    main()
