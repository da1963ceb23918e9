"""Literal numpy transcriptions of LISTENAI linger 3.0.9's fixed-point kernels: an independent
oracle for ``thinker.nonlinear``.

Written from the original C++ (``linger/kernel/cpu/{venus,arcs,venusa}_q{sigmoid,tanh,softmax}
_kernel.cpp``, ``qlayernorm_kernel.cpp``) and the Python op paths (``linger/quant/ops/qtensor/
q{sigmoid,tanh,softmax}.py``, ``qmodule/qlayernorm.py``), not from thinker's code: the same
loops (vectorised over elements, the band search as an in-order scan with a "not yet found"
mask), the same float steps where the original uses floats, and the C conversions spelled out:

* C ``double`` is numpy float64 and ``long double`` is ``np.longdouble``; ``(double)int64`` is
  ``astype(np.float64)`` (round to nearest, ties to even, as cvtsi2sd);
* ``(int32_t)double`` truncates toward zero; out of range it gives INT32_MIN (x86 cvttsd2si);
* a narrowing assignment int64 -> int32 keeps the low 32 bits (``i32``); int32 arithmetic that
  overflows wraps (what the compiled kernels do, the C standard leaves it undefined);
* torch float32 tensor arithmetic on the op paths is numpy float32 arithmetic.

The constants are re-typed from the original sources. Only tests import this module.
"""

from __future__ import annotations

import numpy as np

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1


# --- C conversions ------------------------------------------------------------------------------

