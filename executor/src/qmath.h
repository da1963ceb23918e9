/* The arithmetic contract (design §3, thinker.qmath) in C. Every function is exact on int64
 * for the magnitudes the ops prove at init; shifts of any size are handled without undefined
 * behaviour (a left shift that leaves int64 saturates, which saturation to <= 32 bits makes
 * indistinguishable from the exact result). */
#ifndef THINKER_QMATH_H
#define THINKER_QMATH_H

#include <stdint.h>

/* floor(v / 2**s) for s >= 0: an arithmetic shift written without implementation-defined
 * behaviour on negative values. */
static inline int64_t thk_floor_shift(int64_t v, int s) {
    if (s >= 63) return v < 0 ? -1 : 0;
    return v >= 0 ? (v >> s) : ~((~v) >> s);
}

/* v * 2**k for k >= 0, exact up to 2**62 and saturated to +-2**62 beyond (qmath's
 * shift_left_saturating): a left shift never wraps. */
#define THK_SHIFT_SATURATION ((int64_t)1 << 62)
static inline int64_t thk_lshift_sat(int64_t v, int k) {
    int64_t limit;
    if (v == 0) return 0;
    if (k >= 63) return v > 0 ? THK_SHIFT_SATURATION : -THK_SHIFT_SATURATION;
    limit = THK_SHIFT_SATURATION >> k;
    if (v > limit) return THK_SHIFT_SATURATION;
    if (v < -limit) return -THK_SHIFT_SATURATION;
    return (int64_t)((uint64_t)v << k);
}

/* rshift_round: s > 0: (v + 2**(s-1)) >> s (ties toward +inf; 0 from 63 bits on); s < 0:
 * v << -s saturated at +-2**62; s = 0: v. Callers keep |v| <= 2**62 so adding the half cannot
 * overflow. */
static inline int64_t thk_rshift_round(int64_t v, int32_t s) {
    if (s > 0) {
        if (s >= 63) return 0; /* |v| < 2**62 <= 2**(s-1): rounds to 0 */
        return thk_floor_shift(v + ((int64_t)1 << (s - 1)), s);
    }
    if (s < 0) return thk_lshift_sat(v, -s);
    return v;
}

/* The int64 holding the bits of u (two's complement), without an implementation-defined
 * conversion: numpy's int64 wrap-around. */
static inline int64_t thk_wrap64(uint64_t u) {
    return u <= (uint64_t)INT64_MAX ? (int64_t)u : -(int64_t)(~u) - 1;
}

/* rshift_round on int64 exactly as numpy computes it, wrapping where numpy's int64 wraps, for
 * |s| <= 63 (ops bound s at prepare). */
static inline int64_t thk_rshift_round_wrap(int64_t v, int32_t s) {
    if (s > 0) return thk_floor_shift(thk_wrap64((uint64_t)v + ((uint64_t)1 << (s - 1))), s);
    if (s < 0) return thk_wrap64((uint64_t)v << -s);
    return v;
}

static inline int64_t thk_clamp(int64_t v, int64_t lo, int64_t hi) {
    v = v < lo ? lo : v;   /* max first, then min: numpy's clip when lo > hi gives hi */
    return v > hi ? hi : v;
}

static inline int64_t thk_rescale(int64_t v, int32_t s, int64_t lo, int64_t hi) {
    return thk_clamp(thk_rshift_round(v, s), lo, hi);
}

/* Python's floor division for d != 0. */
static inline int64_t thk_floor_div(int64_t n, int64_t d) {
    int64_t q = n / d;
    if ((n % d != 0) && ((n < 0) != (d < 0))) q -= 1;
    return q;
}

/* round_half_up_div: floor(n / d + 1/2) = (2n + d) // (2d); numpy's // by zero gives 0. */
static inline int64_t thk_round_half_up_div(int64_t n, int64_t d) {
    if (d == 0) return 0;
    return thk_floor_div(2 * n + d, 2 * d);
}

/* 2**q as a double, exact for -1022 <= q <= 1023, built from its bits (no math.h). */
static inline double thk_pow2(int32_t q) {
    union { uint64_t u; double d; } v;
    if (q < -1022) q = -1022;
    if (q > 1023) q = 1023;
    v.u = (uint64_t)(q + 1023) << 52;
    return v.d;
}

/* floor of a finite double known to lie in (-2**62, 2**62). */
static inline int64_t thk_floor_to_int(double x) {
    int64_t t = (int64_t)x; /* truncates toward zero */
    if ((double)t > x) t -= 1;
    return t;
}

/* ceil of a finite double known to lie in (-2**62, 2**62). */
static inline int64_t thk_ceil_to_int(double x) {
    int64_t t = (int64_t)x;
    if ((double)t < x) t += 1;
    return t;
}

/* float32 bits of v * 2**-q rounded to nearest even, with integers only (exactly what numpy's
 * float64 product followed by a cast to float32 gives for |v| < 2**53): keeps soft-float
 * double arithmetic out of device builds. */
static inline uint32_t thk_scaled_f32_bits(int64_t v, int32_t q) {
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

/* Truncation toward zero of float32 bits to int64 (Python's int()); 0 for NaN, saturated for
 * magnitudes beyond int64. No soft-float code. */
static inline int64_t thk_f32_bits_to_int(uint32_t bits) {
    int32_t e = (int32_t)((bits >> 23) & 0xFFu) - 127;
    uint64_t mant = (bits & 0x7FFFFFu) | 0x800000u;
    int64_t v;
    if (((bits >> 23) & 0xFFu) == 0xFFu && (bits & 0x7FFFFFu)) return 0; /* NaN */
    if (e < 0) return 0;
    if (e >= 63) return (bits >> 31) ? INT64_MIN : INT64_MAX;
    v = (int64_t)(e >= 23 ? mant << (e - 23) : mant >> (23 - e));
    return (bits >> 31) ? -v : v;
}

/* ---- rounding modes (thinker.qmath.ROUND_MODES; ops/rounding.c reads an op's quant_mode) ----
 * Every function equals its floor_add counterpart for THK_ROUND_FLOOR_ADD and wraps like
 * numpy's int64 where numpy would. */
#define THK_ROUND_FLOOR_ADD 0 /* floor(x + 1/2): the contract's rounding */
#define THK_ROUND_FLOOR 1     /* floor(x) */
#define THK_ROUND_ROUND 2     /* half to even (numpy.rint, torch.round) */
#define THK_ROUND_CEIL 3      /* ceil(x) */

/* qmath.rshift_mode: v / 2**s rounded with `mode` for s > 0; a left shift for s < 0. */
static inline int64_t thk_rshift_mode(int64_t v, int32_t s, int mode) {
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

static inline int64_t thk_rescale_mode(int64_t v, int32_t s, int mode, int64_t lo, int64_t hi) {
    return thk_clamp(thk_rshift_mode(v, s, mode), lo, hi);
}

/* qmath.round_div_mode: n / d rounded with `mode` for d > 0 (numpy's // by zero gives 0). */
static inline int64_t thk_round_div_mode(int64_t n, int64_t d, int mode) {
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

#endif
