/* Data movement with ONNX semantics (thinker/ops/shape.py); the exponent passes through.
 * Reshape-like ops (Reshape, Flatten, Squeeze, Unsqueeze) share their input's bytes in the
 * memory plan, so they normally copy nothing. Constant operands (shape, axes, pads, starts,
 * ends, split sizes) come from constant inputs or, in older opsets, from attributes. */
#include "ops.h"
#include "../op_select.h"

#define THK_MAX_OPERANDS 64

static uint32_t elem_size_ok(const thk_tensor *t) { return thk_dtype_size(t->dtype); }

/* C-order strides (in elements) of a tensor */
static void strides_of(const thk_tensor *t, uint32_t *st) {
    uint32_t s = 1, d;
    for (d = t->ndim; d-- > 0;) {
        st[d] = s;
        s *= t->dims[d];
    }
}

static void copy_elem(uint8_t *dst, const uint8_t *src, uint32_t size) {
    switch (size) {
    case 1: *dst = *src; break;
    case 2: memcpy(dst, src, 2); break;
    case 4: memcpy(dst, src, 4); break;
    default: memcpy(dst, src, size); break;
    }
}

/* integers from constant input `slot`, else from attribute `attr`: count, -1 absent, -2 invalid */
static int operand_ints(const thinker_model *m, const thk_op *op, uint32_t slot, const char *attr,
                        int64_t *v, int cap) {
    thk_tensor t;
    if (thk_op_input(m, op, slot, &t)) {
        if (!t.init || !thk_is_int(t.dtype)) return -2;
        return thk_const_ints(m, op, slot, v, cap) < 0 ? -2 : (int)t.count;
    }
    if (!thk_attr_has(op, attr)) return -1;
    return thk_attr_ints(op, attr, v, cap) < 0 ? -2 : thk_attr_ints(op, attr, v, cap);
}

static int norm_axis(int64_t axis, uint32_t rank, uint32_t *out) {
    if (axis < -(int64_t)rank || axis >= (int64_t)rank) return 0;
    *out = (uint32_t)(axis < 0 ? axis + rank : axis);
    return 1;
}

/* ---- Reshape, Flatten, Squeeze, Unsqueeze ---------------------------------------------------- */

/* The output shape each reshape-like op computes (shape.py's out_shape), into dims/ndim;
 * 0 when the op's operands are invalid or the shape cannot be a tensor's. */