def i32(v) -> np.ndarray:
    """A C narrowing assignment to int32_t (two's complement wrap), held in int64."""
    v = np.asarray(v, dtype=np.int64)
    return ((v + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def u32(v) -> np.ndarray:
    """A C conversion to uint32_t (modulo 2**32), held in int64."""
    return np.asarray(v, dtype=np.int64) & 0xFFFFFFFF


def double_to_i32(y) -> np.ndarray:
    """``(int32_t)y`` for a double ``y``: truncation toward zero; INT32_MIN when out of range."""
    y = np.asarray(y, dtype=np.float64)
    t = np.trunc(y)
    ok = (t >= INT32_MIN) & (t <= INT32_MAX)
    return np.where(ok, np.where(ok, t, 0).astype(np.int64), INT32_MIN)


def pow2(n) -> np.ndarray:
    """``pow(2, n)`` as a double (exact)."""
    return np.ldexp(1.0, np.asarray(n, dtype=np.int64).astype(np.int32))


def SAT32(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.int64)
    return np.where(x > INT32_MAX, INT32_MAX, np.where(x < INT32_MIN, INT32_MIN, x))


def shfit_floor_x05_int64(x, shift):
    """The originals' ``shfit_floor_x05_int64`` (sic), shift a scalar or an array."""
    x = np.asarray(x, dtype=np.int64)
    shift = np.asarray(shift, dtype=np.int64)
    s = np.clip(shift, 1, 63)
    val = x >> (s - 1)
    val = (val & 0x1) + (val >> 1)
    return np.where(shift >= 64, 0, np.where(shift > 0, val, x))


# --- sigmoid / tanh: venus_q{sigmoid,tanh}_kernel.cpp (int32 Q11 in, int32 Q15 out) -------------

def _venus_shift(j: int) -> int:
    if j < 6:
        return 13
    if j < 10:
        return 14
    if j < 14:
        return 16
    return 19


def _venus_tanh_shift(j: int) -> int:
    if j < 6:
        return 11
    if j < 10:
        return 12
    if j < 14:
        return 14
    return 18


def venus_qsigmoid(a) -> np.ndarray:
    bands = [0, 971, 1699, 2347, 2974, 3614, 4291, 5026, 5861, 6831, 7864, 8987, 10375, 11594,
             13168, 14730, 32768]
    slopes = [32316, 29471, 25891, 22068, 18225, 29057, 22206, 16113, 10881, 27353, 16611, 9242,
              4618, 20670, 8610, 693]
    bias0s = [16384, 16721, 17464, 18559, 19954, 21585, 23380, 25249, 27121, 28807, 30096, 31107,
              31839, 32199, 32502, 32724]
    bias1s = [16384, 16047, 15304, 14209, 12814, 11183, 9388, 7519, 5647, 3961, 2672, 1661, 929,
              569, 266, 44]
    tmp = np.asarray(a, dtype=np.int32).astype(np.int64)
    sign = tmp < 0
    absx = np.where(sign, i32(-tmp), tmp)  # int32_t absx = -tmp (INT32_MIN stays INT32_MIN)
    slope = np.zeros_like(tmp)
    bias = np.zeros_like(tmp)
    shift = np.zeros_like(tmp)
    searching = np.ones(tmp.shape, dtype=bool)
    for j in range(1, 17):
        inside = absx <= bands[j]
        hit = searching & inside
        slope = np.where(hit, slopes[j - 1], slope)
        bias = np.where(hit, np.where(sign, bias1s[j - 1], bias0s[j - 1]), bias)
        shift = np.where(hit, _venus_shift(j), shift)
        miss = searching & ~inside  # the else branch
        slope = np.where(miss, 0, slope)
        bias = np.where(miss, 0, bias)
        shift = np.where(miss, 0, shift)
        searching = miss  # break on a hit
    # out = floor(slope * tmp * 1.0L / (1 << shift)) + bias; slope * tmp is an int32 product
    product = i32(slope * tmp).astype(np.longdouble)
    out = np.floor(product / (np.int64(1) << shift).astype(np.longdouble)) \
        + bias.astype(np.longdouble)
    return out.astype(np.int64).astype(np.int32)


def venus_qtanh(a) -> np.ndarray:
    bands = [0, 512, 888, 1226, 1558, 1899, 2264, 2670, 3146, 3734, 4297, 4761, 5466, 6151, 7193,
             8093, 32768]
    slopes = [32266, 29154, 25374, 21309, 17272, 26886, 19904, 13765, 8599, 19497, 12047, 7324,
              3373, 26820, 5531, 337]
    biass = [0, 778, 2417, 4851, 7922, 11474, 15334, 19335, 23303, 26699, 28653, 30026, 31344,
             31981, 32565, 32725]
    tmp = np.asarray(a, dtype=np.int32).astype(np.int64)
    sign = tmp < 0
    absx = np.where(sign, np.where(tmp == -1 * (1 << 15), (1 << 15) - 1, i32(-tmp)), tmp)
    slope = np.zeros_like(tmp)
    bias = np.zeros_like(tmp)
    shift = np.zeros_like(tmp)
    searching = np.ones(tmp.shape, dtype=bool)
    for j in range(1, 17):
        inside = absx <= bands[j]
        hit = searching & inside
        slope = np.where(hit, slopes[j - 1], slope)
        bias = np.where(hit, biass[j - 1], bias)
        shift = np.where(hit, _venus_tanh_shift(j), shift)
        miss = searching & ~inside
        slope = np.where(miss, 0, slope)
        bias = np.where(miss, 0, bias)
        shift = np.where(miss, 0, shift)
        searching = miss
    divisor = (np.int64(1) << shift).astype(np.longdouble)
    negative = np.floor(i32(i32(-1 * slope) * absx).astype(np.longdouble) / divisor) \
        - bias.astype(np.longdouble)
    positive = np.floor(i32(slope * absx).astype(np.longdouble) / divisor) \
        + bias.astype(np.longdouble)
    out = np.where(sign, negative, positive)
    return out.astype(np.int64).astype(np.int32)


# --- sigmoid / tanh: arcs_q{sigmoid,tanh}_kernel.cpp (int32 Q27 in, int64 Q31 out) --------------

ARCS_SIGMOID_BANDS = [0, 63656107, 111395083, 153816608, 194953701, 236865036, 281253298,
                      329433241, 384154475, 447714743, 515399149, 589016819, 679940425, 759830874,
                      862986200, 965402453, 2147483648]
ARCS_SIGMOID_SLOPES = [529475578, 482862538, 424212188, 361565531, 298613704, 238039992,
                       181912633, 132002182, 89144402, 56020914, 34019888, 18928477, 9459126,
                       5291645, 2204341, 177654]
ARCS_TANH_BANDS = [0, 33584191, 58182438, 80361293, 102120620, 124483371, 148392654, 174972063,
                   206183541, 244722657, 281591256, 312045360, 358241226, 403095772, 471425623,
                   530372454, 2147483648]
ARCS_TANH_SLOPES = [2114623134, 1910645334, 1662969581, 1396521636, 1131979061, 881027392,
                    652221876, 451080022, 281798391, 159724746, 98692663, 60001039, 27632752,
                    13732196, 2832019, 172634]


def _search_q27(absx, sign, bands, slopes, bias0s, bias1s):
    """The 16-band search of the Q27 kernels (int64 absx against uint32 bands), with break."""
    slope = np.zeros_like(absx)
    bias = np.zeros_like(absx)
    searching = np.ones(absx.shape, dtype=bool)
    for j in range(1, 17):
        inside = absx <= bands[j]
        hit = searching & inside
        slope = np.where(hit, slopes[j - 1], slope)
        bias = np.where(hit, np.where(sign, bias1s[j - 1], bias0s[j - 1]), bias)
        miss = searching & ~inside
        slope = np.where(miss, 0, slope)
        bias = np.where(miss, 0, bias)
        searching = miss
    return slope, bias


def arcs_qsigmoid(a) -> np.ndarray:
    bias0s = [1073741824, 1095849221, 1144526551, 1216321063, 1307759740, 1414659140, 1532274042,
              1654777693, 1777444109, 1887935281, 1972419725, 2038648643, 2086619912, 2110212774,
              2130063364, 2144640936]
    bias1s = [1073741824, 1051634427, 1002957097, 931162585, 839723908, 732824508, 615209606,
              492705955, 370039539, 259548367, 175063923, 108835005, 60863736, 37270874,
              17420284, 2842712]
    tmp = np.asarray(a, dtype=np.int32).astype(np.int64)
    sign = tmp < 0
    absx = np.where(sign, -tmp, tmp)
    slope, bias = _search_q27(absx, sign, ARCS_SIGMOID_BANDS, ARCS_SIGMOID_SLOPES, bias0s, bias1s)
    return ((slope * tmp) >> 27) + bias


def arcs_qtanh(a) -> np.ndarray:
    biass = [0, 51039676, 158405367, 317937954, 519217264, 751968259, 1004938252, 1267155516,
             1527203771, 1749783808, 1877830237, 1967785133, 2054179492, 2095926998, 2134212723,
             2144721503]
    tmp = np.asarray(a, dtype=np.int32).astype(np.int64)
    sign = tmp < 0
    absx = np.where(sign, np.where(tmp == -(1 << 31), (1 << 31) - 1, -tmp), tmp)
    slope, bias = _search_q27(absx, sign, ARCS_TANH_BANDS, ARCS_TANH_SLOPES, biass, biass)
    return np.where(sign, ((-1 * slope * absx) >> 27) - bias, ((slope * absx) >> 27) + bias)


# --- sigmoid / tanh: venusa_q{sigmoid,tanh}_kernel.cpp (int32 Q27 in, int64 raw Q58 out) --------

def venusa_qsigmoid(a) -> np.ndarray:
    bias0s = [134217728, 136981152, 143065818, 152040132, 163469967, 176832392, 191534255,
              206847211, 222180513, 235991910, 246552465, 254831080, 260827489, 263776596,
              266257920, 268080117]
    bias1s = [134217728, 131454303, 125369637, 116395323, 104965488, 91603063, 76901200,
              61588244, 46254942, 32443545, 21882990, 13604375, 7607967, 4658859, 2177535,
              355339]
    tmp = np.asarray(a, dtype=np.int32).astype(np.int64)
    sign = tmp < 0
    # tmp == (-1ULL << 31): int64 tmp compared as uint64 with 0xFFFFFFFF80000000
    absx = np.where(sign, np.where(tmp == -(1 << 31), (1 << 31) - 1, -tmp), tmp)
    slope, bias = _search_q27(absx, sign, ARCS_SIGMOID_BANDS, ARCS_SIGMOID_SLOPES, bias0s, bias1s)
    return slope * tmp + (bias << 30)


def venusa_qtanh(a) -> np.ndarray:
    biass = [0, 6379959, 19800670, 39742244, 64902158, 93996032, 125617281, 158394439, 190900471,
             218722976, 234728779, 245973141, 256772436, 261990874, 266776590, 268090187]
    tmp = np.asarray(a, dtype=np.int32).astype(np.int64)
    sign = tmp < 0
    absx = np.where(sign, np.where(tmp == -(1 << 31), (1 << 31) - 1, -tmp), tmp)
    slope, bias = _search_q27(absx, sign, ARCS_TANH_BANDS, ARCS_TANH_SLOPES, biass, biass)
    return np.where(sign, (-slope * absx) - (bias << 30), (slope * absx) + (bias << 30))


PWL_KERNELS = {
    ("venus", "sigmoid"): venus_qsigmoid, ("venus", "tanh"): venus_qtanh,
    ("arcs", "sigmoid"): arcs_qsigmoid, ("arcs", "tanh"): arcs_qtanh,
    ("venusA", "sigmoid"): venusa_qsigmoid, ("venusA", "tanh"): venusa_qtanh,
}


# --- softmax: {venus,arcs,venusa}_qsoftmax_kernel.cpp (int32 Q25 rows [L, N], int32 Q15 out) ----
# Every loop over i runs over the columns of all L rows at once.

P23 = [57364, 446161, 2008107, 5813551, 8388575]


def _venus_sub32s(a, b):
    s = a - b
    return np.where(s > INT32_MAX, INT32_MAX, np.where(s <= INT32_MIN, INT32_MIN, s))


def _venus_add32s(a, b):
    s = a + b
    return np.where(s > INT32_MAX, INT32_MAX, np.where(s <= INT32_MIN, INT32_MIN, s))


def _venus_shift_rasym(x, n: int):
    """double y = (double)x * pow(2, n); y = floor(y + 0.5); return (int32_t)y;"""
    y = np.asarray(x, dtype=np.int64).astype(np.float64) * pow2(n)
    y = np.floor(y + 0.5)
    return double_to_i32(y)


def _venus_shift_rasyms(x, n: int):
    """As shift_rasym, saturated: y > MAX_INT32 -> MAX, y <= MIN_INT32 -> MIN."""
    y = np.asarray(x, dtype=np.int64).astype(np.float64) * pow2(n)
    y = np.floor(y + 0.5)
    return np.where(y > INT32_MAX, INT32_MAX,
                    np.where(y <= INT32_MIN, INT32_MIN, double_to_i32(y)))


def _nsaz(x):
    x = np.asarray(x, dtype=np.int64)
    ux = u32(np.where(x < 0, i32(-x), x))  # uint32_t ux = x < 0 ? -x : x
    special = (x == 0) | (ux == 0x80000000)
    ux = ux & 0x7FFFFFFF
    ix = np.zeros_like(x)
    for _ in range(31):
        go = ((ux & 0x40000000) == 0) & (ix < 31)
        ux = np.where(go, u32(ux * 2), ux)
        ix = np.where(go, ix + 1, ix)
    return np.where(special, 0, ix)


def _shift_by_n(v, n):
    """n < 0 ? SAT32(((int64_t)v) >> (-n)) : SAT32(((int64_t)v) << n)"""
    return np.where(n < 0, SAT32(v >> np.clip(-n, 0, 63)), SAT32(v << np.clip(n, 0, 63)))


def venus_qsoftmax(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.int32).astype(np.int64)
    L, N = x.shape
    y = np.zeros_like(x)
    max_value = x[:, 0].copy()
    for i in range(N):
        max_value = np.where(x[:, i] > max_value, x[:, i], max_value)
    for i in range(N):
        X = _venus_sub32s(x[:, i], max_value)
        X = _venus_shift_rasyms(X * 774541002, -31)
        E = X >> 23
        E = E + 1
        X = X & 0x7FFFFF
        X = X - 0x800000
        Y = np.full(L, P23[0], dtype=np.int64)
        for j in range(1, 5):
            Y = i32(_venus_shift_rasym(Y * X, -23) + P23[j])
        y[:, i] = double_to_i32(Y.astype(np.float64) * pow2(E))
    E_SUM = np.zeros(L, dtype=np.int64)
    for i in range(N):
        E_SUM = _venus_add32s(E_SUM, y[:, i])
    X = E_SUM
    n = _nsaz(X) - 8
    X = _shift_by_n(X, n)
    n = n + 1
    Y = i32(0xBB5000 - X)
    for _ in range(2):
        E = i32(0x400000 - _venus_shift_rasym(X * Y, -23))
        E = i32(E + E)
        Y = i32(Y + _venus_shift_rasym(Y * E, -23))
    Y = _shift_by_n(Y, n)
    for i in range(N):
        y[:, i] = _venus_shift_rasyms(Y * y[:, i], -31)
    return y.astype(np.int32)


def _saturate32(x):
    """SATURATE(x, 32) of the arcs/venusA sources."""
    return np.where(x > INT32_MAX, INT32_MAX, np.where(x < INT32_MIN, INT32_MIN, x))


def _arcs_shift_pure(v, s):
    out = np.where(s > 0, v << np.clip(s, 0, 62), v >> np.clip(-s, 0, 63))
    return np.where((s >= 63) | (s <= -63), 0, _saturate32(out))


def _venusa_shift_pure(v, s):  # no SATURATE: the int64 result narrows to int32_t
    out = np.where(s > 0, v << np.clip(s, 0, 62), v >> np.clip(-s, 0, 63))
    return np.where((s >= 63) | (s <= -63), 0, i32(out))


def _arcs_shift_rasym(x, n: int):
    """The integer shift_rasym of arcs: round-half-up shift, the int64 narrowed to int32."""
    assert -63 < n < 0
    n = -n
    x = x >> (n - 1)
    x = (x & 0x1) + (x >> 1)
    return i32(x)


def _arcs_shift_rasyms(x, n: int):
    assert -64 < n < 0
    n = -n
    x = x >> (n - 1)
    x = (x & 0x1) + (x >> 1)
    return _saturate32(x)


def _restoring_division(E_SUM):
    """B = SATURATE(E_SUM, 32) into a uint32; 30 steps of C/A doubling (uint32 registers)."""
    A = np.full(E_SUM.shape, 0x800000, dtype=np.int64)
    B = u32(_saturate32(E_SUM))
    C = np.zeros_like(A)
    for _ in range(1, 31):
        ge = A >= B
        C = np.where(ge, u32(u32(C + 1) * 2), u32(C * 2))
        A = np.where(ge, u32(u32(A - B) * 2), u32(A * 2))
    return C


def arcs_qsoftmax(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.int32).astype(np.int64)
    L, N = x.shape
    y = np.zeros_like(x)
    max_value = x[:, 0].copy()
    for i in range(1, N):
        max_value = np.where(x[:, i] > max_value, x[:, i], max_value)
    for i in range(N):
        data = _saturate32(x[:, i] - max_value)
        X = _arcs_shift_rasyms(data * 774541002, -31)
        E = X >> 23
        E = E + 1
        X = X & 0x7FFFFF
        X = X - 0x800000
        Y = np.full(L, P23[0], dtype=np.int64)
        for j in range(1, 5):
            Y = i32(_arcs_shift_rasym(Y * X, -23) + P23[j])  # int32 + int32, into int64 Y
        y[:, i] = _arcs_shift_pure(Y, E)
    E_SUM = np.zeros(L, dtype=np.int64)
    for i in range(N):
        E_SUM = E_SUM + y[:, i]
    C = _restoring_division(E_SUM)
    for i in range(N):
        y[:, i] = i32(shfit_floor_x05_int64(C * y[:, i], 38))
    return y.astype(np.int32)


def venusa_qsoftmax(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.int32).astype(np.int64)
    L, N = x.shape
    y = np.zeros_like(x)
    max_value = x[:, 0].copy()
    for i in range(1, N):
        max_value = np.where(x[:, i] > max_value, x[:, i], max_value)
    max_value = np.where(max_value == INT32_MIN, max_value + 1, max_value)
    for i in range(N):
        data = _saturate32(x[:, i] - max_value)
        X = i32(shfit_floor_x05_int64(data * 774541002, 31))
        E = X >> 23
        E = E + 1
        X = X & 0x7FFFFF
        X = X - 0x800000
        Y = np.full(L, P23[0], dtype=np.int64)
        for j in range(1, 5):
            t = ((Y * X) << 7) + (P23[j] << 30)
            if j < 4:
                Y = shfit_floor_x05_int64(t, 30)
            else:
                Y = np.where(30 - E > 63, 0, shfit_floor_x05_int64(t, np.minimum(30 - E, 63)))
        y[:, i] = i32(Y)  # ((int32_t*)y_ptr)[i] = Y
    E_SUM = np.zeros(L, dtype=np.int64)
    for i in range(N):
        E_SUM = E_SUM + y[:, i]
    C = _restoring_division(E_SUM)
    for i in range(N):
        y[:, i] = i32(shfit_floor_x05_int64(C * y[:, i], 38))
    return y.astype(np.int32)


SOFTMAX_KERNELS = {"venus": venus_qsoftmax, "arcs": arcs_qsoftmax, "venusA": venusa_qsoftmax}


# --- layernorm: qlayernorm_kernel.cpp ------------------------------------------------------------

SQRT_RECIPROCAL_Q15 = [  # g_s16Table_sqrt_reciprocal[768]
    32767, 32704, 32640, 32577, 32514, 32452, 32390, 32328, 32267, 32206, 32146, 32085,
    32025, 31966, 31907, 31848, 31789, 31731, 31673, 31615, 31558, 31501, 31444, 31388,
    31332, 31276, 31220, 31165, 31110, 31056, 31001, 30947, 30893, 30840, 30787, 30734,
    30681, 30629, 30577, 30525, 30473, 30422, 30371, 30320, 30269, 30219, 30169, 30119,
    30069, 30020, 29971, 29922, 29874, 29825, 29777, 29729, 29681, 29634, 29587, 29540,
    29493, 29446, 29400, 29354, 29308, 29262, 29217, 29172, 29127, 29082, 29037, 28993,
    28948, 28904, 28861, 28817, 28774, 28730, 28687, 28644, 28602, 28559, 28517, 28475,
    28433, 28391, 28350, 28308, 28267, 28226, 28185, 28145, 28104, 28064, 28024, 27984,
    27944, 27905, 27865, 27826, 27787, 27748, 27709, 27670, 27632, 27594, 27555, 27517,
    27480, 27442, 27404, 27367, 27330, 27293, 27256, 27219, 27183, 27146, 27110, 27074,
    27038, 27002, 26966, 26930, 26895, 26860, 26824, 26789, 26754, 26720, 26685, 26651,
    26616, 26582, 26548, 26514, 26480, 26446, 26413, 26379, 26346, 26313, 26280, 26247,
    26214, 26181, 26149, 26116, 26084, 26052, 26019, 25987, 25956, 25924, 25892, 25861,
    25829, 25798, 25767, 25736, 25705, 25674, 25643, 25613, 25582, 25552, 25521, 25491,
    25461, 25431, 25401, 25372, 25342, 25312, 25283, 25254, 25224, 25195, 25166, 25137,
    25108, 25080, 25051, 25022, 24994, 24966, 24937, 24909, 24881, 24853, 24825, 24797,
    24770, 24742, 24715, 24687, 24660, 24633, 24606, 24579, 24552, 24525, 24498, 24471,
    24445, 24418, 24392, 24365, 24339, 24313, 24287, 24261, 24235, 24209, 24183, 24157,
    24132, 24106, 24081, 24055, 24030, 24005, 23980, 23955, 23930, 23905, 23880, 23855,
    23831, 23806, 23782, 23757, 23733, 23709, 23684, 23660, 23636, 23612, 23588, 23564,
    23541, 23517, 23493, 23470, 23446, 23423, 23400, 23376, 23353, 23330, 23307, 23284,
    23261, 23238, 23215, 23193, 23170, 23147, 23125, 23102, 23080, 23058, 23035, 23013,
    22991, 22969, 22947, 22925, 22903, 22881, 22860, 22838, 22816, 22795, 22773, 22752,
    22730, 22709, 22688, 22666, 22645, 22624, 22603, 22582, 22561, 22540, 22520, 22499,
    22478, 22458, 22437, 22416, 22396, 22376, 22355, 22335, 22315, 22294, 22274, 22254,
    22234, 22214, 22194, 22175, 22155, 22135, 22115, 22096, 22076, 22056, 22037, 22018,
    21998, 21979, 21960, 21940, 21921, 21902, 21883, 21864, 21845, 21826, 21807, 21788,
    21769, 21751, 21732, 21713, 21695, 21676, 21658, 21639, 21621, 21602, 21584, 21566,
    21548, 21529, 21511, 21493, 21475, 21457, 21439, 21421, 21403, 21386, 21368, 21350,
    21332, 21315, 21297, 21280, 21262, 21245, 21227, 21210, 21193, 21175, 21158, 21141,
    21124, 21107, 21089, 21072, 21055, 21038, 21022, 21005, 20988, 20971, 20954, 20938,
    20921, 20904, 20888, 20871, 20855, 20838, 20822, 20805, 20789, 20773, 20756, 20740,
    20724, 20708, 20691, 20675, 20659, 20643, 20627, 20611, 20595, 20580, 20564, 20548,
    20532, 20516, 20501, 20485, 20470, 20454, 20438, 20423, 20407, 20392, 20377, 20361,
    20346, 20331, 20315, 20300, 20285, 20270, 20255, 20239, 20224, 20209, 20194, 20179,
    20164, 20150, 20135, 20120, 20105, 20090, 20076, 20061, 20046, 20032, 20017, 20002,
    19988, 19973, 19959, 19944, 19930, 19916, 19901, 19887, 19873, 19858, 19844, 19830,
    19816, 19802, 19787, 19773, 19759, 19745, 19731, 19717, 19703, 19690, 19676, 19662,
    19648, 19634, 19620, 19607, 19593, 19579, 19566, 19552, 19539, 19525, 19511, 19498,
    19485, 19471, 19458, 19444, 19431, 19418, 19404, 19391, 19378, 19365, 19351, 19338,
    19325, 19312, 19299, 19286, 19273, 19260, 19247, 19234, 19221, 19208, 19195, 19182,
    19169, 19157, 19144, 19131, 19118, 19106, 19093, 19080, 19068, 19055, 19042, 19030,
    19017, 19005, 18992, 18980, 18968, 18955, 18943, 18930, 18918, 18906, 18894, 18881,
    18869, 18857, 18845, 18832, 18820, 18808, 18796, 18784, 18772, 18760, 18748, 18736,
    18724, 18712, 18700, 18688, 18676, 18665, 18653, 18641, 18629, 18618, 18606, 18594,
    18582, 18571, 18559, 18547, 18536, 18524, 18513, 18501, 18490, 18478, 18467, 18455,
    18444, 18432, 18421, 18410, 18398, 18387, 18376, 18365, 18353, 18342, 18331, 18320,
    18308, 18297, 18286, 18275, 18264, 18253, 18242, 18231, 18220, 18209, 18198, 18187,
    18176, 18165, 18154, 18143, 18132, 18122, 18111, 18100, 18089, 18078, 18068, 18057,
    18046, 18036, 18025, 18014, 18004, 17993, 17982, 17972, 17961, 17951, 17940, 17930,
    17919, 17909, 17898, 17888, 17878, 17867, 17857, 17846, 17836, 17826, 17816, 17805,
    17795, 17785, 17775, 17764, 17754, 17744, 17734, 17724, 17714, 17703, 17693, 17683,
    17673, 17663, 17653, 17643, 17633, 17623, 17613, 17603, 17593, 17584, 17574, 17564,
    17554, 17544, 17534, 17525, 17515, 17505, 17495, 17485, 17476, 17466, 17456, 17447,
    17437, 17427, 17418, 17408, 17399, 17389, 17379, 17370, 17360, 17351, 17341, 17332,
    17322, 17313, 17304, 17294, 17285, 17275, 17266, 17257, 17247, 17238, 17229, 17219,
    17210, 17201, 17192, 17182, 17173, 17164, 17155, 17146, 17136, 17127, 17118, 17109,
    17100, 17091, 17082, 17073, 17064, 17055, 17046, 17037, 17028, 17019, 17010, 17001,
    16992, 16983, 16974, 16965, 16956, 16947, 16938, 16930, 16921, 16912, 16903, 16894,
    16886, 16877, 16868, 16859, 16851, 16842, 16833, 16825, 16816, 16807, 16799, 16790,
    16782, 16773, 16764, 16756, 16747, 16739, 16730, 16722, 16713, 16705, 16696, 16688,
    16679, 16671, 16662, 16654, 16646, 16637, 16629, 16621, 16612, 16604, 16596, 16587,
    16579, 16571, 16562, 16554, 16546, 16538, 16529, 16521, 16513, 16505, 16497, 16489,
    16480, 16472, 16464, 16456, 16448, 16440, 16432, 16424, 16416, 16408, 16400, 16392,
]

# calc_sqrt_reciprocal's if / else-if chain: (mask, temp = data >> k (k >= 0) or data << -k, q1)
SQRT_RECIPROCAL_CHAIN = [
    (0xC00000000000000, 50, 30), (0x300000000000000, 48, 29), (0xC0000000000000, 46, 28),
    (0x30000000000000, 44, 27), (0xC000000000000, 42, 26), (0x3000000000000, 40, 25),
    (0xC00000000000, 38, 24), (0x300000000000, 36, 23), (0xC0000000000, 34, 22),
    (0x30000000000, 32, 21), (0xC000000000, 30, 20), (0x3000000000, 28, 19),
    (0xC00000000, 26, 18), (0x300000000, 24, 17), (0xC0000000, 22, 16), (0x30000000, 20, 15),
    (0xFC000000, 18, 14), (0xF3000000, 16, 13), (0xFFC00000, 14, 12), (0xFF300000, 12, 11),
    (0xFFFC0000, 10, 10), (0xFFF30000, 8, 9), (0xFFFFC000, 6, 8), (0xFFFF3000, 4, 7),
    (0xFFFFFC00, 2, 6), (0xFFFFFF00, 0, 5), (0xFFFFFFC0, -2, 4), (0xFFFFFFF0, -4, 3),
    (0xFFFFFFFC, -6, 2), (0xFFFFFFFF, -8, 1),
]


def calc_sqrt_reciprocal(data) -> tuple[np.ndarray, np.ndarray]:
    """(table_out, table_shift) per int64 ``data``."""
    data = np.asarray(data, dtype=np.int64)
    q_normal, q2 = 15, 14
    temp = np.full(data.shape, 256, dtype=np.int64)  # the final else
    q1 = np.zeros(data.shape, dtype=np.int64)
    searching = np.ones(data.shape, dtype=bool)
    for mask, k, q in SQRT_RECIPROCAL_CHAIN:
        hit = searching & ((data & mask) != 0)
        temp = np.where(hit, data >> k if k >= 0 else data << -k, temp)
        q1 = np.where(hit, q, q1)
        searching &= ~hit
    index = i32(temp - 256)
    if np.any((index < 0) | (index >= len(SQRT_RECIPROCAL_Q15))):
        raise ValueError("denominator outside the original table (C reads out of bounds)")
    table_out = np.asarray(SQRT_RECIPROCAL_Q15, dtype=np.int64)[index]
    return table_out, q1 + q2 - q_normal


def _saturate_q63_to_q31(src):
    return np.where(src > 0x7FFFFFFF, 0x7FFFFFFF, np.where(src < -(1 << 31), -(1 << 31), src))


def qlayernorm_kernel(numerator, denominator) -> np.ndarray:
    """qlayernorm_kernel_cpu: numerator int32 [M, T], denominator int64 [M] -> int32 [M, T]."""
    numerator = np.asarray(numerator, dtype=np.int32).astype(np.int64)
    denominator = np.asarray(denominator, dtype=np.int64).reshape(-1)
    M = denominator.size
    n = numerator.reshape(M, -1)
    tmp_val, shift = calc_sqrt_reciprocal(denominator)
    # calc_data_mul_vs: d = src * scalar; d = shfit_floor_x05_int64(d, shift); saturate
    d = n * tmp_val[:, None]
    d = shfit_floor_x05_int64(d, shift[:, None])
    return _saturate_q63_to_q31(d).astype(np.int32).reshape(numerator.shape)


def layernorm_q_eps(eps: float, q: int, N: int) -> int:
    """QLayerNormFunction's ``math.floor(eps * pow(2, scale_eps) * N * N + 0.5)``: ``scale_eps``
    is ``2 * scale_x.log2()`` of the quantizer's float32 scale buffer, so every step is a float32
    tensor operation."""
    f = np.float32
    scale_x = f(2.0 ** q)
    scale_eps = f(2) * np.log2(scale_x)
    value = f(eps) * np.power(f(2), scale_eps)
    value = value * f(N)
    value = value * f(N)
    return int(np.floor(value + f(0.5)))


def layernorm_numerator_denominator(x, q_eps: int) -> tuple[np.ndarray, np.ndarray]:
    """QLayerNormFunction before the kernel: int64 sums, ``numerator.int()`` (narrowing)."""
    x = np.asarray(x, dtype=np.int64)
    N = x.shape[-1]
    sum_x = x.sum(-1, keepdims=True)
    sum_x2 = (x ** 2).sum(-1, keepdims=True)
    denominator = N * sum_x2 - sum_x * sum_x + q_eps
    numerator = N * x - sum_x
    return i32(numerator).astype(np.int32), denominator[..., 0]


# --- the op paths (eval forward of QSigmoid / QTanh / QSoftmax) -----------------------------------

def _fake_quant_input(q, qx: int) -> np.ndarray:
    """The float32 input q / 2**qx and the op's ``quant_round(x * scale_x)`` (floor_add)."""
    f = np.float32
    scale_x = f(2.0 ** qx)
    x = np.asarray(q).astype(np.float32) / scale_x
    return np.floor(x * scale_x + f(0.5))


def _output_quantizer(y, qo: int, bits: int) -> np.ndarray:
    """fake_quant_native at the stored scale 2**qo: floor(y * scale + 0.5), clamp (float32)."""
    f = np.float32
    x_int = np.floor(y * f(2.0 ** qo) + f(0.5))
    x_int = np.clip(x_int, -(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    return x_int.astype(np.int64)


def _shift_floor_x05_int64_py(x, shift: int):
    """The Python ``_shift_floor_x05_int64`` of qsigmoid.py / qtanh.py."""
    if shift <= 0:
        return x << (-shift)
    if shift >= 64:
        return np.zeros_like(x)
    val = x >> (shift - 1)
    return (val & 1) + (val >> 1)


RUNTIME_QBITS = {"arcs": 31, "venusA": 58}  # SIGMOID_Q31 / *_VENUSA_RAW_Q (tanh the same)


def activation_op(function: str, q, qx: int, qo: int, bits: int, platform: str) -> np.ndarray:
    """QSigmoid / QTanh eval forward on integers ``q`` at exponent ``qx``: integers at ``qo``.

    venus: the Q15 float goes through the learned output quantizer (exponent ``qo``). arcs,
    mars, venusA: the kernel output is requantized to ``bits - 1`` fractional bits; the output
    quantizer then re-quantizes at its stored scale, which training fixes to 2**(bits - 1), so
    ``qo`` is expected to be ``bits - 1`` there (another ``qo`` rounds twice, as the original).
    """
    f = np.float32
    quant_x = _fake_quant_input(q, qx)
    family = "arcs" if platform == "mars" else platform
    if family == "venus":
        l_scale = 11 - qx
        if l_scale > 0:
            x_q11 = np.trunc(quant_x * f(2 ** l_scale)).astype(np.int32)   # .int()
        else:
            x_q11 = np.floor(quant_x * f(2.0 ** l_scale) + f(0.5)).astype(np.int32)
        output_q15 = PWL_KERNELS[(family, function)](x_q11)
        output = output_q15.astype(np.float32) / f(1 << 15)
        return _output_quantizer(output, qo, bits)
    l_scale = 27 - qx
    if l_scale > 0:
        x_q27 = np.trunc(quant_x * f(2 ** l_scale)).astype(np.int64)
    else:
        x_q27 = np.floor(quant_x * f(2.0 ** l_scale) + f(0.5)).astype(np.int64)
    x_q27 = np.clip(x_q27, -2 ** 31, 2 ** 31 - 1)
    runtime_output = PWL_KERNELS[(family, function)](x_q27.astype(np.int32))
    q_bits = bits - 1
    output_q = _shift_floor_x05_int64_py(runtime_output.astype(np.int64),
                                         RUNTIME_QBITS[family] - q_bits)
    output_q = np.clip(output_q, -(1 << q_bits), (1 << q_bits) - 1)
    dtype = np.float64 if q_bits > 24 else np.float32
    output = output_q.astype(dtype) / dtype(1 << q_bits)
    if bits > 24:  # _fixed_scale_fake_quant's own float64 path at 2**(bits - 1)
        out = np.floor(output.astype(np.float64) * np.float64(1 << q_bits) + 0.5)
        return np.clip(out, -(2 ** q_bits), 2 ** q_bits - 1).astype(np.int64)
    return _output_quantizer(output, qo, bits)


def softmax_op(q, axis: int, qx: int, qo: int, bits: int, platform: str) -> np.ndarray:
    """QSoftmax eval forward on integers ``q`` at exponent ``qx``: integers at ``qo``."""
    f = np.float32
    x = np.asarray(q).astype(np.float32) / f(2.0 ** qx)  # the float32 QTensor
    family = "arcs" if platform == "mars" else platform
    ndim = x.ndim
    dim = axis if axis >= 0 else axis + ndim
    size = x.shape[dim]
    outer = x.size // size
    permute_order = list(range(ndim))
    if dim != ndim - 1:
        permute_order[dim], permute_order[-1] = permute_order[-1], permute_order[dim]
        x = x.transpose(permute_order)
    x_2d = x.reshape(outer, size)
    x_q25 = np.floor(x_2d * f(1 << 25) + f(0.5)).astype(np.int64)
    x_q25 = np.clip(x_q25, -2 ** 31, 2 ** 31 - 1)
    output_q15 = SOFTMAX_KERNELS[family](x_q25.astype(np.int32))
    y = output_q15.astype(np.float32) / f(1 << 15)
    output = y.reshape(x.shape)
    if dim != ndim - 1:
        inv_perm = [0] * ndim
        for i, p in enumerate(permute_order):
            inv_perm[p] = i
        output = output.transpose(inv_perm)
    return _output_quantizer(output, qo, bits)
