/* The out-of-line part of the arithmetic contract (qmath.h): one copy of each function in a
 * device build, and no libgcc 64-bit division or soft-float helper anywhere. */
#include "qmath.h"

int64_t thk_lshift_sat(int64_t v, int k) {
    int64_t limit;
    if (v == 0) return 0;
    if (k >= 63) return v > 0 ? THK_SHIFT_SATURATION : -THK_SHIFT_SATURATION;
    limit = THK_SHIFT_SATURATION >> k;
    if (v > limit) return THK_SHIFT_SATURATION;
    if (v < -limit) return -THK_SHIFT_SATURATION;
    return (int64_t)((uint64_t)v << k);
}

int64_t thk_rshift_round(int64_t v, int32_t s) {
    if (s > 0) {
        if (s >= 63) return 0; /* |v| < 2**62 <= 2**(s-1): rounds to 0 */
        return thk_floor_shift(v + ((int64_t)1 << (s - 1)), s);
    }
    if (s < 0) return thk_lshift_sat(v, -s);
    return v;
}

int64_t thk_rescale(int64_t v, int32_t s, int64_t lo, int64_t hi) {
    return thk_clamp(thk_rshift_round(v, s), lo, hi);
}

uint64_t thk_udivmod64(uint64_t n, uint64_t d, uint64_t *rem) {
    uint64_t q = 0, r = 0;
    int i;
    if (!((n | d) >> 32)) {
        q = (uint32_t)n / (uint32_t)d;
        r = (uint32_t)n - (uint32_t)q * (uint32_t)d;
    } else if (d >> 63) { /* r << 1 below would lose its top bit */
        q = n >= d;
        r = q ? n - d : n;
    } else {
        for (i = 63; i >= 0; i--) {
            r = (r << 1) | ((n >> i) & 1u);
            if (r >= d) {
                r -= d;
                q |= (uint64_t)1 << i;
            }
        }
    }
    if (rem) *rem = r;
    return q;
}

int64_t thk_floor_div(int64_t n, int64_t d) {
    uint64_t r, q = thk_udivmod64(n < 0 ? (uint64_t)0 - (uint64_t)n : (uint64_t)n,
                                  d < 0 ? (uint64_t)0 - (uint64_t)d : (uint64_t)d, &r);
    if ((n < 0) != (d < 0)) q = (uint64_t)0 - q - (r != 0);
    return thk_wrap64(q);
}

int64_t thk_round_half_up_div(int64_t n, int64_t d) {
    if (d == 0) return 0;
    return thk_floor_div(2 * n + d, 2 * d);
}

uint32_t thk_scaled_f32_bits(int64_t v, int32_t q) {
    uint32_t sign = v < 0 ? 0x80000000u : 0u;
    uint64_t mag = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v, m;
    int32_t p = 63, e, s;
    if (!mag) return 0u;
    while (!(mag >> p)) p--;
    e = p - q; /* value in [2**e, 2**(e+1)) */
    if (e > 127) return sign | 0x7F800000u;
    s = e >= -126 ? p - 23 : q - 149; /* drop s bits: 24-bit mantissa, or the subnormal grid */
    if (s <= 0) {
        m = s <= -64 ? 0 : mag << -s;
    } else if (s > 64) {
        m = 0;
    } else {
        uint64_t rest = s == 64 ? mag : mag & ((((uint64_t)1) << s) - 1);
        uint64_t half = (uint64_t)1 << (s - 1);
        m = s == 64 ? 0 : mag >> s;
        if (rest > half || (rest == half && (m & 1u))) m++;
    }
    if (e >= -126) { /* normal: m in [2**23, 2**24], a carry bumps the exponent */
        if (m >> 24) { m >>= 1; e++; }
        if (e > 127) return sign | 0x7F800000u;
        return sign | ((uint32_t)(e + 127) << 23) | ((uint32_t)m & 0x7FFFFFu);
    }
    return sign | (uint32_t)m; /* subnormal (a carry into 2**23 is the smallest normal) */
}

