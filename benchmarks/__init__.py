# tinynet first, before anything imports NumPy: it sets OPENBLAS_THREAD_TIMEOUT, which OpenBLAS
# reads only when NumPy loads it (see tinynet/kernels/numba_threads.py).
import tinynet  # noqa: E402,F401