static int reshape_dims(const thinker_model *m, const thk_op *op, const thk_tensor *x, int64_t *dims,
                        uint32_t *ndim) {
    int64_t v[THK_MAX_OPERANDS], allowzero = 0;
    uint32_t r = x->ndim, d, k;
    int n;
#if THINKER_OP_Flatten /* only the types of this build (op_select.h) */
    if (thk_streq(op->type, "Flatten")) { /* (prod(shape[:axis]), prod(shape[axis:])) */
        int64_t axis = 1, head = 1, tail = 1;
        thk_attr_int(op, "axis", &axis);
        if (axis < 0) { /* an int32 (attribute rules) */
            if (!r) return 0; /* Python's % 0 */
            axis = (((int32_t)axis % (int32_t)r) + (int32_t)r) % (int32_t)r;
        }
        for (d = 0; d < r; d++) {
            if ((int64_t)d < axis) head *= x->dims[d];
            else tail *= x->dims[d];
        }
        dims[0] = head;
        dims[1] = tail;
        *ndim = 2;
        return 1;
    }
#endif
#if THINKER_OP_Squeeze /* only the types of this build (op_select.h) */
    if (thk_streq(op->type, "Squeeze")) { /* the given axes (size 1 each), else every 1 */
        uint32_t drop = 0;
        n = operand_ints(m, op, 1, "axes", v, THK_MAX_OPERANDS);
        if (n == -2) return 0;
        for (k = 0; n >= 0 && k < (uint32_t)n; k++) {
            uint32_t a;
            if (!norm_axis(v[k], r, &a) || x->dims[a] != 1) return 0;
            drop |= 1u << a;
        }
        for (d = 0, *ndim = 0; d < r; d++)
            if (n >= 0 ? !((drop >> d) & 1u) : x->dims[d] != 1) dims[(*ndim)++] = x->dims[d];
        return 1;
    }
#endif
#if THINKER_OP_Unsqueeze /* only the types of this build (op_select.h) */
    if (thk_streq(op->type, "Unsqueeze")) { /* a 1 inserted at each axis, in sorted order */
        uint32_t rank, sorted[THK_MAX_OPERANDS], len = r;
        n = operand_ints(m, op, 1, "axes", v, THK_MAX_OPERANDS);
        if (n < 0 || r + (uint32_t)n > THINKER_MAX_DIMS) return 0;
        rank = r + (uint32_t)n;
        for (k = 0; k < (uint32_t)n; k++) {
            uint32_t a, j;
            if (!norm_axis(v[k], rank, &a)) return 0;
            for (j = k; j > 0 && sorted[j - 1] > a; j--) sorted[j] = sorted[j - 1];
            sorted[j] = a;
        }
        for (d = 0; d < r; d++) dims[d] = x->dims[d];
        for (k = 0; k < (uint32_t)n; k++) { /* list.insert(a, 1) */
            uint32_t a = sorted[k] > len ? len : sorted[k];
            for (d = len; d > a; d--) dims[d] = dims[d - 1];
            dims[a] = 1;
            len++;
        }
        *ndim = rank;
        return 1;
    }
#endif
    /* Reshape: 0 copies the input's dimension (unless allowzero), one -1 is inferred */
    n = operand_ints(m, op, 1, "shape", v, THK_MAX_OPERANDS);
    if (n < 0 || n > THINKER_MAX_DIMS) return 0;
    thk_attr_int(op, "allowzero", &allowzero);
    {
        int64_t known = 1, total = 1;
        int minus = -1;
        for (k = 0; k < (uint32_t)n; k++) {
            if (v[k] == 0 && !allowzero) {
                if (k >= r) return 0;
                v[k] = x->dims[k];
            }
            if (v[k] == -1) {
                if (minus >= 0) return 0;
                minus = (int)k;
            } else if (v[k] < 0 || v[k] > 0xFFFFFFFFll) {
                return 0; /* no tensor has this dimension */
            } else if ((known = (int64_t)thk_mul_sat((uint64_t)known, (uint64_t)v[k])) > 0xFFFFFFFFll) {
                return 0;
            }
        }
        for (d = 0; d < r; d++) total *= x->dims[d];
        if (minus >= 0) { /* total < 2**31, 0 < known < 2**32 */
            if (known == 0 || (uint32_t)total % (uint32_t)known) return 0;
            v[minus] = (uint32_t)total / (uint32_t)known;
        }
        for (k = 0; k < (uint32_t)n; k++) dims[k] = v[k];
        *ndim = (uint32_t)n;
    }
    return 1;
}

thinker_status thk_reshape_prepare(const thinker_model *m, thk_op *op, thk_needs *n, thinker_message *msg) {
    thk_tensor x, out;
    int64_t dims[THK_MAX_OPERANDS + THINKER_MAX_DIMS];
    uint32_t ndim = 0, d;
    (void)n;
    if (op->n_out != 1 || !thk_op_input(m, op, 0, &x)) THK_BAD("expects 1 output"); /* inputs: rules */
    thk_op_output(m, op, 0, &out);
    if (out.count != x.count || out.dtype != x.dtype) THK_BAD("recorded output shape differs from the computed one");
    if (!reshape_dims(m, op, &x, dims, &ndim)) THK_BAD("bad shape, axes or axis operand");
    if (ndim != out.ndim) THK_BAD("recorded output shape differs from the computed one");
    for (d = 0; d < ndim; d++)
        if (dims[d] != (int64_t)out.dims[d]) THK_BAD("recorded output shape differs from the computed one");
    return THINKER_OK;
}

thinker_status thk_reshape_run(thk_run_ctx *ctx) {
    thk_tensor x, out;
    thk_op_input(ctx->model, ctx->op, 0, &x);
    thk_op_output(ctx->model, ctx->op, 0, &out);
    if (out.data != x.data) memcpy(out.data, x.data, x.nbytes); /* else an alias; never a partial overlap (the arena rule) */
    return THINKER_OK;
}

/* ---- Transpose ------------------------------------------------------------------------------- */

