/* The model rules of thinker/resource/rules.py, rule for rule (design §9: one validator, three
 * consumers; docs/format.md "Model rules"):
 *
 *   thk_check_attrs    each op's attribute types and counts, no key given twice
 *   thk_check_records  names, flags, int4 activations, graph I/O, single assignment, and the
 *                      memory plan (no two live tensors share arena bytes but the planner's
 *                      aliases: reshape-like ops over their input, in-place element-wise ops)
 *   thk_check_op_rules integer weights and operands, finite Clip bounds, geometry ranges, Pad
 *                      sizes and values, AvgPool2dInt's exponent range
 *
 * Everything here runs before any op's prepare step, on records thk_parse has bounded. No
 * memory is needed beyond the stack: lifetimes are found by walking the op records. */
#include "ops/ops.h"

#define KIND_INT (1u << THK_ATTR_INT)
#define KIND_FLOAT (1u << THK_ATTR_FLOAT)
#define KIND_INTS (1u << THK_ATTR_INTS)
#define KIND_NUMBER (KIND_INT | KIND_FLOAT)
#define KIND_STRING (1u << THK_ATTR_STRING)

#define GEOMETRY_LIMIT 65535
#define PAD_LIMIT 0x7FFFFFFF
#define WINDOW_SHIFT_LIMIT 61
#define FLOAT_OUTPUT_Q_MIN (-100)
#define FLOAT_OUTPUT_Q_MAX 149

/* rules.ATTR_TYPES: the keys of each kind (and exact count); tests/fuzz checks this copy */
static const char *const k_int_attrs[] = {"o_bits", "data_bits", "parameter_bits", "h_bits",
    "group", "ceil_mode", "count_include_pad", "divisor_override", "storage_order", "transA",
    "transB", "act_type", "allowzero", "keepdims", "unbiased", "divisor", "num_outputs", "axis",
    "dim", "exclude_outside", "hidden_size", "batch_first", "go_forward", "has_hidden", "has_cell",
    "num_layers", "input_size", "w_bits"};
static const char *const k_ints_attrs[] = {"kernel_shape", "strides", "pads", "dilations",
    "output_padding", "perm", "starts", "ends", "steps", "split", "shape", "axes", "dims"};
static const char *const k_pair_attrs[] = {"fused_clip", "eps_q"};
static const char *const k_number_attrs[] = {"eps", "min", "max", "value", "cubic_coeff_a",
    "extrapolation_value"};
static const char *const k_string_attrs[] = {"mode", "auto_pad", "platform", "platform_quant",
    "coordinate_transformation_mode", "nearest_mode", "quant_mode"};

typedef struct {
    const char *const *keys;
    uint8_t n, kinds, count; /* count: exact number of values, 0: any */
} attr_group;

#define GROUP(keys, kinds, count) {keys, sizeof keys / sizeof keys[0], kinds, count},
static const attr_group k_attr_groups[] = {
    GROUP(k_int_attrs, KIND_INT, 0)
    GROUP(k_ints_attrs, KIND_INTS, 0)
    GROUP(k_pair_attrs, KIND_INTS, 2)
    GROUP(k_number_attrs, KIND_NUMBER, 0)
    GROUP(k_string_attrs, KIND_STRING, 0)
};

static int starts_with(const char *s, const char *prefix) {
    while (*prefix)
        if (*s++ != *prefix++) return 0;
    return 1;
}

static int is_reduce(const char *type) { return thk_streq(type, "iqSum") || thk_streq(type, "iqVar"); }

/* rules.attr_type_problem */
static const char *attr_problem(const char *op_type, const char *key, uint32_t kind, uint32_t count) {
    uint32_t i, kinds = 0, exact = 0;
    if (is_reduce(op_type) && (thk_streq(key, "axes") || thk_streq(key, "dims") ||
                               thk_streq(key, "dim") || thk_streq(key, "axis"))) {
        kinds = KIND_INT | KIND_INTS;
    } else if (starts_with(key, "scale")) {
        kinds = KIND_NUMBER;
    } else {
        const attr_group *g;
        for (g = k_attr_groups; !kinds && g < k_attr_groups + sizeof k_attr_groups / sizeof k_attr_groups[0]; g++)
            for (i = 0; i < g->n; i++)
                if (thk_streq(key, g->keys[i])) {
                    kinds = g->kinds;
                    exact = g->count;
                    break;
                }
        if (!kinds) return NULL; /* not an attribute of any op: ignored */
    }
    if (kind > 7 || !((kinds >> kind) & 1u)) return "has the wrong type";
    if (exact && count != exact) return "has the wrong number of values";
    return NULL;
}

