/* iqAdd, iqSub, iqMul, iqDiv and iqCat (thinker/ops/elementwise.py). Each input is rescaled to
 * the output exponent and saturated on its own before the saturating add/sub; iqMul rescales the
 * exact product; iqDiv rounds the exact quotient once. Binary ops broadcast like numpy. All of
 * them may run in place (the memory planner lets the output take over a same-shaped input that
 * dies here): element i is read before it is written. */
#include "ops.h"
#include "../op_select.h"
#include "gemm_s8.h" /* THK_GEMM_DSP */
#if THK_GEMM_DSP
#include <arm_acle.h>
#endif

thinker_status thk_o_bits(const thk_op *op, int64_t bits, const thk_tensor *out, int64_t *lo, int64_t *hi,
                          thinker_message *msg) {
    uint32_t dtype;
    thk_attr_int(op, "o_bits", &bits); /* an int when present: attribute rules */
    if (!thk_bits_range(bits, lo, hi, &dtype)) THK_BAD("o_bits must be 4, 8, 16 or 32");
    if (out->dtype != dtype) THK_BAD("output dtype does not match o_bits");
    return THINKER_OK;
}

int thk_input_exponent(const thk_op *op, const char *key, const thk_tensor *t, int32_t *q) {
    if (thk_attr_has(op, key)) return thk_attr_exponent(op, key, q) == 1;
    if (!(t->flags & THK_FLAG_EXPONENT)) return 0;
    *q = t->exponent;
    return 1;
}

int thk_broadcast_init(thk_broadcast *bc, const thk_tensor *a, const thk_tensor *b, const thk_tensor *out) {
    uint32_t n = a->ndim > b->ndim ? a->ndim : b->ndim, i;
    uint32_t sa = 1, sb = 1;
    if (out->ndim != n) return 0;
    bc->ndim = n;
    for (i = n; i-- > 0;) {
        int ia = (int)i - (int)(n - a->ndim), ib = (int)i - (int)(n - b->ndim);
        uint32_t da = ia >= 0 ? a->dims[ia] : 1, db = ib >= 0 ? b->dims[ib] : 1;
        uint32_t d = da == 1 ? db : da;
        if ((da != db && da != 1 && db != 1) || out->dims[i] != d) return 0;
        bc->dims[i] = d;
        bc->stride_a[i] = da == 1 ? 0 : sa;
        bc->stride_b[i] = db == 1 ? 0 : sb;
        sa *= da;
        sb *= db;
    }
    return 1;
}

enum { BIN_ADD, BIN_SUB, BIN_MUL, BIN_DIV };

typedef struct {
    int32_t sx, sy;
    int64_t lo, hi;
    int kind;
    int mode; /* THK_ROUND_* */
} binary_rule;

typedef int64_t (*binary_fn)(const binary_rule *r, int64_t x, int64_t y);

static int64_t combine(const binary_rule *r, int64_t x, int64_t y) {
#if THINKER_OP_iqMul /* only the types of this build (op_select.h) */
    if (r->kind == BIN_MUL) return thk_rescale(x * y, r->sx, r->lo, r->hi);
#endif
    x = thk_rescale(x, r->sx, r->lo, r->hi);
    y = thk_rescale(y, r->sy, r->lo, r->hi);
    return thk_clamp(r->kind == BIN_SUB ? x - y : x + y, r->lo, r->hi);
}

/* combine with another rounding mode (qmath.rescale_mode / rshift_mode) */
static int64_t combine_mode(const binary_rule *r, int64_t x, int64_t y) {
#if THINKER_OP_iqMul
    if (r->kind == BIN_MUL) return thk_rescale_mode(x * y, r->sx, r->mode, r->lo, r->hi);
#endif
    x = thk_rescale_mode(x, r->sx, r->mode, r->lo, r->hi);
    y = thk_rescale_mode(y, r->sy, r->mode, r->lo, r->hi);
    return thk_clamp(r->kind == BIN_SUB ? x - y : x + y, r->lo, r->hi);
}