thinker_status thk_transpose_prepare(const thinker_model *m, thk_op *op, thk_needs *n, thinker_message *msg) {
    thk_move_params *p = &op->p.move;
    thk_tensor x, out;
    int64_t perm[THINKER_MAX_DIMS];
    uint32_t seen = 0, d;
    int k;
    (void)n;
    if (!thk_op_input(m, op, 0, &x) || op->n_out != 1) THK_BAD("expects 1 output");
    thk_op_output(m, op, 0, &out);
    if (!elem_size_ok(&x) || out.dtype != x.dtype || out.ndim != x.ndim) THK_BAD("output must match the input");
    k = thk_attr_ints(op, "perm", perm, THINKER_MAX_DIMS);
    if (k < 0) {
        if (thk_attr_has(op, "perm")) THK_BAD("bad perm"); /* more values than dims */
        for (d = 0; d < x.ndim; d++) perm[d] = x.ndim - 1 - d;
        k = (int)x.ndim;
    }
    if ((uint32_t)k != x.ndim) THK_BAD("bad perm");
    for (d = 0; d < x.ndim; d++) {
        if (perm[d] < 0 || perm[d] >= (int64_t)x.ndim || (seen >> perm[d]) & 1u)
            THK_BAD("bad perm");
        seen |= 1u << perm[d];
        p->perm[d] = (uint8_t)perm[d];
        if (out.dims[d] != x.dims[perm[d]]) THK_BAD("recorded output shape differs from the computed one");
    }
    return THINKER_OK;
}

thinker_status thk_transpose_run(thk_run_ctx *ctx) {
    const thk_move_params *p = &ctx->op->p.move;
    thk_tensor x, out;
    uint32_t st[THINKER_MAX_DIMS], ost[THINKER_MAX_DIMS], idx[THINKER_MAX_DIMS] = {0};
    uint32_t size, i, d, at = 0;
    thk_op_input(ctx->model, ctx->op, 0, &x);
    thk_op_output(ctx->model, ctx->op, 0, &out);
    size = thk_dtype_size(x.dtype);
    strides_of(&x, st);
    for (d = 0; d < out.ndim; d++) ost[d] = st[p->perm[d]]; /* input stride of each output axis */
    for (i = 0; i < out.count; i++) {
        copy_elem(out.data + (size_t)i * size, x.data + (size_t)at * size, size);
        for (d = out.ndim; d-- > 0;) {
            at += ost[d];
            if (++idx[d] < out.dims[d]) break;
            at -= ost[d] * out.dims[d];
            idx[d] = 0;
        }
    }
    return THINKER_OK;
}

/* ---- Slice ----------------------------------------------------------------------------------- */

/* Python's slice(start, stop, step).indices(dim) and the resulting length */
static int64_t slice_axis(int64_t start, int64_t stop, int64_t step, int64_t dim, int64_t *first) {
    int64_t lo = step < 0 ? -1 : 0, hi = step < 0 ? dim - 1 : dim, n;
    if (start < 0) { start += dim; if (start < lo) start = lo; }
    else if (start > hi) start = hi;
    if (stop < 0) { stop += dim; if (stop < lo) stop = lo; }
    else if (stop > hi) stop = hi;
    *first = start;
    /* |step| <= dim + 1 (prepare): the numerators stay below 2**32 */
    if (step > 0) n = stop > start ? (uint32_t)(stop - start + step - 1) / (uint32_t)step : 0;
    else n = start > stop ? (uint32_t)(start - stop - step - 1) / (uint32_t)-step : 0;
    return n;
}

