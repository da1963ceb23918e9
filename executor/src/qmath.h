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

/* The functions below are out of line (qmath.c): one copy in a device build. */

/* v * 2**k for k >= 0, exact up to 2**62 and saturated to +-2**62 beyond (qmath's
 * shift_left_saturating): a left shift never wraps. */
#define THK_SHIFT_SATURATION ((int64_t)1 << 62)
int64_t thk_lshift_sat(int64_t v, int k);

/* rshift_round: s > 0: (v + 2**(s-1)) >> s (ties toward +inf; 0 from 63 bits on); s < 0:
 * v << -s saturated at +-2**62; s = 0: v. Callers keep |v| <= 2**62 so adding the half cannot
 * overflow. */
int64_t thk_rshift_round(int64_t v, int32_t s);

/* clamp(rshift_round(v, s), lo, hi) */
int64_t thk_rescale(int64_t v, int32_t s, int64_t lo, int64_t hi);

/* n / d and n % d (*rem, may be NULL) on uint64 for d != 0, without libgcc's 64-bit division
 * (__udivmoddi4 alone is 700 bytes of Cortex-M text): 32-bit division when both operands fit,
 * else shift and subtract. */
uint64_t thk_udivmod64(uint64_t n, uint64_t d, uint64_t *rem);

/* Python's floor division for d != 0 (n / d must fit int64). */
int64_t thk_floor_div(int64_t n, int64_t d);

/* round_half_up_div: floor(n / d + 1/2) = (2n + d) // (2d); numpy's // by zero gives 0. */
int64_t thk_round_half_up_div(int64_t n, int64_t d);

/* float32 bits of v * 2**-q rounded to nearest even, with integers only (exactly what numpy's
 * float64 product followed by a cast to float32 gives for |v| < 2**53): keeps soft-float
 * double arithmetic out of device builds. */
uint32_t thk_scaled_f32_bits(int64_t v, int32_t q);

/* Truncation toward zero of float32 bits to int64 (Python's int()); 0 for NaN, saturated for
 * magnitudes beyond int64. No soft-float code. */
int64_t thk_f32_bits_to_int(uint32_t bits);

/* ---- exact numbers: m * 2**e (no float arithmetic anywhere) ----
 * thk_f32_split: float32 bits as m * 2**e (|m| < 2**24); returns 0 for a finite value, 1 for
 * +-inf (m = +-1), 2 for NaN. thk_double_of: the double numpy's float64 makes of an integer
 * (53 significant bits, ties to even) as m * 2**e. */
int thk_f32_split(uint32_t bits, int64_t *m, int32_t *e);
int64_t thk_double_of(int64_t v, int32_t *e);

/* ---- rounding modes (thinker.qmath.ROUND_MODES; ops/rounding.c reads an op's quant_mode) ----
 * Every function equals its floor_add counterpart for THK_ROUND_FLOOR_ADD and wraps like
 * numpy's int64 where numpy would. */
#define THK_ROUND_FLOOR_ADD 0 /* floor(x + 1/2): the contract's rounding */
#define THK_ROUND_FLOOR 1     /* floor(x) */
#define THK_ROUND_ROUND 2     /* half to even (numpy.rint, torch.round) */
#define THK_ROUND_CEIL 3      /* ceil(x) */
#define THK_ROUND_TRUNC 4     /* toward zero (C casts, Python's int()): thk_ldexp_round only */

/* qmath.rshift_mode: v / 2**s rounded with `mode` for s > 0; a left shift for s < 0. */
int64_t thk_rshift_mode(int64_t v, int32_t s, int mode);

/* clamp(rshift_mode(v, s, mode), lo, hi) */
int64_t thk_rescale_mode(int64_t v, int32_t s, int mode, int64_t lo, int64_t hi);

/* qmath.round_div_mode: n / d rounded with `mode` for d > 0 (numpy's // by zero gives 0). */
int64_t thk_round_div_mode(int64_t n, int64_t d, int mode);

/* m * 2**e rounded with `mode` (THK_ROUND_*), exactly, saturated to int64; |m| <= 2**53
 * (qmath.round_float of the exact float64 value m * 2**e). */
int64_t thk_ldexp_round(int64_t m, int32_t e, int mode);

#endif