/* elementwise.divide (its own function: builds without iqDiv do not link it); prepare keeps
 * |x << sx|, |y << sy| < 2**62 */
static int64_t divide(const binary_rule *r, int64_t x, int64_t y) {
    x *= (int64_t)1 << r->sx;
    y *= (int64_t)1 << r->sy;
    if (y < 0) {
        x = -x;
        y = -y;
    }
    if (!y) return x > 0 ? r->hi : (x < 0 ? r->lo : 0); /* the saturation value of x's sign */
    /* round_half_up_div; 2x + y wraps like numpy's int64 only for uint8 x at a 54-bit shift */
    return thk_clamp(thk_floor_div(thk_wrap64(2u * (uint64_t)x + (uint64_t)y), 2 * y), r->lo, r->hi);
}

static thinker_status binary_prepare(const thinker_model *m, thk_op *op, thinker_message *msg, int kind) {
    thk_elem_params *p = &op->p.elem;
    thk_tensor x, y, out;
    thk_broadcast bc;
    int32_t qx, qy, qo;
    int64_t bits = 8;
    if (op->n_out != 1) THK_BAD("expects 1 output");
    thk_op_input(m, op, 0, &x); /* inputs 0 and 1: present (thk_check_op_rules) */
    thk_op_input(m, op, 1, &y);
    thk_op_output(m, op, 0, &out);
    if (!thk_is_int(x.dtype) || !thk_is_int(y.dtype) || x.dtype == THINKER_INT64 || y.dtype == THINKER_INT64)
        THK_BAD("input must be int8/uint8/int16/int32");
    if (!thk_input_exponent(op, "scale_x", &x, &qx) || !thk_input_exponent(op, "scale_y", &y, &qy))
        THK_BAD("an input has no scale");
    if (thk_attr_exponent(op, "scale_o", &qo) != 1) THK_BAD("scale_o missing");
    THK_TRY(thk_o_bits(op, bits, &out, &p->lo, &p->hi, msg));
    if (!thk_broadcast_init(&bc, &x, &y, &out)) THK_BAD("inputs do not broadcast to the output");
    thk_round_mode(m, op, &p->round_mode); /* a known mode: thk_check_op_rules */
    /* a Relu / Clip fused by tpacker (fused_clip [lo, hi], rules-checked to meet the output
     * range): clamps the saturated result, as the separate op did */
    p->clip_lo = p->lo;
    p->clip_hi = p->hi;
    {
        int64_t clip[2];
        if (thk_attr_ints(op, "fused_clip", clip, 2) == 2) {
            if (clip[0] > p->clip_lo) p->clip_lo = clip[0];
            if (clip[1] < p->clip_hi) p->clip_hi = clip[1];
        }
    }
    p->sx = kind == BIN_MUL ? qx + qy - qo : qx - qo;
    p->sy = qy - qo;
#if THINKER_OP_iqDiv
    if (kind == BIN_DIV) { /* the shift goes to the numerator (> 0) or the divisor */
        /* numpy's bound: x's magnitude bits + max(shift, 0) and y's + max(-shift, 0) <= 62 */
        int32_t shift = qo - qx + qy;
        uint32_t widest = 8u * thk_dtype_size(x.dtype);
        if (shift > 62 - (int32_t)widest || -shift > 62 - (int32_t)(8u * thk_dtype_size(y.dtype)))
            THK_BAD("the division shift would leave int64");
        p->sx = shift > 0 ? shift : 0;
        p->sy = shift < 0 ? -shift : 0;
    }
#endif
    return THINKER_OK;
}