thinker_status thk_slice_prepare(const thinker_model *m, thk_op *op, thk_needs *n, thinker_message *msg) {
    thk_move_params *p = &op->p.move;
    thk_tensor x, out;
    int64_t starts[THK_MAX_OPERANDS], ends[THK_MAX_OPERANDS], axes[THK_MAX_OPERANDS], steps[THK_MAX_OPERANDS];
    int ns, ne, na, nt, k;
    uint32_t d, len[THINKER_MAX_DIMS];
    (void)n;
    if (!thk_op_input(m, op, 0, &x) || op->n_out != 1) THK_BAD("expects 1 output");
    thk_op_output(m, op, 0, &out);
    if (!elem_size_ok(&x) || out.dtype != x.dtype || out.ndim != x.ndim) THK_BAD("output must match the input");
    ns = operand_ints(m, op, 1, "starts", starts, THK_MAX_OPERANDS);
    ne = operand_ints(m, op, 2, "ends", ends, THK_MAX_OPERANDS);
    na = operand_ints(m, op, 3, "axes", axes, THK_MAX_OPERANDS);
    nt = operand_ints(m, op, 4, "steps", steps, THK_MAX_OPERANDS);
    if (ns < 0 || ne < 0 || ns != ne) THK_BAD("starts and ends must be constant, equal length");
    if (na == -2 || nt == -2) THK_BAD("operands must be constant integer tensors");
    if (na <= 0) { for (k = 0; k < ns; k++) axes[k] = k; na = ns; }
    if (nt <= 0) { for (k = 0; k < ns; k++) steps[k] = 1; nt = ns; }
    if (na != ns || nt != ns) THK_BAD("operands differ in length");
    for (d = 0; d < x.ndim; d++) {
        p->start[d] = 0;
        p->step[d] = 1;
        len[d] = x.dims[d];
    }
    for (k = 0; k < ns; k++) {
        uint32_t a;
        int64_t first;
        if (!norm_axis(axes[k], x.ndim, &a)) THK_BAD("axis out of range");
        if (steps[k] == 0) THK_BAD("slice step must not be 0");
        /* a step beyond the axis takes one element either way: bounded, nothing overflows */
        if (steps[k] > (int64_t)x.dims[a] + 1) steps[k] = (int64_t)x.dims[a] + 1;
        if (steps[k] < -(int64_t)x.dims[a] - 1) steps[k] = -(int64_t)x.dims[a] - 1;
        len[a] = (uint32_t)slice_axis(starts[k], ends[k], steps[k], x.dims[a], &first);
        p->start[a] = first;
        p->step[a] = steps[k];
    }
    for (d = 0; d < x.ndim; d++)
        if (out.dims[d] != len[d]) THK_BAD("recorded output shape differs from the computed one");
    return THINKER_OK;
}

thinker_status thk_slice_run(thk_run_ctx *ctx) {
    const thk_move_params *p = &ctx->op->p.move;
    thk_tensor x, out;
    uint32_t st[THINKER_MAX_DIMS], idx[THINKER_MAX_DIMS] = {0}, size, i, d;
    int64_t at = 0;
    thk_op_input(ctx->model, ctx->op, 0, &x);
    thk_op_output(ctx->model, ctx->op, 0, &out);
    if (out.count == 0) return THINKER_OK;
    size = thk_dtype_size(x.dtype);
    strides_of(&x, st);
    for (d = 0; d < x.ndim; d++) at += p->start[d] * st[d];
    for (i = 0; i < out.count; i++) {
        copy_elem(out.data + (size_t)i * size, x.data + (size_t)at * size, size);
        for (d = out.ndim; d-- > 0;) {
            at += p->step[d] * st[d];
            if (++idx[d] < out.dims[d]) break;
            at -= p->step[d] * st[d] * out.dims[d];
            idx[d] = 0;
        }
    }
    return THINKER_OK;
}

/* ---- Split ----------------------------------------------------------------------------------- */

thinker_status thk_split_prepare(const thinker_model *m, thk_op *op, thk_needs *n, thinker_message *msg) {
    thk_move_params *p = &op->p.move;
    thk_tensor x, out;
    int64_t sizes[THK_MAX_OPERANDS], axis = 0, total = 0;
    uint32_t ax, k, d;
    int count;
    (void)n;
    if (!thk_op_input(m, op, 0, &x) || op->n_out < 1) THK_BAD("expects 1-2 inputs");
    if (!elem_size_ok(&x)) THK_BAD("unsupported dtype");
    thk_attr_int(op, "axis", &axis);
    if (!norm_axis(axis, x.ndim, &ax)) THK_BAD("axis out of range");
    count = operand_ints(m, op, 1, "split", sizes, THK_MAX_OPERANDS);
    if (count == -2) THK_BAD("operands must be constant integer tensors");
    if (count == -1) { /* equal parts, the last one smaller */
        int64_t chunk = (uint32_t)((int64_t)x.dims[ax] + op->n_out - 1) / op->n_out;
        if (op->n_out > THK_MAX_OPERANDS) THK_BAD("too many outputs");
        for (k = 0; k < op->n_out; k++) {
            int64_t rest = (int64_t)x.dims[ax] - (int64_t)k * chunk;
            sizes[k] = rest < chunk ? rest : chunk;
        }
        count = op->n_out;
    }
    if ((uint32_t)count != op->n_out) THK_BAD("split sizes do not match the outputs");
    for (k = 0; k < op->n_out; k++) {
        if (sizes[k] < 0) THK_BAD("negative split size");
        total += sizes[k];
        thk_op_output(m, op, k, &out);
        if (out.dtype != x.dtype || out.ndim != x.ndim) THK_BAD("output must match the input");
        for (d = 0; d < x.ndim; d++)
            if (out.dims[d] != (d == ax ? (uint32_t)sizes[k] : x.dims[d]))
                THK_BAD("recorded output shape differs from the computed one");
    }
    if (total != (int64_t)x.dims[ax]) THK_BAD("split sizes do not match the outputs");
    p->axis = (int32_t)ax;
    return THINKER_OK;
}

