"""Eight numbers as one value: explicit SIMD vectors for the Numba kernels.

Why.  LLVM turns a loop into vector code only when it can prove, or check at run time, that
no output overlaps another array the loop touches, and it gives up beyond eight such
checks.  A Winograd tile transform writes 16 runs (one per entry of the 4x4 tile), so the
vectoriser leaves it scalar, however it is written (benchmarks/RESULTS.md: five sessions of
variants).  Here the kernel says itself what goes in a vector register: eight consecutive
tiles, one per lane, so that the same expressions as the scalar code compute eight tiles at
once.  No check is needed: the kernel, not the compiler, vouches that the runs do not
overlap.

    v = load(row, i)                 row[i: i + 8] as one vector (a 1-D array, contiguous)
    even, odd = load_even_odd(row, i)    row[i: i + 16] dealt into its even and odd
                                     elements: (row[i], row[i + 2], ...), (row[i + 1], ...)
    a, b, c, d = load_fourths(row, i)    row[i: i + 32] dealt four ways: (row[i],
                                     row[i + 4], ...), (row[i + 1], row[i + 5], ...), ...
    store(row, i, v)                 row[i: i + 8] = v (row[i: i + W] for a wide one)
    store_even_odd(row, i, even, odd)    row[i: i + 16] = even and odd interleaved
    store_fourths(row, i, a, b, c, d)    row[i: i + 32] = a0 b0 c0 d0 a1 b1 c1 d1 ...:
                                     load_fourths' inverse
    load_even_odd_halves(a, i, b, j)     load_even_odd of a[i: i + 8] and b[j: j + 8] side
                                     by side: lanes 0-3 from a, 4-7 from b (two rows of
                                     four tiles, where a plane row has only four)
    store_even_odd_halves(a, i, b, j, even, odd)    its inverse: lanes 0-3 interleaved into
                                     a[i: i + 8], lanes 4-7 into b[j: j + 8]
    v = load_wide(row, i)            row[i: i + W] as one vector filling a whole register:
                                     W = REGISTER_BYTES / itemsize (16 float32 with
                                     AVX-512, 8 with AVX2), for products.py
    wide_lanes(row)                  that W, a constant, for row's dtype
    splat(x, like)                   a vector of x in every lane, like ``like``'s type
    v + w, v - w, v * w, -v          lane by lane (a multiply and an add may fuse into one
                                     FMA, as in kernels compiled with fastmath 'contract')
    widen(v)                         v's lanes as float64 (float64 lanes as they are)
    float64_zeros()                  eight float64 zeros
    lane_sum(v)                      v[0] + v[1] + ... + v[7], in that order, a scalar

A vector has the element type of the array it was loaded from (float32 or float64; eight
float64 lanes are two registers of AVX2, one of AVX-512).  On a CPU with narrower vector
registers LLVM splits the operations; the results are the same everywhere, and each lane's
arithmetic is the scalar code's, in the same order, so a vectorised kernel gives results
bit-identical to its scalar loop (where it multiplies too, as long as both fuse the same
multiply-adds: F(4x4)'s input transform does).  The functions are Numba intrinsics:
callable only from @njit code, compiled inline.  Nothing checks bounds: the caller keeps
i + 8 (i + 16, i + 32 for the dealt loads and stores) within the row.  Numba's disk cache
keys each kernel on its own source file only: after editing this module, delete the
kernels' cached code (tinynet/kernels/__pycache__/*.nbi, *.nbc) so that they compile again.
"""
import operator

from . import jit  # first: it sets NUMBA_CPU_FEATURES, which Numba reads on import
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, models, overload, register_model

LANES = 8
REGISTER_BYTES = jit.REGISTER_BYTES     # 64 with AVX-512, else 32: load_wide's width


class Vector(types.Type):
    """The Numba type of ``lanes`` numbers of ``dtype`` (a Numba float type) held as one
    value: LANES (eight) for the tile transforms, one whole register (``load_wide``) for
    the products (products.py)."""

    def __init__(self, dtype, lanes=LANES):
        self.dtype, self.lanes = dtype, lanes
        super().__init__(name=f"Vector({dtype}, {lanes})")


@register_model(Vector)
class _VectorModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        element = dmm.lookup(fe_type.dtype).get_value_type()
        super().__init__(dmm, fe_type, ir.VectorType(element, fe_type.lanes))


def _row_type(array, lanes=LANES):
    """The vector type for a 1-D float array, or None (then Numba reports a typing error)."""
    if isinstance(array, types.Array) and array.ndim == 1 and isinstance(array.dtype, types.Float):
        return Vector(array.dtype, lanes)
    return None