static thinker_status binary_run(thk_run_ctx *ctx, int kind, binary_fn fn) {
    const thinker_model *m = ctx->model;
    const thk_op *op = ctx->op;
    const thk_elem_params *p = &op->p.elem;
    thk_tensor x, y, out;
    thk_broadcast bc;
    binary_rule r;
    uint32_t i;
    thk_op_input(m, op, 0, &x);
    thk_op_input(m, op, 1, &y);
    thk_op_output(m, op, 0, &out);
    r.sx = p->sx; r.sy = p->sy; r.lo = p->lo; r.hi = p->hi; r.kind = kind; r.mode = p->round_mode;
    if (r.mode != THK_ROUND_FLOOR_ADD && fn == combine) fn = combine_mode;
    if (x.count == out.count && y.count == out.count) {
        if (x.dtype == THINKER_INT8 && y.dtype == THINKER_INT8 && out.dtype == THINKER_INT8) {
            const int8_t *a = (const int8_t *)x.data, *b = (const int8_t *)y.data;
            int8_t *o = (int8_t *)out.data;
            if (fn == combine && kind != BIN_MUL && r.sx >= -23 && r.sx <= 30 && r.sy >= -23 && r.sy <= 30) {
                /* int8 add/sub, floor_add: combine's integers in int32 arithmetic (|v << 23| and
                 * v + 2**29 stay inside int32), inlined */
                int32_t lo = (int32_t)r.lo, hi = (int32_t)r.hi, clo = (int32_t)p->clip_lo, chi = (int32_t)p->clip_hi;
#if THK_GEMM_DSP
                if (lo == -128 && hi == 127 && chi == 127 && (clo == 0 || clo == -128)) {
                    /* int8 range, no clip or a ReLU: each input (x * m + half) >> s (m = 2**-s for a
                     * left shift), SSAT 8; the sum SSAT 8 or USAT 7 (arithmetic >> on these cores) */
                    int32_t mx = r.sx < 0 ? 1 << -r.sx : 1, hx = r.sx > 0 ? 1 << (r.sx - 1) : 0, sx = r.sx > 0 ? r.sx : 0;
                    int32_t my = r.sy < 0 ? 1 << -r.sy : 1, hy = r.sy > 0 ? 1 << (r.sy - 1) : 0, sy = r.sy > 0 ? r.sy : 0;
                    int32_t neg = kind == BIN_SUB ? -1 : 1;
                    for (i = 0; i < out.count; i++) {
                        int32_t u = __ssat((a[i] * mx + hx) >> sx, 8), v = __ssat((b[i] * my + hy) >> sy, 8);
                        u += neg * v;
                        o[i] = (int8_t)(clo == 0 ? __usat(u, 7) : __ssat(u, 8));
                    }
                    return THINKER_OK;
                }
#else /* (DSP builds: other ranges and clips take the generic loop below) */
                for (i = 0; i < out.count; i++) {
                    int32_t u = a[i], v = b[i];
                    u = r.sx > 0 ? (u += 1 << (r.sx - 1), u >= 0 ? u >> r.sx : ~(~u >> r.sx)) : u * (1 << -r.sx);
                    v = r.sy > 0 ? (v += 1 << (r.sy - 1), v >= 0 ? v >> r.sy : ~(~v >> r.sy)) : v * (1 << -r.sy);
                    u = u < lo ? lo : u; u = u > hi ? hi : u;
                    v = v < lo ? lo : v; v = v > hi ? hi : v;
                    u = kind == BIN_SUB ? u - v : u + v;
                    u = u < lo ? lo : u; u = u > hi ? hi : u;
                    u = u < clo ? clo : u; u = u > chi ? chi : u;
                    o[i] = (int8_t)u;
                }
                return THINKER_OK;
#endif
            }
            for (i = 0; i < out.count; i++) o[i] = (int8_t)thk_clamp(fn(&r, a[i], b[i]), p->clip_lo, p->clip_hi);
        } else {
            for (i = 0; i < out.count; i++)
                thk_store_int(out.data, out.dtype, i,
                              thk_clamp(fn(&r, thk_load_int(x.data, x.dtype, i), thk_load_int(y.data, y.dtype, i)),
                                        p->clip_lo, p->clip_hi));
        }
        return THINKER_OK;
    }
    /* broadcasting: an odometer over the output, with stride 0 on broadcast axes */
    {
        uint32_t idx[THINKER_MAX_DIMS] = {0}, ia = 0, ib = 0, d;
        thk_broadcast_init(&bc, &x, &y, &out);
        for (i = 0; i < out.count; i++) {
            thk_store_int(out.data, out.dtype, i,
                          thk_clamp(fn(&r, thk_load_int(x.data, x.dtype, ia), thk_load_int(y.data, y.dtype, ib)),
                                    p->clip_lo, p->clip_hi));
            for (d = bc.ndim; d-- > 0;) {
                ia += bc.stride_a[d];
                ib += bc.stride_b[d];
                if (++idx[d] < bc.dims[d]) break;
                ia -= bc.stride_a[d] * bc.dims[d];
                ib -= bc.stride_b[d] * bc.dims[d];
                idx[d] = 0;
            }
        }
    }
    return THINKER_OK;
}