/* an int or float attribute holding an exact positive power of two (thk_attr_exponent) */
static int scale_ok(const uint8_t *a) {
    int32_t q;
    return thk_scale_exponent(a[4], thk_rd32(a + 8), &q) == 1; /* a[4]: int or float (attr_problem) */
}

/* "<type> '<name>': attribute '<key>' <why>" */
static thinker_status attr_error(thinker_message *msg, const char *op_type, const char *name, const char *key,
                                 const char *why) {
    char text[sizeof msg->text];
    if (!msg) return THINKER_ERR_MODEL;
    thk_msg(msg, op_type, " '", name);
    memcpy(text, msg->text, sizeof text);
    thk_msg(msg, text, "': attribute '", key);
    memcpy(text, msg->text, sizeof text);
    thk_msg(msg, text, "' ", why);
    return THINKER_ERR_MODEL;
}

thinker_status thk_check_attrs(const thinker_model *m, const char *op_type, const char *name,
                               const uint8_t *attrs, uint32_t n_attrs, thinker_message *msg) {
    const uint8_t *a = attrs, *b;
    uint32_t i, k;
    for (i = 0; i < n_attrs; i++) {
        const char *key = thk_string(m, thk_rd32(a));
        const char *why = attr_problem(op_type, key, a[4], thk_rd16(a + 6));
        if (why) return attr_error(msg, op_type, name, key, why);
        if (starts_with(key, "scale") && !scale_ok(a))
            return attr_error(msg, op_type, name, key, "is not one of the powers of two");
        for (b = attrs, k = 0; k < i; k++) {
            if (thk_streq(thk_string(m, thk_rd32(b)), key)) return attr_error(msg, op_type, name, key, "is given twice");
            b += 8 + 4u * thk_rd16(b + 6);
        }
        a += 8 + 4u * thk_rd16(a + 6);
    }
    return THINKER_OK;
}

/* ---- op records, walked without storage ------------------------------------------------ */

typedef struct {
    const uint8_t *next;
    uint32_t index;
} op_walk;

typedef struct {
    const char *type;
    const uint8_t *ids; /* n_in inputs then n_out outputs */
    uint32_t n_in, n_out;
} op_view;

static void walk_start(const thinker_model *m, op_walk *w) {
    w->next = m->op_records;
    w->index = 0;
}

/* the next op record (validated by check_ops); 0 past the last one */
static int walk_next(const thinker_model *m, op_walk *w, op_view *v) {
    const uint8_t *h = w->next;
    uint32_t n_attrs, k;
    if (w->index >= m->n_ops) return 0;
    v->type = thk_string(m, thk_rd32(h));
    v->n_in = thk_rd16(h + 8);
    v->n_out = thk_rd16(h + 10);
    n_attrs = thk_rd16(h + 12);
    v->ids = h + 16;
    h += 16 + 4u * (v->n_in + v->n_out);
    for (k = 0; k < n_attrs; k++) h += 8 + 4u * thk_rd16(h + 6);
    w->next = h;
    w->index++;
    return 1;
}

static uint32_t view_id(const op_view *v, uint32_t k) { return thk_rd32(v->ids + 4u * k); }

static int is_aliasing(const char *type) {
    return thk_streq(type, "Reshape") || thk_streq(type, "Flatten") || thk_streq(type, "Squeeze") ||
           thk_streq(type, "Unsqueeze");
}

static int is_in_place(const char *type) {
    return thk_streq(type, "Relu") || thk_streq(type, "Clip") || thk_streq(type, "iqAdd") ||
           thk_streq(type, "iqSub") || thk_streq(type, "iqMul") || thk_streq(type, "Requant") ||
           thk_streq(type, "PRelu") || thk_streq(type, "iqSigmoid") || thk_streq(type, "iqTanh");
}

/* rules.lifetimes for one tensor: 0 when it is never born (not a constant, input or output of
 * an op: such a tensor is never read, record_problem ensures). */
