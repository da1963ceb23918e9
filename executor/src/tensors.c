/* Tensor access shared by the ops: an op's inputs/outputs, dtype sizes, element loads and
 * stores for the generic (slow, any-dtype) kernel paths. */
#include "qmath.h"
#include "thinker_internal.h"

uint32_t thk_op_id(const thk_op *op, int is_output, uint32_t slot) {
    return thk_rd32(op->ids + 4u * (is_output ? op->n_in + slot : slot));
}

int thk_op_input(const thinker_model *m, const thk_op *op, uint32_t slot, thk_tensor *t) {
    uint32_t id;
    if (slot >= op->n_in) return 0;
    id = thk_op_id(op, 0, slot);
    if (id == THK_NO_TENSOR) return 0;
    thk_tensor_get(m, id, t);
    return 1;
}

void thk_op_output(const thinker_model *m, const thk_op *op, uint32_t slot, thk_tensor *t) {
    thk_tensor_get(m, thk_op_id(op, 1, slot), t);
}

uint32_t thk_dtype_size(uint32_t dtype) {
    switch (dtype) {
    case THINKER_INT8: case THINKER_UINT8: return 1;
    case THINKER_INT16: return 2;
    case THINKER_INT32: case THINKER_FLOAT32: return 4;
    case THINKER_INT64: return 8;
    default: return 0; /* int4 is packed: never an activation */
    }
}

int thk_is_int(uint32_t dtype) { return dtype >= THINKER_INT8 && dtype <= THINKER_INT64; }

int64_t thk_load_int(const void *data, uint32_t dtype, uint32_t i) {
    const uint8_t *p = (const uint8_t *)data;
    switch (dtype) {
    case THINKER_INT8: return ((const int8_t *)p)[i];
    case THINKER_UINT8: return p[i];
    case THINKER_INT16: return ((const int16_t *)p)[i];
    case THINKER_INT32: return ((const int32_t *)p)[i];
    case THINKER_INT64: return ((const int64_t *)p)[i];
    case THINKER_INT4: {
        int v = (i & 1u) ? p[i >> 1] >> 4 : p[i >> 1] & 15;
        return v >= 8 ? v - 16 : v;
    }
    case THINKER_FLOAT32: { /* numpy's astype(int64) truncates */
        uint32_t bits;
        memcpy(&bits, p + 4u * i, 4);
        return thk_f32_bits_to_int(bits);
    }
    default: return 0;
    }
}

/* Stores keep the low bits (numpy's astype of an int that does not fit wraps). */
void thk_store_int(void *data, uint32_t dtype, uint32_t i, int64_t v) {
    uint8_t *p = (uint8_t *)data;
    switch (dtype) {
    case THINKER_INT8: ((int8_t *)p)[i] = (int8_t)(uint8_t)((uint64_t)v & 0xFFu); break;
    case THINKER_UINT8: p[i] = (uint8_t)((uint64_t)v & 0xFFu); break;
    case THINKER_INT16: ((int16_t *)p)[i] = (int16_t)(uint16_t)((uint64_t)v & 0xFFFFu); break;
    case THINKER_INT32: ((int32_t *)p)[i] = (int32_t)(uint32_t)((uint64_t)v & 0xFFFFFFFFu); break;
    case THINKER_INT64: ((int64_t *)p)[i] = v; break;
    default: break; /* float outputs are written by their ops */
    }
}

int thk_same_dims(const thk_tensor *a, const thk_tensor *b) {
    uint32_t i;
    if (a->ndim != b->ndim) return 0;
    for (i = 0; i < a->ndim; i++)
        if (a->dims[i] != b->dims[i]) return 0;
    return 1;
}

int thk_bits_range(int64_t bits, int64_t *lo, int64_t *hi, uint32_t *dtype) {
    switch (bits) {
    case 4: *dtype = THINKER_INT8; break; /* int4 values live in int8 storage */
    case 8: *dtype = THINKER_INT8; break;
    case 16: *dtype = THINKER_INT16; break;
    case 32: *dtype = THINKER_INT32; break;
    default: return 0;
    }
    *hi = ((int64_t)1 << (bits - 1)) - 1;
    *lo = -*hi - 1;
    return 1;
}

int thk_const_ints(const thinker_model *m, const thk_op *op, uint32_t slot, int64_t *values, int cap) {
    thk_tensor t;
    uint32_t i;
    if (!thk_op_input(m, op, slot, &t) || !t.init) return -1;
    if ((int64_t)t.count > cap) return -2;
    for (i = 0; i < t.count; i++) values[i] = thk_load_int(t.init, t.dtype, i);
    return (int)t.count;
}

int thk_const_number(const thinker_model *m, const thk_op *op, uint32_t slot, const char *attr, int64_t *v,
                     uint32_t *bits) {
    thk_tensor t;
    uint32_t type, count;
    const uint8_t *p;
    if (thk_op_input(m, op, slot, &t)) {
        if (!t.init || t.count != 1) return -1;
        *bits = thk_rd32(t.init);
        *v = thk_load_int(t.init, t.dtype, 0);
        return t.dtype == THINKER_FLOAT32 ? 2 : 1;
    }
    p = thk_attr_find(op, attr, &type, &count);
    if (!p || (type != THK_ATTR_INT && type != THK_ATTR_FLOAT)) return 0;
    *bits = thk_rd32(p);
    *v = (int32_t)*bits;
    return type == THK_ATTR_FLOAT ? 2 : 1;
}

int32_t thk_f32_key(uint32_t bits) { return (bits >> 31) ? -(int32_t)(bits & 0x7FFFFFFFu) : (int32_t)bits; }

int thk_streq(const char *a, const char *b) {
    while (*a && *a == *b) {
        a++;
        b++;
    }
    return *a == *b;
}
