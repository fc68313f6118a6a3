"""Atomic loads, stores and exchanges on an int64 array, and the CPU's spin-wait hint, for
Numba code: what numba_threads.py's hand-off between two threads is built from.

Numba has no atomics, and a plain read in a loop may be hoisted out of it by LLVM (nothing
in the loop writes the array, so the value "cannot change").  These functions emit LLVM's
atomic instructions, sequentially consistent (every thread sees all of them in one order),
which also tells LLVM that another thread may change the value:

    load(flags, i)          -> flags[i]
    store(flags, i, value)     flags[i] = value
    exchange(flags, i, value) -> the old flags[i], flags[i] = value, as one step
    pause()                    x86's PAUSE: "this is a spin loop" (saves power, and leaves
                               the core's shared resources to a sibling thread); nothing
                               on other CPUs

They are Numba intrinsics: callable only from @njit code, compiled inline.
"""
import platform

from . import jit  # noqa: F401  (first: it sets NUMBA_CPU_FEATURES, which Numba reads on import)
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

_X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")


def _pointer(context, builder, array_type, array, index):
    array = context.make_array(array_type)(context, builder, array)
    return cgutils.get_item_pointer(context, builder, array_type, array, [index])


@intrinsic
def load(typingctx, flags, index):
    def codegen(context, builder, signature, args):
        pointer = _pointer(context, builder, signature.args[0], args[0], args[1])
        return builder.load_atomic(pointer, "seq_cst", 8)
    return types.int64(flags, index), codegen


@intrinsic
def store(typingctx, flags, index, value):
    def codegen(context, builder, signature, args):
        pointer = _pointer(context, builder, signature.args[0], args[0], args[1])
        value = context.cast(builder, args[2], signature.args[2], types.int64)
        builder.store_atomic(value, pointer, "seq_cst", 8)
        return context.get_dummy_value()
    return types.void(flags, index, value), codegen


@intrinsic
def exchange(typingctx, flags, index, value):
    def codegen(context, builder, signature, args):
        pointer = _pointer(context, builder, signature.args[0], args[0], args[1])
        value = context.cast(builder, args[2], signature.args[2], types.int64)
        return builder.atomic_rmw("xchg", pointer, value, "seq_cst")
    return types.int64(flags, index, value), codegen


@intrinsic
def pause(typingctx):
    def codegen(context, builder, signature, args):
        if _X86:
            function = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(ir.VoidType(), []), "llvm.x86.sse2.pause")
            builder.call(function, [])
        return context.get_dummy_value()
    return types.void(), codegen