static int lifetime(const thinker_model *m, uint32_t id, int64_t *first, int64_t *last, int64_t *producer) {
    const uint8_t *r = m->tensor_records + (size_t)id * THK_TENSOR_RECORD;
    uint32_t flags = r[7], k;
    op_walk w;
    op_view v;
    int born = 0;
    *producer = -1;
    if (flags & (THK_FLAG_CONSTANT | THK_FLAG_INPUT)) {
        *first = -1;
        *last = (flags & THK_FLAG_CONSTANT) ? (int64_t)m->n_ops : -1;
        born = 1;
    }
    walk_start(m, &w);
    while (walk_next(m, &w, &v)) {
        int64_t i = (int64_t)w.index - 1;
        for (k = 0; k < v.n_out; k++)
            if (view_id(&v, v.n_in + k) == id) {
                *first = *last = *producer = i;
                born = 1;
            }
        if (born)
            for (k = 0; k < v.n_in; k++)
                if (view_id(&v, k) == id && i > *last) *last = i;
    }
    if (born && (flags & THK_FLAG_OUTPUT)) *last = m->n_ops;
    return born;
}

/* op `index` */
static void op_at(const thinker_model *m, uint32_t index, op_view *v) {
    op_walk w;
    memset(v, 0, sizeof *v);
    walk_start(m, &w);
    while (walk_next(m, &w, v) && w.index <= index) {
    }
}

/* rules._alias_root: the tensor whose bytes t holds through a chain of reshape-like ops (each
 * link the same memory, offset and size), or t itself */
static uint32_t alias_root(const thinker_model *m, uint32_t t) {
    thk_tensor tt, ts;
    uint32_t steps = 0;
    while (steps <= m->n_ops) {
        int64_t first, last, producer;
        op_view v;
        uint32_t src;
        if (!lifetime(m, t, &first, &last, &producer) || producer < 0) break;
        op_at(m, (uint32_t)producer, &v);
        if (!is_aliasing(v.type) || v.n_in == 0 || view_id(&v, v.n_in) != t) break;
        src = view_id(&v, 0);
        if (src == THK_NO_TENSOR) break;
        thk_tensor_get(m, src, &ts);
        thk_tensor_get(m, t, &tt);
        if (ts.memory != tt.memory || ts.offset != tt.offset || ts.nbytes != tt.nbytes) break;
        t = src;
        steps++;
    }
    return t;
}

/* rules._pair_problem: whether arena tensors a and b, whose bytes overlap, conflict */
static int pair_conflict(const thinker_model *m, uint32_t a, uint32_t b) {
    int64_t fa, la, pa, fb, lb, pb;
    thk_tensor ta, tb, tc;
    op_view v;
    uint32_t k, root, c, d;
    if (!lifetime(m, a, &fa, &la, &pa) || !lifetime(m, b, &fb, &lb, &pb)) return 0;
    if (fa > fb || (fa == fb && a > b)) { /* a is born first */
        uint32_t t = a;
        int64_t f = fa, l = la;
        a = b; b = t;
        fa = fb; la = lb; fb = f; lb = l;
    }
    (void)lb;
    if (la < fb) return 0;
    thk_tensor_get(m, a, &ta);
    thk_tensor_get(m, b, &tb);
    if (fb < 0 || ta.offset != tb.offset || ta.nbytes != tb.nbytes) return 1;
    root = alias_root(m, a);
    if (alias_root(m, b) == root) return 0; /* views of the same bytes */
    /* in place: b is the one output of an element-wise op over an input holding a's bytes,
     * and a dies at that op */
    op_at(m, (uint32_t)fb, &v);
    if (!is_in_place(v.type) || la != fb || v.n_out != 1 || view_id(&v, v.n_in) != b) return 1;
    for (k = 0; k < v.n_in; k++) {
        c = view_id(&v, k);
        if (c == THK_NO_TENSOR || alias_root(m, c) != root) continue;
        thk_tensor_get(m, c, &tc);
        if (tc.ndim != tb.ndim) continue;
        for (d = 0; d < tb.ndim && tc.dims[d] == tb.dims[d]; d++) {
        }
        if (d == tb.ndim) return 0;
    }
    return 1;
}

static thinker_status record_error(thinker_message *msg, const char *what, const char *name) {
    thk_msg(msg, what, name && *name ? ": " : "", name ? name : "");
    return THINKER_ERR_FORMAT;
}

static int listed(const thinker_model *m, uint32_t id, uint32_t from, uint32_t count) {
    uint32_t i;
    for (i = from; i < from + count; i++)
        if (thk_rd32(m->io_ids + 4 * i) == id) return 1;
    return 0;
}