thinker_status thk_split_run(thk_run_ctx *ctx) {
    const thk_op *op = ctx->op;
    thk_tensor x, out;
    uint32_t outer = 1, inner, d, k, b;
    size_t at = 0;
    thk_op_input(ctx->model, op, 0, &x);
    inner = thk_dtype_size(x.dtype);
    for (d = 0; d < (uint32_t)op->p.move.axis; d++) outer *= x.dims[d];
    for (d = (uint32_t)op->p.move.axis + 1; d < x.ndim; d++) inner *= x.dims[d];
    for (b = 0; b < outer; b++)
        for (k = 0; k < op->n_out; k++) {
            size_t chunk;
            thk_op_output(ctx->model, op, k, &out);
            chunk = (size_t)out.dims[op->p.move.axis] * inner;
            memcpy(out.data + b * chunk, x.data + at, chunk);
            at += chunk;
        }
    return THINKER_OK;
}

/* ---- Concat (inputs already share one exponent; iqCat rescales) ------------------------------ */

thinker_status thk_concat_check(const thinker_model *m, const thk_op *op, int64_t axis, int same_dtype,
                                uint32_t *axis_out, thinker_message *msg);

thinker_status thk_concat_prepare(const thinker_model *m, thk_op *op, thk_needs *n, thinker_message *msg) {
    thk_tensor t, out;
    int64_t axis = 0;
    uint32_t ax, i;
    int32_t q = 0;
    int have_q = 0;
    thinker_status s;
    (void)n;
    thk_attr_int(op, "axis", &axis);
    s = thk_concat_check(m, op, axis, 1, &ax, msg);
    if (s != THINKER_OK) return s;
    for (i = 0; i < op->n_in; i++) {
        thk_op_input(m, op, i, &t);
        if (!elem_size_ok(&t)) THK_BAD("unsupported dtype");
        if (t.flags & THK_FLAG_EXPONENT) {
            if (have_q && t.exponent != q) THK_BAD("inputs have different exponents");
            q = t.exponent;
            have_q = 1;
        }
    }
    thk_op_output(m, op, 0, &out);
    if (out.dtype != t.dtype) THK_BAD("output must match the input");
    op->p.move.axis = (int32_t)ax;
    return THINKER_OK;
}

thinker_status thk_concat_run(thk_run_ctx *ctx) {
    const thk_op *op = ctx->op;
    thk_tensor t, out;
    uint32_t outer = 1, inner, d, i, b;
    size_t at = 0;
    thk_op_output(ctx->model, op, 0, &out);
    inner = thk_dtype_size(out.dtype);
    for (d = 0; d < (uint32_t)op->p.move.axis; d++) outer *= out.dims[d];
    for (d = (uint32_t)op->p.move.axis + 1; d < out.ndim; d++) inner *= out.dims[d];
    for (b = 0; b < outer; b++)
        for (i = 0; i < op->n_in; i++) {
            size_t chunk;
            thk_op_input(ctx->model, op, i, &t);
            chunk = (size_t)t.dims[op->p.move.axis] * inner;
            memcpy(out.data + at, t.data + b * chunk, chunk);
            at += chunk;
        }
    return THINKER_OK;
}