def _address(context, builder, array_type, array, index, lanes):
    """A pointer to array[index] typed as ``lanes`` elements in a row."""
    array = context.make_array(array_type)(context, builder, array)
    pointer = cgutils.get_item_pointer(context, builder, array_type, array, [index])
    element = context.get_value_type(array_type.dtype)
    return builder.bitcast(pointer, ir.VectorType(element, lanes).as_pointer())


def _lane_indices(indices):
    return ir.Constant(ir.VectorType(ir.IntType(32), len(indices)), list(indices))


def _load_row(context, builder, signature, args, lanes):
    """args = (row, index): row[index: index + lanes] as one LLVM vector (unaligned load)."""
    address = _address(context, builder, signature.args[0], args[0], args[1], lanes)
    return builder.load(address, align=1)


@intrinsic
def load(typingctx, row, index):
    vector = _row_type(row)
    return None if vector is None else (
        vector(row, index),
        lambda context, builder, signature, args: _load_row(context, builder, signature,
                                                            args, LANES))


def _wide_type(array):
    """The vector type of one whole register of ``array``'s elements (16 float32 with
    AVX-512), or None."""
    if not (isinstance(array, types.Array) and isinstance(array.dtype, types.Float)):
        return None
    return Vector(array.dtype, REGISTER_BYTES * 8 // array.dtype.bitwidth)


@intrinsic
def load_wide(typingctx, row, index):
    vector = _wide_type(row) if _row_type(row) is not None else None
    return None if vector is None else (
        vector(row, index),
        lambda context, builder, signature, args: _load_row(context, builder, signature,
                                                            args, vector.lanes))


@intrinsic
def wide_lanes(typingctx, row):
    vector = _wide_type(row)
    return None if vector is None else (
        types.intp(row),
        lambda context, builder, signature, args: context.get_constant(types.intp,
                                                                       vector.lanes))


def _dealt(ways):
    """The intrinsic that loads row[i: i + ways * 8] and deals it ``ways`` ways: vector p
    holds row[i + p], row[i + p + ways], ..."""
    @intrinsic
    def load_dealt(typingctx, row, index):
        vector = _row_type(row)
        if vector is None:
            return None

        def codegen(context, builder, signature, args):
            all_ = _load_row(context, builder, signature, args, ways * LANES)
            parts = [builder.shuffle_vector(all_, all_,
                                            _lane_indices(range(p, ways * LANES, ways)))
                     for p in range(ways)]
            return context.make_tuple(builder, signature.return_type, parts)
        return types.UniTuple(vector, ways)(row, index), codegen
    return load_dealt


load_even_odd, load_fourths = _dealt(2), _dealt(4)


@intrinsic
def store(typingctx, row, index, value):
    if not isinstance(value, Vector) or _row_type(row, value.lanes) != value:
        return None

    def codegen(context, builder, signature, args):
        address = _address(context, builder, signature.args[0], args[0], args[1], value.lanes)
        builder.store(args[2], address, align=1)
        return context.get_dummy_value()
    return types.void(row, index, value), codegen


@intrinsic
def store_even_odd(typingctx, row, index, even, odd):
    if not (_row_type(row) == even == odd):
        return None

    def codegen(context, builder, signature, args):
        address = _address(context, builder, signature.args[0], args[0], args[1], 2 * LANES)
        lanes = [j for i in range(LANES) for j in (i, LANES + i)]     # e0, o0, e1, o1, ...
        builder.store(builder.shuffle_vector(args[2], args[3], _lane_indices(lanes)), address,
                      align=1)
        return context.get_dummy_value()
    return types.void(row, index, even, odd), codegen


@intrinsic
def store_fourths(typingctx, row, index, first, second, third, fourth):
    if not (_row_type(row) == first == second == third == fourth):
        return None

    def codegen(context, builder, signature, args):
        address = _address(context, builder, signature.args[0], args[0], args[1], 4 * LANES)
        interleave = _lane_indices([j for i in range(LANES) for j in (i, LANES + i)])
        pairs_ab = builder.shuffle_vector(args[2], args[3], interleave)      # a0 b0 a1 b1 ..
        pairs_cd = builder.shuffle_vector(args[4], args[5], interleave)      # c0 d0 c1 d1 ..
        lanes = [j for i in range(LANES) for j in (2 * i, 2 * i + 1, 2 * LANES + 2 * i,
                                                   2 * LANES + 2 * i + 1)]
        builder.store(builder.shuffle_vector(pairs_ab, pairs_cd, _lane_indices(lanes)), address,
                      align=1)
        return context.get_dummy_value()
    return types.void(row, index, first, second, third, fourth), codegen


@intrinsic
def load_even_odd_halves(typingctx, first_row, first_index, second_row, second_index):
    vector = _row_type(first_row)
    if vector is None or _row_type(second_row) != vector:
        return None

    def codegen(context, builder, signature, args):
        first = _address(context, builder, signature.args[0], args[0], args[1], LANES)
        second = _address(context, builder, signature.args[2], args[2], args[3], LANES)
        a, b = builder.load(first, align=1), builder.load(second, align=1)
        even = builder.shuffle_vector(a, b, _lane_indices(range(0, 2 * LANES, 2)))
        odd = builder.shuffle_vector(a, b, _lane_indices(range(1, 2 * LANES, 2)))
        return context.make_tuple(builder, signature.return_type, [even, odd])
    return types.UniTuple(vector, 2)(first_row, first_index, second_row, second_index), codegen


@intrinsic
def store_even_odd_halves(typingctx, first_row, first_index, second_row, second_index, even,
                          odd):
    if not (_row_type(first_row) == _row_type(second_row) == even == odd):
        return None

    def codegen(context, builder, signature, args):
        half = LANES // 2
        for row, index, lanes in (
                (0, 1, [j for i in range(half) for j in (i, LANES + i)]),
                (2, 3, [j for i in range(half, LANES) for j in (i, LANES + i)])):
            address = _address(context, builder, signature.args[row], args[row], args[index],
                               LANES)
            builder.store(builder.shuffle_vector(args[4], args[5], _lane_indices(lanes)),
                          address, align=1)
        return context.get_dummy_value()
    return types.void(first_row, first_index, second_row, second_index, even, odd), codegen


@intrinsic
def splat(typingctx, value, like):
    if not isinstance(like, Vector):
        return None

    def codegen(context, builder, signature, args):
        element = context.cast(builder, args[0], signature.args[0], like.dtype)
        vector_type = context.get_value_type(like)
        one = builder.insert_element(ir.Constant(vector_type, ir.Undefined), element,
                                     ir.Constant(ir.IntType(32), 0))
        return builder.shuffle_vector(one, one, _lane_indices([0] * like.lanes))
    return like(value, like), codegen


@intrinsic
def widen(typingctx, vector):
    if not isinstance(vector, Vector):
        return None
    wide = Vector(types.float64)

    def codegen(context, builder, signature, args):
        if vector.dtype == types.float64:
            return args[0]
        return builder.fpext(args[0], context.get_value_type(wide))
    return wide(vector), codegen


@intrinsic
def float64_zeros(typingctx):
    zeros = Vector(types.float64)

    def codegen(context, builder, signature, args):
        return ir.Constant(context.get_value_type(zeros), None)
    return zeros(), codegen


@intrinsic
def lane_sum(typingctx, vector):
    if not isinstance(vector, Vector):
        return None

    def codegen(context, builder, signature, args):
        total = builder.extract_element(args[0], ir.Constant(ir.IntType(32), 0))
        for i in range(1, vector.lanes):
            total = builder.fadd(total, builder.extract_element(args[0],
                                                                ir.Constant(ir.IntType(32), i)))
        return total
    return vector.dtype(vector), codegen


def _lanewise(instruction):
    @intrinsic
    def apply(typingctx, a, b):
        if not (isinstance(a, Vector) and a == b):
            return None

        def codegen(context, builder, signature, args):
            return getattr(builder, instruction)(args[0], args[1], flags=("contract",))
        return a(a, b), codegen
    return apply


_add, _subtract, _multiply = _lanewise("fadd"), _lanewise("fsub"), _lanewise("fmul")


@intrinsic
def _negate(typingctx, a):
    if not isinstance(a, Vector):
        return None

    def codegen(context, builder, signature, args):
        return builder.fneg(args[0])
    return a(a), codegen


@overload(operator.add)
def _vector_add(a, b):
    if isinstance(a, Vector) and a == b:
        return lambda a, b: _add(a, b)


@overload(operator.sub)
def _vector_subtract(a, b):
    if isinstance(a, Vector) and a == b:
        return lambda a, b: _subtract(a, b)


@overload(operator.mul)
def _vector_multiply(a, b):
    if isinstance(a, Vector) and a == b:
        return lambda a, b: _multiply(a, b)


@overload(operator.neg)
def _vector_negate(a):
    if isinstance(a, Vector):
        return lambda a: _negate(a)