thinker_status thk_check_records(const thinker_model *m, thinker_message *msg) {
    uint32_t i, j, k, n = m->n_tensors;
    op_walk w, w2;
    op_view v, v2;
    /* names: non-empty, unique (tensors, then ops) */
    for (i = 0; i < n; i++) {
        thk_tensor t, u;
        thk_tensor_get(m, i, &t);
        if (!*t.name) return record_error(msg, "a tensor has an empty name", "");
        for (j = i + 1; j < n; j++) {
            thk_tensor_get(m, j, &u);
            if (thk_streq(t.name, u.name)) return record_error(msg, "two tensors have the name", t.name);
        }
    }
    walk_start(m, &w);
    while (walk_next(m, &w, &v)) {
        const char *name = thk_string(m, thk_rd32(v.ids - 12)); /* the record's name field */
        if (!*name) return record_error(msg, "an op has an empty name", "");
        w2 = w;
        while (walk_next(m, &w2, &v2))
            if (thk_streq(name, thk_string(m, thk_rd32(v2.ids - 12))))
                return record_error(msg, "two ops have the name", name);
    }
    /* graph inputs and outputs: each listed once */
    for (i = 0; i < m->n_inputs + m->n_outputs; i++) {
        uint32_t id = thk_rd32(m->io_ids + 4 * i), in_outputs = i >= m->n_inputs;
        for (j = in_outputs ? m->n_inputs : 0; j < i; j++)
            if (thk_rd32(m->io_ids + 4 * j) == id)
                return record_error(msg, "a tensor is listed twice in the io section", "");
    }
    /* flags */
    for (i = 0; i < n; i++) {
        thk_tensor t;
        thk_tensor_get(m, i, &t);
        if (t.flags & ~0xFu) return record_error(msg, "unknown flag bits on", t.name);
        if (!(t.flags & THK_FLAG_CONSTANT) != (t.data_offset == THK_NO_TENSOR))
            return record_error(msg, "constant flag and data offset disagree on", t.name);
        if (!(t.flags & THK_FLAG_INPUT) != !listed(m, i, 0, m->n_inputs) ||
            !(t.flags & THK_FLAG_OUTPUT) != !listed(m, i, m->n_inputs, m->n_outputs))
            return record_error(msg, "io flags disagree on", t.name);
        if (t.dtype == THINKER_INT4 && !(t.flags & THK_FLAG_CONSTANT))
            return record_error(msg, "int4 is only for constants, not", t.name);
        if ((t.flags & THK_FLAG_INPUT) && (t.flags & THK_FLAG_CONSTANT))
            return record_error(msg, "a constant is a graph input:", t.name);
    }
    /* single assignment: inputs exist when an op runs, every tensor is written once */
    walk_start(m, &w);
    while (walk_next(m, &w, &v)) {
        for (k = 0; k < v.n_in; k++) {
            uint32_t id = view_id(&v, k);
            thk_tensor t;
            int ok;
            if (id == THK_NO_TENSOR) continue;
            thk_tensor_get(m, id, &t);
            ok = (t.flags & (THK_FLAG_CONSTANT | THK_FLAG_INPUT)) != 0;
            walk_start(m, &w2);
            while (!ok && walk_next(m, &w2, &v2) && w2.index < w.index)
                for (j = 0; j < v2.n_out; j++) ok |= view_id(&v2, v2.n_in + j) == id;
            if (!ok) return record_error(msg, "a tensor is read before written:", t.name);
        }
        for (k = 0; k < v.n_out; k++) {
            uint32_t id = view_id(&v, v.n_in + k);
            thk_tensor t;
            thk_tensor_get(m, id, &t);
            if (t.flags & (THK_FLAG_CONSTANT | THK_FLAG_INPUT))
                return record_error(msg, "an op writes an input or a constant:", t.name);
            for (j = 0; j < k; j++)
                if (view_id(&v, v.n_in + j) == id) return record_error(msg, "a tensor is written twice:", t.name);
            w2 = w;
            while (walk_next(m, &w2, &v2))
                for (j = 0; j < v2.n_out; j++)
                    if (view_id(&v2, v2.n_in + j) == id) return record_error(msg, "a tensor is written twice:", t.name);
        }
    }
    for (i = 0; i < m->n_outputs; i++) {
        uint32_t id = thk_rd32(m->io_ids + 4 * (m->n_inputs + i));
        int64_t first, last, producer;
        thk_tensor t;
        thk_tensor_get(m, id, &t);
        if (!lifetime(m, id, &first, &last, &producer))
            return record_error(msg, "a graph output is never written:", t.name);
    }
    /* the memory plan */
    for (i = 0; i < n; i++) {
        thk_tensor a;
        thk_tensor_get(m, i, &a);
        if (a.memory == THINKER_MEM_FLASH || !a.nbytes) continue;
        for (j = i + 1; j < n; j++) {
            thk_tensor b;
            thk_tensor_get(m, j, &b);
            if (b.memory != a.memory || !b.nbytes || (uint64_t)b.offset >= (uint64_t)a.offset + a.nbytes ||
                (uint64_t)a.offset >= (uint64_t)b.offset + b.nbytes)
                continue;
            if (pair_conflict(m, i, j)) {
                thk_msg(msg, "tensors share bytes while both are live: ", a.name, "");
                return THINKER_ERR_FORMAT;
            }
        }
    }
    /* a kernel's scratch is live only during its op: no tensor live then may share its bytes */
    for (k = 0; k < m->n_scratch; k++) {
        const uint8_t *r = m->scratch_records + 16u * k;
        uint32_t op = thk_rd32(r), kind = thk_rd32(r + 4), off = thk_rd32(r + 8), sz = thk_rd32(r + 12);
        for (i = 0; i < n; i++) {
            thk_tensor t;
            int64_t first, last, producer;
            thk_tensor_get(m, i, &t);
            if (t.memory != kind || !t.nbytes || (uint64_t)t.offset >= (uint64_t)off + sz ||
                (uint64_t)off >= (uint64_t)t.offset + t.nbytes)
                continue;
            if (lifetime(m, i, &first, &last, &producer) && first <= (int64_t)op && (int64_t)op <= last) {
                thk_msg(msg, "a scratch region overlaps a live tensor: ", t.name, "");
                return THINKER_ERR_FORMAT;
            }
        }
    }
    return THINKER_OK;
}