/* ---- Pad / iqPad ----------------------------------------------------------------------------- */

thinker_status thk_pad_prepare(const thinker_model *m, thk_op *op, thk_needs *n, thinker_message *msg) {
    thk_move_params *p = &op->p.move;
    thk_tensor x, out, v;
    int64_t pads[2 * THINKER_MAX_DIMS + 2];
    const char *mode = "constant";
    int64_t ivalue;
    int count, half;
    uint32_t first, d, bits;
    (void)n;
    if (!thk_op_input(m, op, 0, &x) || op->n_out != 1) THK_BAD("expects 1 output");
    thk_op_output(m, op, 0, &out);
    if (!elem_size_ok(&x) || out.dtype != x.dtype || out.ndim != x.ndim) THK_BAD("output must match the input");
    count = operand_ints(m, op, 1, "pads", pads, 2 * THINKER_MAX_DIMS + 2);
    if (count < 0 || count % 2 || count > 2 * (int)x.ndim) THK_BAD("pads must have 2 values per axis");
    if (thk_op_input(m, op, 3, &v)) THK_BAD("Pad axes input is not supported");
    half = count / 2;
    first = x.ndim - (uint32_t)half; /* a shorter pads list applies to the trailing axes */
    thk_attr_string(op, m, "mode", &mode); /* a string when present (attribute rules) */
    if (thk_streq(mode, "constant")) p->mode = 0;
    else if (thk_streq(mode, "reflect")) p->mode = 1;
    else if (thk_streq(mode, "edge") || thk_streq(mode, "replicate")) p->mode = 2;
    else THK_BAD("unknown pad mode");
    for (d = 0; d < x.ndim; d++) {
        int64_t b = 0, e = 0;
        if (d >= first) {
            b = pads[d - first];
            e = pads[d - first + half];
        }
        /* b, e in 0..2**31-1: thk_pad_rules */
        if (d == 0 && (b || e)) THK_BAD("padding the batch axis");
        if (out.dims[d] != x.dims[d] + b + e) THK_BAD("recorded output shape differs from the computed one");
        if (p->mode && x.dims[d] == 0 && (b || e)) THK_BAD("empty axis to reflect or extend");
        p->before[d] = (uint32_t)b;
    }
    /* numpy's dtype.type(value): an integer as it is (a float truncates toward zero); float32
     * tensors take the value's float32 (an integer through its float64) */
    count = thk_const_number(m, op, 2, "value", &ivalue, &bits); /* >= 0: thk_pad_rules */
    p->fvalue = p->ivalue = 0;
    if (count == 2) {
        p->fvalue = bits;
        p->ivalue = thk_f32_bits_to_int(bits);
    } else if (count == 1) {
        int32_t e;
        int64_t mm = thk_double_of(ivalue, &e);
        p->fvalue = thk_scaled_f32_bits(mm, -e);
        p->ivalue = ivalue;
    }
    return THINKER_OK;
}

/* source index along an axis of length n for padded position i (i - before) */
static int64_t pad_source(int64_t i, int64_t n, int mode) {
    if (i >= 0 && i < n) return i;
    if (mode == 0) return -1; /* constant */
    if (mode == 2) return i < 0 ? 0 : n - 1; /* edge */
    if (n == 1) return 0;
    { /* reflect: periodic with period 2(n-1) < 2**32, |i| < 2**31 */
        uint32_t period = 2u * (uint32_t)(n - 1);
        i = i >= 0 ? (uint32_t)i % period : period - 1u - (uint32_t)(-i - 1) % period;
        return i >= n ? period - i : i;
    }
}

thinker_status thk_pad_run(thk_run_ctx *ctx) {
    const thk_move_params *p = &ctx->op->p.move;
    thk_tensor x, out;
    uint32_t st[THINKER_MAX_DIMS], idx[THINKER_MAX_DIMS] = {0}, size, i, d;
    thk_op_input(ctx->model, ctx->op, 0, &x);
    thk_op_output(ctx->model, ctx->op, 0, &out);
    size = thk_dtype_size(x.dtype);
    strides_of(&x, st);
    for (i = 0; i < out.count; i++) {
        int64_t at = 0;
        for (d = 0; d < out.ndim; d++) {
            int64_t s = pad_source((int64_t)idx[d] - p->before[d], x.dims[d], p->mode);
            if (s < 0) { at = -1; break; }
            at += s * st[d];
        }
        if (at >= 0) copy_elem(out.data + (size_t)i * size, x.data + (size_t)at * size, size);
        else if (out.dtype == THINKER_FLOAT32) ((uint32_t *)(void *)out.data)[i] = p->fvalue;
        else thk_store_int(out.data, out.dtype, i, p->ivalue);
        for (d = out.ndim; d-- > 0;) {
            if (++idx[d] < out.dims[d]) break;
            idx[d] = 0;
        }
    }
    return THINKER_OK;
}