thinker_status thk_iqadd_prepare(const thinker_model *m, thk_op *op, thk_needs *n, thinker_message *msg) {
    (void)n;
    return binary_prepare(m, op, msg, BIN_ADD);
}
thinker_status thk_iqsub_prepare(const thinker_model *m, thk_op *op, thk_needs *n, thinker_message *msg) {
    (void)n;
    return binary_prepare(m, op, msg, BIN_SUB);
}
thinker_status thk_iqmul_prepare(const thinker_model *m, thk_op *op, thk_needs *n, thinker_message *msg) {
    (void)n;
    return binary_prepare(m, op, msg, BIN_MUL);
}
thinker_status thk_iqdiv_prepare(const thinker_model *m, thk_op *op, thk_needs *n, thinker_message *msg) {
    (void)n;
    return binary_prepare(m, op, msg, BIN_DIV);
}
thinker_status thk_iqadd_run(thk_run_ctx *ctx) { return binary_run(ctx, BIN_ADD, combine); }
thinker_status thk_iqsub_run(thk_run_ctx *ctx) { return binary_run(ctx, BIN_SUB, combine); }
thinker_status thk_iqmul_run(thk_run_ctx *ctx) { return binary_run(ctx, BIN_MUL, combine); }
thinker_status thk_iqdiv_run(thk_run_ctx *ctx) { return binary_run(ctx, BIN_DIV, divide); }

/* ---- iqCat ----------------------------------------------------------------------------------- */

/* "scale_x_<i>" */
static void scale_key(char *key, uint32_t i) {
    char digits[12];
    int n = 0, k = 8;
    memcpy(key, "scale_x_", 8);
    do { digits[n++] = (char)('0' + i % 10u); i /= 10u; } while (i);
    while (n) key[k++] = digits[--n];
    key[k] = '\0';
}

/* The concatenation axis and its checks, shared with Concat (shape.c). */
thinker_status thk_concat_check(const thinker_model *m, const thk_op *op, int64_t axis, int same_dtype,
                                uint32_t *axis_out, thinker_message *msg);