/* ---- op rules (rules.node_problems) ----------------------------------------------------
 * The generic ones run on the flags of the op's table entry (op_table.c), the op-specific
 * ones (thk_*_rules) are referenced by the entries of the ops compiled in. */

static int f32_finite(uint32_t bits) { return ((bits >> 23) & 0xFFu) != 0xFFu; }

/* every value of an ints attribute within [lo, hi] (an absent attribute passes) */
static int ints_within(const thk_op *op, const char *key, int64_t lo, int64_t hi) {
    uint32_t type, count, i;
    const uint8_t *p = thk_attr_find(op, key, &type, &count);
    if (!p) return 1;
    for (i = 0; i < count; i++) {
        int64_t v = (int32_t)thk_rd32(p + 4 * i);
        if (v < lo || v > hi) return 0;
    }
    return 1;
}

static int const_integer(const thk_tensor *t) {
    return t->init && (thk_is_int(t->dtype) || t->dtype == THINKER_INT4);
}

/* weights and biases: integer constants whose values fit int32 (an int64 tensor is scanned) */
static int int32_values(const thk_tensor *t) {
    uint32_t i;
    if (t->dtype != THINKER_INT64) return 1;
    for (i = 0; i < t->count; i++) {
        int64_t v = thk_load_int(t->init, t->dtype, i);
        if (v < INT32_MIN || v > INT32_MAX) return 0;
    }
    return 1;
}

/* a scale attribute's exponent: 1 found, 0 absent or not a power of two */
static int exponent_of(const thk_op *op, const char *key, int32_t *q) {
    return thk_attr_exponent(op, key, q) == 1;
}

thinker_status thk_clip_rules(const thinker_model *m, const thk_op *op, thinker_message *msg) {
    static const char keys[2][4] = {"min", "max"};
    uint32_t slot, type, count;
    for (slot = 1; slot <= 2; slot++) {
        const uint8_t *p = thk_attr_find(op, keys[slot - 1], &type, &count);
        thk_tensor t;
        if (p && type == THK_ATTR_FLOAT && !f32_finite(thk_rd32(p)))
            THK_BAD("Clip bounds must be finite");
        if (thk_op_input(m, op, slot, &t)) {
            if (!t.init || t.count != 1) THK_BAD("Clip bounds must be single constants");
            if (t.dtype == THINKER_FLOAT32 && !f32_finite(thk_rd32(t.init)))
                THK_BAD("Clip bounds must be finite");
        }
    }
    return THINKER_OK;
}