/* ---- Gather ---------------------------------------------------------------------------------- */

thinker_status thk_gather_prepare(const thinker_model *m, thk_op *op, thk_needs *n, thinker_message *msg) {
    thk_tensor data, idx, out;
    int64_t axis = 0;
    uint32_t ax, d, k = 0;
    (void)n;
    if (op->n_out != 1 || !thk_op_input(m, op, 0, &data) || !thk_op_input(m, op, 1, &idx))
        THK_BAD("expects 1 output");
    thk_op_output(m, op, 0, &out);
    if (!elem_size_ok(&data) || out.dtype != data.dtype) THK_BAD("output must match the input");
    if (!thk_is_int(idx.dtype)) THK_BAD("indices must be integers");
    thk_attr_int(op, "axis", &axis);
    if (!norm_axis(axis, data.ndim, &ax)) THK_BAD("axis out of range");
    if (out.ndim != data.ndim - 1 + idx.ndim) THK_BAD("recorded output shape differs from the computed one");
    for (d = 0; d < ax; d++, k++)
        if (out.dims[k] != data.dims[d]) THK_BAD("recorded output shape differs from the computed one");
    for (d = 0; d < idx.ndim; d++, k++)
        if (out.dims[k] != idx.dims[d]) THK_BAD("recorded output shape differs from the computed one");
    for (d = ax + 1; d < data.ndim; d++, k++)
        if (out.dims[k] != data.dims[d]) THK_BAD("recorded output shape differs from the computed one");
    op->p.move.axis = (int32_t)ax;
    return THINKER_OK;
}

thinker_status thk_gather_run(thk_run_ctx *ctx) {
    const thk_op *op = ctx->op;
    thk_tensor data, idx, out;
    uint32_t outer = 1, inner, size, d, b, k, ax = (uint32_t)op->p.move.axis;
    thk_op_input(ctx->model, op, 0, &data);
    thk_op_input(ctx->model, op, 1, &idx);
    thk_op_output(ctx->model, op, 0, &out);
    inner = thk_dtype_size(data.dtype);
    size = data.dims[ax];
    for (d = 0; d < ax; d++) outer *= data.dims[d];
    for (d = ax + 1; d < data.ndim; d++) inner *= data.dims[d];
    for (k = 0; k < idx.count; k++) { /* every index is checked before anything is written */
        int64_t v = thk_load_int(idx.data, idx.dtype, k);
        if (v < -(int64_t)size || v >= (int64_t)size) {
            thk_op_error(ctx->message, op, THINKER_ERR_RUNTIME, "index out of range");
            return THINKER_ERR_RUNTIME;
        }
    }
    for (b = 0; b < outer; b++)
        for (k = 0; k < idx.count; k++) {
            int64_t v = thk_load_int(idx.data, idx.dtype, k);
            if (v < 0) v += size;
            memcpy(out.data + ((size_t)b * idx.count + k) * inner,
                   data.data + ((size_t)b * size + (size_t)v) * inner, inner);
        }
    return THINKER_OK;
}

/* ---- Resize (nearest, integer factors: thinker/ops/resize.py) -------------------------------- */

/* the coordinate modes for which nearest sampling at an integer factor s copies floor(i / s) */
static int exact_nearest(const char *coord, const char *nearest) {
    if (thk_streq(coord, "asymmetric")) return thk_streq(nearest, "floor");
    return (thk_streq(coord, "half_pixel") || thk_streq(coord, "pytorch_half_pixel")) &&
           (thk_streq(nearest, "round_prefer_floor") || thk_streq(nearest, "round_prefer_ceil"));
}

