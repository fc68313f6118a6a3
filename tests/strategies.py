"""Hypothesis strategies shared by the property tests (in the spirit of minitorch's).

Shapes are small (property tests run many examples); values are bounded and kept away from
the places where an op has no derivative or blows up."""
import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

small_floats = st.floats(min_value=-3.0, max_value=3.0, allow_nan=False, allow_infinity=False,
                         width=64)

shapes = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4)


def arrays(shape=shapes, elements=small_floats):
    """float64 arrays of a drawn shape."""
    return hnp.arrays(np.float64, shape, elements=elements)


@st.composite
def maybe_noncontiguous(draw, shape=shapes, elements=small_floats):
    """An array that is sometimes a strided or transposed view, so ops must not assume
    C-contiguous memory."""
    a = draw(arrays(shape, elements))
    kind = draw(st.sampled_from(["plain", "transposed", "strided"]))
    if kind == "transposed":
        return np.ascontiguousarray(a.T).T            # same values, Fortran-ordered view
    if kind == "strided":
        big = np.repeat(a, 2, axis=-1)                # every other column is a copy of a
        return big[..., ::2]
    return a


@st.composite
def broadcastable_pair(draw, elements=small_floats):
    """Two float64 arrays whose shapes broadcast against each other (some axes set to 1,
    sometimes fewer dimensions on one side)."""
    shape = draw(shapes)
    other = list(shape)
    for i in range(len(other)):
        if draw(st.booleans()):
            other[i] = 1
    drop = draw(st.integers(0, len(other) - 1))
    other = tuple(other[drop:])
    a = draw(arrays(st.just(shape), elements))
    b = draw(arrays(st.just(other), elements))
    if draw(st.booleans()):
        a, b = b, a
    return a, b


@st.composite
def array_and_axis(draw, elements=small_floats):
    """An array and an axis argument for a reduction: None, an int (maybe negative) or a
    tuple of distinct axes."""
    a = draw(maybe_noncontiguous(elements=elements))
    choice = draw(st.sampled_from(["none", "int", "tuple"]))
    if choice == "none":
        axis = None
    elif choice == "int":
        axis = draw(st.integers(-a.ndim, a.ndim - 1))
    else:
        axis = tuple(sorted(draw(st.sets(st.integers(0, a.ndim - 1), min_size=1))))
    return a, axis