/* rules._geometry_problems: kernel, strides, dilations in 1..65535, pads (and output_padding)
 * in 0..65535 */
static int geometry_ok(const thk_op *op, uint32_t keys) {
    static const char *const names[5] = {"kernel_shape", "strides", "dilations", "pads", "output_padding"};
    uint32_t i;
    for (i = 0; i < keys; i++)
        if (!ints_within(op, names[i], i < 3 ? 1 : 0, GEOMETRY_LIMIT)) return 0;
    return 1;
}

thinker_status thk_maxpool_rules(const thinker_model *m, const thk_op *op, thinker_message *msg) {
    (void)m;
    if (!geometry_ok(op, 4))
        THK_BAD("pool geometry out of range");
    return THINKER_OK;
}

/* rules._avgpool_problems */
thinker_status thk_avgpool_rules(const thinker_model *m, const thk_op *op, thinker_message *msg) {
    thk_tensor x;
    int32_t qx, qo;
    int64_t override = -1;
    uint32_t type, count, i, bits;
    uint64_t window = 1, bound, gap;
    const uint8_t *p;
    thinker_status s = thk_maxpool_rules(m, op, msg);
    if (s != THINKER_OK) return s;
    if (!thk_op_input(m, op, 0, &x) || !exponent_of(op, "scale_x", &qx)) return THINKER_OK;
    qo = qx;
    if (thk_attr_has(op, "scale_o") && !exponent_of(op, "scale_o", &qo)) return THINKER_OK;
    if (qo == qx || x.ndim < 3) return THINKER_OK;
    p = thk_attr_find(op, "kernel_shape", &type, &count);
    if (p && count) {
        for (i = 0; i < count; i++) window = thk_mul_sat(window, (uint64_t)(int64_t)(int32_t)thk_rd32(p + 4 * i));
    } else {
        for (i = 2; i < x.ndim; i++) window = thk_mul_sat(window, x.dims[i]);
    }
    if (qo > qx) { /* rules._bits_of: magnitude bits of the input dtype */
        bits = x.dtype == THINKER_UINT8 ? 9u : 8u * thk_dtype_size(x.dtype);
        bound = thk_mul_sat(window, (uint64_t)1 << ((bits ? bits : 64u) - 1u));
        gap = (uint64_t)((int64_t)qo - qx);
    } else {
        thk_attr_int(op, "divisor_override", &override);
        bound = override > 0 ? (uint64_t)override : window;
        gap = (uint64_t)((int64_t)qx - qo);
    }
    for (i = 0; bound; i++) bound >>= 1; /* bit_length */
    if ((uint64_t)i + gap > WINDOW_SHIFT_LIMIT)
        THK_BAD("window sum or divisor << |qo - qx| >= 2**61");
    return THINKER_OK;
}

thinker_status thk_conv_rules(const thinker_model *m, const thk_op *op, thinker_message *msg) {
    int64_t group;
    (void)m;
    if (!geometry_ok(op, 5))
        THK_BAD("conv geometry out of range");
    if (thk_attr_int(op, "group", &group) && group < 1) THK_BAD("group must be >= 1");
    return THINKER_OK;
}

/* trunc(value) in [lo, hi] for a float32 value (bits): Python's math.trunc, no float math */
static int f32_trunc_within(uint32_t bits, int64_t lo, int64_t hi) {
    int64_t t;
    if (!f32_finite(bits)) return 0;
    if (((bits >> 23) & 0xFFu) >= 127u + 63u) return bits == 0xDF000000u && lo == INT64_MIN; /* -2**63 */
    t = thk_f32_bits_to_int(bits);
    return t >= lo && t <= hi;
}