thinker_status thk_concat_check(const thinker_model *m, const thk_op *op, int64_t axis, int same_dtype,
                                uint32_t *axis_out, thinker_message *msg) {
    thk_tensor first, t, out;
    uint32_t i, d;
    uint64_t total = 0;
    if (op->n_out != 1) THK_BAD("expects 1 output");
    thk_op_input(m, op, 0, &first); /* input 0: present (thk_check_op_rules) */
    thk_op_output(m, op, 0, &out);
    if (axis < -(int64_t)first.ndim || axis >= (int64_t)first.ndim) THK_BAD("axis out of range");
    if (axis < 0) axis += first.ndim;
    for (i = 0; i < op->n_in; i++) {
        if (!thk_op_input(m, op, i, &t)) THK_BAD("inputs are required");
        if (t.ndim != first.ndim) THK_BAD("inputs differ in rank");
        for (d = 0; d < t.ndim; d++)
            if (d != (uint32_t)axis && t.dims[d] != first.dims[d]) THK_BAD("inputs differ outside the axis");
        if (same_dtype && t.dtype != first.dtype) THK_BAD("inputs mix dtypes");
        if (!thk_is_int(t.dtype) && t.dtype != THINKER_FLOAT32) THK_BAD("unsupported input dtype");
        total += t.dims[axis];
    }
    if (out.ndim != first.ndim || out.dims[axis] != total) THK_BAD("recorded output shape differs from the computed one");
    for (d = 0; d < out.ndim; d++)
        if (d != (uint32_t)axis && out.dims[d] != first.dims[d]) THK_BAD("recorded output shape differs from the computed one");
    *axis_out = (uint32_t)axis;
    return THINKER_OK;
}

thinker_status thk_iqcat_prepare(const thinker_model *m, thk_op *op, thk_needs *n, thinker_message *msg) {
    thk_elem_params *p = &op->p.elem;
    thk_tensor t, out;
    int64_t axis = 1, bits = 8;
    int32_t q, qo;
    uint32_t i, dtype, ax;
    char key[24];
    thinker_status s;
    (void)n;
    if (!thk_attr_int(op, "dim", &axis)) thk_attr_int(op, "axis", &axis);
    s = thk_concat_check(m, op, axis, 0, &ax, msg);
    if (s != THINKER_OK) return s;
    p->axis = (int32_t)ax;
    if (thk_attr_exponent(op, "scale_o", &qo) != 1) THK_BAD("scale_o missing");
    thk_attr_int(op, "o_bits", &bits);
    if (!thk_bits_range(bits, &p->lo, &p->hi, &dtype)) THK_BAD("o_bits must be 4, 8, 16 or 32");
    thk_op_output(m, op, 0, &out);
    if (out.dtype != dtype) THK_BAD("output dtype does not match o_bits");
    for (i = 0; i < op->n_in; i++) {
        thk_op_input(m, op, i, &t);
        scale_key(key, i);
        if (!thk_is_int(t.dtype) || t.dtype == THINKER_INT64) THK_BAD("inputs must be integer");
        if (!thk_input_exponent(op, key, &t, &q)) THK_BAD("an input has no scale");
    }
    thk_round_mode(m, op, &p->round_mode); /* a known mode: thk_check_op_rules */
    p->q = qo;
    return THINKER_OK;
}

thinker_status thk_iqcat_run(thk_run_ctx *ctx) {
    const thinker_model *m = ctx->model;
    const thk_op *op = ctx->op;
    const thk_elem_params *p = &op->p.elem;
    thk_tensor t, out;
    uint32_t outer = 1, inner = 1, d, i, b, k, at = 0;
    char key[24];
    thk_op_output(m, op, 0, &out);
    for (d = 0; d < (uint32_t)p->axis; d++) outer *= out.dims[d];
    for (d = (uint32_t)p->axis + 1; d < out.ndim; d++) inner *= out.dims[d];
    for (b = 0; b < outer; b++)
        for (i = 0; i < op->n_in; i++) {
            int32_t q, s;
            uint32_t chunk;
            thk_op_input(m, op, i, &t);
            scale_key(key, i);
            thk_input_exponent(op, key, &t, &q);
            s = q - p->q;
            chunk = t.dims[p->axis] * inner;
            for (k = 0; k < chunk; k++, at++) {
                int64_t v = thk_load_int(t.data, t.dtype, b * chunk + k);
                /* numpy: rescale(...) when the shift is non-zero, a plain (wrapping) cast when 0 */
                thk_store_int(out.data, out.dtype, at, s ? thk_rescale_mode(v, s, p->round_mode, p->lo, p->hi) : v);
            }
        }
    return THINKER_OK;
}
