/* Attribute lookup on an op record (already validated by thk_parse). Each getter returns 1 when
 * the attribute is present with a usable type, and the op supplies its own default otherwise,
 * exactly as the numpy op's `node.attrs.get(key, default)` does. */
#include "qmath.h"
#include "thinker_internal.h"

const uint8_t *thk_attr_find(const thk_op *op, const char *name, uint32_t *type, uint32_t *count) {
    /* the record layout is validated, so walking it stays inside the ops section */
    const uint8_t *a = op->attrs;
    uint32_t i;
    for (i = 0; i < op->n_attrs; i++) {
        uint32_t n = thk_rd16(a + 6);
        const char *key = op->strings + thk_rd32(a);
        if (thk_streq(key, name)) {
            *type = a[4];
            *count = n;
            return a + 8;
        }
        a += 8 + 4u * n;
    }
    return NULL;
}

/* Python's int() of a finite float: truncation toward zero. */
static int float_to_int(uint32_t bits, int64_t *value) {
    if (((bits >> 23) & 0xFFu) == 0xFFu) return 0; /* inf / NaN */
    *value = thk_f32_bits_to_int(bits);
    return 1;
}

int thk_attr_int(const thk_op *op, const char *name, int64_t *value) {
    uint32_t type, count;
    const uint8_t *p = thk_attr_find(op, name, &type, &count);
    if (!p) return 0;
    if (type == THK_ATTR_INT) {
        *value = (int32_t)thk_rd32(p);
        return 1;
    }
    if (type == THK_ATTR_FLOAT) return float_to_int(thk_rd32(p), value);
    return 0;
}

int thk_attr_ints(const thk_op *op, const char *name, int64_t *values, int cap) {
    uint32_t type, count, i;
    const uint8_t *p = thk_attr_find(op, name, &type, &count);
    if (!p || type != THK_ATTR_INTS || count > (uint32_t)cap) return -1;
    for (i = 0; i < count; i++) values[i] = (int32_t)thk_rd32(p + 4 * i);
    return (int)count;
}

int thk_attr_string(const thk_op *op, const thinker_model *m, const char *name, const char **s) {
    uint32_t type, count;
    const uint8_t *p = thk_attr_find(op, name, &type, &count);
    if (!p || type != THK_ATTR_STRING) return 0;
    *s = thk_string(m, thk_rd32(p));
    return 1;
}

/* q with value == 2**q exactly (qmath.exponent_of_scale), from the float's bits. */
int thk_attr_exponent(const thk_op *op, const char *name, int32_t *q) {
    uint32_t type, count;
    const uint8_t *p = thk_attr_find(op, name, &type, &count);
    return p ? thk_scale_exponent(type, thk_rd32(p), q) : 0;
}

int thk_scale_exponent(uint32_t type, uint32_t bits, int32_t *q) {
    if (type == THK_ATTR_INT) {
        int32_t v = (int32_t)bits;
        int32_t k = 0;
        if (v <= 0 || (v & (v - 1))) return -1;
        while ((1 << k) != v) k++;
        *q = k;
        return 1;
    }
    if (type == THK_ATTR_FLOAT) {
        uint32_t u = bits, e = (u >> 23) & 0xFFu, man = u & 0x7FFFFFu;
        if (u >> 31 || e == 0xFFu || u == 0) return -1;
        if (e == 0) { /* subnormal: man * 2**-149 */
            int32_t k = 0;
            if (man & (man - 1)) return -1;
            while ((1u << k) != man) k++;
            *q = k - 149;
            return 1;
        }
        if (man) return -1;
        *q = (int32_t)e - 127;
        return 1;
    }
    return -1;
}

int thk_attr_has(const thk_op *op, const char *name) {
    uint32_t type, count;
    return thk_attr_find(op, name, &type, &count) != NULL;
}