thinker_status thk_pad_rules(const thinker_model *m, const thk_op *op, thinker_message *msg) {
    thk_tensor x, t;
    int has_value, is_float;
    uint32_t i, bits = 0;
    int64_t v = 0;
    if (thk_op_input(m, op, 1, &t)) {
        for (i = 0; t.init && i < t.count; i++) {
            v = thk_load_int(t.init, t.dtype, i);
            if (v < 0 || v > PAD_LIMIT) THK_BAD("pads must be in 0..2**31-1");
        }
    } else if (!ints_within(op, "pads", 0, PAD_LIMIT)) {
        THK_BAD("pads must be in 0..2**31-1");
    }
    has_value = thk_const_number(m, op, 2, "value", &v, &bits);
    if (has_value < 0) THK_BAD("constant_value must be one constant");
    is_float = has_value == 2;
    if (has_value && thk_op_input(m, op, 0, &x) && thk_is_int(x.dtype)) {
        int64_t lo, hi;
        uint32_t dt;
        if (x.dtype == THINKER_UINT8) { lo = 0; hi = 255; }
        else if (x.dtype == THINKER_INT64) { lo = INT64_MIN; hi = INT64_MAX - 512; } /* float(v) < 2**63 */
        else thk_bits_range(8 * thk_dtype_size(x.dtype), &lo, &hi, &dt);
        /* trunc(float(value)) in [lo, hi]; float() of an int64 only rounds beyond int32 */
        if (is_float ? !f32_trunc_within(bits, lo, x.dtype == THINKER_INT64 ? INT64_MAX : hi) : (v < lo || v > hi))
            THK_BAD("pad value outside the input's dtype");
    }
    return THINKER_OK;
}

thinker_status thk_check_op_rules(const thinker_model *m, thk_op *op, thinker_message *msg) {
    const thk_op_def *d = op->def;
    thk_tensor t;
    uint32_t slot, last, dt, flags = d->flags;
    int64_t clip[2], bits, lo, hi;
    int32_t qx, qw;
    uint8_t mode;
    /* input counts (Op.min_inputs / max_inputs / optional_inputs): among the first min only
     * the optional slots may be omitted */
    if (op->n_in < d->min_in || (d->max_in && op->n_in > d->max_in)) THK_BAD("wrong number of inputs");
    for (slot = 0; slot < d->min_in; slot++)
        if (thk_op_id(op, 0, slot) == THK_NO_TENSOR && !((d->optional >> slot) & 1u))
            THK_BAD("a required input is omitted");
    /* a float output (no o_bits) of an accumulating op: q_x + q_w in float32's exact range */
    if ((flags & THK_RULE_FLOAT_OUT) && !thk_attr_has(op, "o_bits") && exponent_of(op, "scale_x", &qx) &&
        exponent_of(op, "scale_w", &qw) && (qx + qw < FLOAT_OUTPUT_Q_MIN || qx + qw > FLOAT_OUTPUT_Q_MAX))
        THK_BAD("float output outside float32's exact range");
    /* thinker.ops.rounding.mode_problem: a quant_mode other than floor_add is one of the modes,
     * on an op that rounds its output with it */
    if (!thk_round_mode(m, op, &mode)) THK_BAD("quant_mode must be floor_add, floor, round or ceil");
    if (mode != THK_ROUND_FLOOR_ADD && !(flags & THK_RULE_MODE))
        THK_BAD("quant_mode must be floor_add");
    /* fused_clip [lo, hi]: an interval meeting the o_bits range */
    if (thk_attr_ints(op, "fused_clip", clip, 2) == 2) {
        lo = clip[0];
        hi = clip[1];
        if (!thk_attr_int(op, "o_bits", &bits) || !thk_bits_range(bits, &lo, &hi, &dt)) {
            lo = clip[0];
            hi = clip[1];
        }
        if (clip[0] > clip[1] || clip[0] > hi || clip[1] < lo)
            THK_BAD("fused_clip misses the o_bits range");
    }
    /* integer weights and biases */
    last = flags & THK_RULE_WEIGHTS ? 2u : flags & THK_RULE_WEIGHT ? 1u : 0u;
    for (slot = 1; slot <= last; slot++)
        if (thk_op_input(m, op, slot, &t) && (!const_integer(&t) || !int32_values(&t)))
            THK_BAD(slot == 1 ? "weight must be an integer constant"
                              : "bias must be an integer constant");
    if (flags & THK_RULE_RECURRENT)
        for (slot = 0; slot < op->n_in; slot++)
            if (thk_op_input(m, op, slot, &t) && t.init && thk_is_int(t.dtype) && !int32_values(&t))
                THK_BAD("constants must be integers within int32");
    /* constant integer operands */
    last = flags & THK_RULE_OPERANDS ? 4u : flags & THK_RULE_OPERAND ? 1u : 0u;
    for (slot = 1; slot <= last; slot++)
        if (thk_op_input(m, op, slot, &t) && !const_integer(&t))
            THK_BAD(last == 1 ? "input 1 must be a constant integer tensor"
                              : "operands must be constant integer tensors");
    return d->rules ? d->rules(m, op, msg) : THINKER_OK;
}