int64_t thk_f32_bits_to_int(uint32_t bits) {
    int32_t e = (int32_t)((bits >> 23) & 0xFFu) - 127;
    uint64_t mant = (bits & 0x7FFFFFu) | 0x800000u;
    int64_t v;
    if (((bits >> 23) & 0xFFu) == 0xFFu && (bits & 0x7FFFFFu)) return 0; /* NaN */
    if (e < 0) return 0;
    if (e >= 63) return (bits >> 31) ? INT64_MIN : INT64_MAX;
    v = (int64_t)(e >= 23 ? mant << (e - 23) : mant >> (23 - e));
    return (bits >> 31) ? -v : v;
}

int thk_f32_split(uint32_t bits, int64_t *m, int32_t *e) {
    uint32_t ex = (bits >> 23) & 0xFFu, man = bits & 0x7FFFFFu;
    int64_t sign = (bits >> 31) ? -1 : 1;
    *e = 0;
    *m = sign;
    if (ex == 0xFFu) return man ? 2 : 1;
    if (ex) {
        man |= 0x800000u;
        *e = (int32_t)ex - 150;
    } else {
        *e = -149;
    }
    *m = sign * (int64_t)man;
    return 0;
}

int64_t thk_double_of(int64_t v, int32_t *e) {
    uint64_t mag = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v, rest, half;
    int32_t x = 0;
    while (mag >> x >> 53) x++; /* bits beyond 53 */
    *e = x;
    if (!x) return v;
    rest = mag & (((uint64_t)1 << x) - 1u);
    half = (uint64_t)1 << (x - 1);
    mag >>= x;
    if (rest > half || (rest == half && (mag & 1u))) mag++; /* <= 2**53 */
    return v < 0 ? -(int64_t)mag : (int64_t)mag;
}

int64_t thk_rshift_mode(int64_t v, int32_t s, int mode) {
    uint64_t t, mask;
    int64_t r;
    if (mode == THK_ROUND_FLOOR_ADD || s <= 0) return thk_rshift_round(v, s);
    if (s > 63) s = 63;
    mask = (((uint64_t)1) << s) - 1u;
    if (mode == THK_ROUND_FLOOR) return thk_floor_shift(v, s);
    if (mode == THK_ROUND_CEIL) return thk_floor_shift(thk_wrap64((uint64_t)v + mask), s);
    t = (uint64_t)v + ((uint64_t)1 << (s - 1)); /* half up, then a tie on an odd value steps back */
    r = thk_floor_shift(thk_wrap64(t), s);
    if ((t & mask) == 0u && ((uint64_t)r & 1u)) r -= 1;
    return r;
}

int64_t thk_rescale_mode(int64_t v, int32_t s, int mode, int64_t lo, int64_t hi) {
    return thk_clamp(thk_rshift_mode(v, s, mode), lo, hi);
}

int64_t thk_round_div_mode(int64_t n, int64_t d, int mode) {
    int64_t t, r;
    if (mode == THK_ROUND_FLOOR_ADD) return thk_round_half_up_div(n, d);
    if (d == 0) return 0;
    if (mode == THK_ROUND_FLOOR) return thk_floor_div(n, d);
    if (mode == THK_ROUND_CEIL) return -thk_floor_div(-n, d);
    t = 2 * n + d;
    r = thk_floor_div(t, 2 * d);
    if (t - r * 2 * d == 0 && ((uint64_t)r & 1u)) r -= 1;
    return r;
}

int64_t thk_ldexp_round(int64_t m, int32_t e, int mode) {
    uint64_t mag = m < 0 ? (uint64_t)0 - (uint64_t)m : (uint64_t)m;
    if (!m) return 0;
    if (e >= 0) { /* an integer: saturated beyond int64 (-2**63 itself fits) */
        if (e > 62 || mag >> (63 - e)) return m < 0 ? INT64_MIN : INT64_MAX;
        return m * ((int64_t)1 << e);
    }
    if (e < -62) { /* |m * 2**e| <= 2**-9 */
        if (mode == THK_ROUND_FLOOR) return m < 0 ? -1 : 0;
        if (mode == THK_ROUND_CEIL) return m > 0;
        return 0;
    }
    if (mode == THK_ROUND_TRUNC) return m < 0 ? -thk_floor_shift(-m, -e) : thk_floor_shift(m, -e);
    return thk_rshift_mode(m, -e, mode);
}