/* a non-empty constant input (resize._constant), else 0 */
static int resize_operand(const thinker_model *m, const thk_op *op, uint32_t slot, thk_tensor *t) {
    return thk_op_input(m, op, slot, t) && t->init && t->count;
}

thinker_status thk_resize_prepare(const thinker_model *m, thk_op *op, thk_needs *n, thinker_message *msg) {
    thk_tensor x, out, t;
    const char *mode = "nearest", *coord = "half_pixel", *nearest = "round_prefer_floor";
    int sizes;
    uint32_t d, bits;
    (void)n;
    if (op->n_out != 1 || !thk_op_input(m, op, 0, &x))
        THK_BAD("expects 1 output");
    thk_op_output(m, op, 0, &out);
    if (!elem_size_ok(&x) || out.dtype != x.dtype || out.ndim != x.ndim) THK_BAD("output must match the input");
    /* strings when present (attribute rules); absent: the defaults above */
    thk_attr_string(op, m, "mode", &mode);
    thk_attr_string(op, m, "coordinate_transformation_mode", &coord);
    thk_attr_string(op, m, "nearest_mode", &nearest);
    if (!thk_streq(mode, "nearest") || !exact_nearest(coord, nearest)) THK_BAD("only nearest Resize by integer factors");
    /* X, scales (opset 10) or X, roi, scales, sizes; sizes win when both are given */
    sizes = op->n_in > 2 && resize_operand(m, op, 3, &t);
    if (!sizes && !resize_operand(m, op, op->n_in > 2 ? 2 : 1, &t)) THK_BAD("scales/sizes: one value per axis");
    if (t.count != x.ndim || t.ndim != 1) THK_BAD("scales/sizes: one value per axis");
    for (d = 0; d < x.ndim; d++) {
        int64_t v = thk_load_int(t.init, t.dtype, d); /* a float truncates */
        uint32_t f = v < 1 || v > 0xFFFFFFFF ? 0 : (uint32_t)v, e;
        if (sizes) {
            f = x.dims[d] && f % x.dims[d] == 0 ? f / x.dims[d] : 0;
        } else if (f && t.dtype == THINKER_FLOAT32) { /* 1 <= v < 2**32: exponent e >= 127 */
            memcpy(&bits, t.init + 4u * d, 4);
            e = (bits >> 23) & 0xFFu;
            if (e < 150u && (bits & ((1u << (150u - e)) - 1u))) f = 0; /* fraction bits set */
        }
        if (f < 1 || (d == 0 && f != 1))
            THK_BAD("scales: integers >= 1, 1 on the batch axis");
        if ((uint64_t)out.dims[d] != (uint64_t)x.dims[d] * f)
            THK_BAD("recorded output shape differs from the computed one");
    }
    return THINKER_OK;
}

/* Output row r (all axes but the last) copies input row floor(i / s) per axis, each element
 * repeated s times; a row equal to the previous one is copied from it. */
thinker_status thk_resize_run(thk_run_ctx *ctx) {
    thk_tensor x, out;
    uint32_t size, last, w, fw, rows, r, d, j, k, src, prev = 0xFFFFFFFFu;
    size_t row_bytes;
    thk_op_input(ctx->model, ctx->op, 0, &x);
    thk_op_output(ctx->model, ctx->op, 0, &out);
    if (!out.count) return THINKER_OK;
    size = thk_dtype_size(x.dtype);
    last = x.ndim - 1u;
    w = x.dims[last];
    fw = out.dims[last] / w;
    row_bytes = (size_t)out.dims[last] * size;
    rows = out.count / out.dims[last];
    for (r = 0; r < rows; r++) {
        uint8_t *dst = out.data + r * row_bytes;
        uint32_t rest = r, mult = 1;
        for (src = 0, d = last; d-- > 0; mult *= x.dims[d]) {
            src += rest % out.dims[d] / (out.dims[d] / x.dims[d]) * mult;
            rest /= out.dims[d];
        }
        if (src == prev) {
            memcpy(dst, dst - row_bytes, row_bytes);
        } else {
            const uint8_t *in = x.data + (size_t)src * w * size;
            for (j = 0; j < w; j++, in += size)
                for (k = 0; k < fw; k++, dst += size) copy_elem(dst, in, size);
        }
        prev = src;
    }
    return THINKER_OK;
}
