/* model.bin validation and decoding: the same rules, in the same order, as the reference
 * reader thinker/resource/reader.py (docs/format.md "Reader guarantees"). Nothing in the file is
 * trusted before thk_parse returns THINKER_OK; after that every string offset, tensor id and
 * data range the ops can reach has been checked against its section, params or arena. */
#include "qmath.h"
#include "thinker_internal.h"

/* CRC-32 (IEEE, reflected 0xEDB88320) with a 16-entry table: 64 bytes of flash instead of 1 KiB,
 * still fast enough to check a few MB at init. */
static const uint32_t k_crc_nibble[16] = {
    0x00000000u, 0x1DB71064u, 0x3B6E20C8u, 0x26D930ACu, 0x76DC4190u, 0x6B6B51F4u,
    0x4DB26158u, 0x5005713Cu, 0xEDB88320u, 0xF00F9344u, 0xD6D6A3E8u, 0xCB61B38Cu,
    0x9B64C2B0u, 0x86D3D2D4u, 0xA00AE278u, 0xBDBDF21Cu};

uint32_t thinker_crc32(uint32_t crc, const void *data, size_t size) {
    const uint8_t *p = (const uint8_t *)data;
    crc = ~crc;
    while (size--) {
        crc ^= *p++;
        crc = (crc >> 4) ^ k_crc_nibble[crc & 15u];
        crc = (crc >> 4) ^ k_crc_nibble[crc & 15u];
    }
    return ~crc;
}

void thk_msg(thinker_message *msg, const char *a, const char *b, const char *c) {
    const char *parts[3];
    size_t n = 0, i, cap;
    if (!msg) return;
    parts[0] = a;
    parts[1] = b;
    parts[2] = c;
    cap = sizeof msg->text - 1;
    for (i = 0; i < 3; i++) {
        const char *s = parts[i];
        while (s && *s && n < cap) msg->text[n++] = *s++;
    }
    msg->text[n] = '\0';
}

/* Decimal text of v into buf (at least 12 bytes). */
static const char *thk_utoa(uint32_t v, char *buf) {
    char tmp[12];
    int n = 0, i = 0;
    do {
        tmp[n++] = (char)('0' + v % 10u);
        v /= 10u;
    } while (v);
    while (n) buf[i++] = tmp[--n];
    buf[i] = '\0';
    return buf;
}

static thinker_status fail(thinker_message *msg, thinker_status s, const char *what,
                           uint32_t index, const char *detail) {
    char num[12];
    char text[sizeof msg->text];
    if (!msg) return s;
    thk_msg(msg, what, index == THK_NO_TENSOR ? "" : " ", index == THK_NO_TENSOR ? "" : thk_utoa(index, num));
    memcpy(text, msg->text, sizeof text);
    thk_msg(msg, text, ": ", detail);
    return s;
}

/* Strict UTF-8 (what Python's decoder accepts): no overlongs, no surrogates, <= U+10FFFF. */
static int utf8_ok(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        uint32_t cp;
        size_t len, k;
        if (c < 0x80) { i++; continue; }
        if (c >= 0xC2 && c <= 0xDF) { len = 2; cp = c & 0x1Fu; }
        else if (c >= 0xE0 && c <= 0xEF) { len = 3; cp = c & 0x0Fu; }
        else if (c >= 0xF0 && c <= 0xF4) { len = 4; cp = c & 0x07u; }
        else return 0;
        if (i + len > n) return 0;
        for (k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return 0;
            cp = (cp << 6) | (s[i + k] & 0x3Fu);
        }
        if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF))) return 0;
        if (cp >= 0xD800 && cp <= 0xDFFF) return 0;
        i += len;
    }
    return 1;
}

static int string_ok(const thinker_model *m, uint32_t offset) {
    const uint8_t *s = (const uint8_t *)m->strings;
    const uint8_t *end;
    if (offset >= m->strings_size) return 0;
    end = (const uint8_t *)memchr(s + offset, 0, m->strings_size - offset);
    return end != NULL && utf8_ok(s + offset, (size_t)(end - (s + offset)));
}

const char *thk_string(const thinker_model *m, uint32_t offset) { return m->strings + offset; }

static uint32_t dtype_bytes(uint32_t dtype) {
    static const uint8_t size[8] = {0, 1, 1, 2, 4, 8, 4, 1};
    return dtype < 8 ? size[dtype] : 0;
}

void thk_tensor_get(const thinker_model *m, uint32_t id, thk_tensor *t) {
    const uint8_t *r = m->tensor_records + (size_t)id * THK_TENSOR_RECORD;
    uint32_t i;
    t->name = thk_string(m, thk_rd32(r));
    t->dtype = r[4];
    t->ndim = r[5];
    t->memory = r[6];
    t->flags = r[7];
    t->exponent = (int32_t)thk_rd32(r + 8);
    t->count = 1;
    for (i = 0; i < THINKER_MAX_DIMS; i++) {
        t->dims[i] = i < t->ndim ? thk_rd32(r + 12 + 4 * i) : 0;
        if (i < t->ndim) t->count *= t->dims[i];
    }
    t->offset = thk_rd32(r + 36);
    t->nbytes = thk_rd32(r + 40);
    t->data_offset = thk_rd32(r + 44);
    if (m->rule_dim) { /* dims following a dynamic axis: their current lengths (rules by id) */
        for (i = 0; i < m->n_shape_rules; i++) {
            const uint8_t *rule = m->shape_rules + 24u * i;
            uint32_t rid = thk_rd32(rule);
            if (rid > id) break;
            if (rid == id) t->dims[thk_rd32(rule + 4)] = m->rule_dim[i];
        }
        if (i && thk_rd32(m->shape_rules + 24u * (i - 1)) == id) {
            t->count = 1;
            for (i = 0; i < t->ndim; i++) t->count *= t->dims[i];
            t->nbytes = t->count * dtype_bytes(t->dtype);
        }
    }
    t->init = (t->flags & THK_FLAG_CONSTANT) ? m->params + t->data_offset : NULL;
    if (t->memory == THINKER_MEM_FLASH)
        t->data = (uint8_t *)(uintptr_t)(m->params + t->data_offset);
    else
        t->data = m->arena[t->memory] ? m->arena[t->memory] + t->offset : NULL;
}

/* A bounded reader over one section, like reader.py's _Cursor. */
typedef struct {
    const uint8_t *base;
    uint32_t pos, end;
} cursor;

static const uint8_t *take(cursor *c, uint64_t n) {
    const uint8_t *p;
    if ((uint64_t)c->pos + n > c->end) return NULL;
    p = c->base + c->pos;
    c->pos += (uint32_t)n;
    return p;
}

static thinker_status check_tensor(const thinker_model *m, uint32_t i, thinker_message *msg) {
    const uint8_t *r = m->tensor_records + (size_t)i * THK_TENSOR_RECORD;
    uint32_t dtype = r[4], ndim = r[5], memory = r[6], flags = r[7], k;
    uint32_t offset = thk_rd32(r + 36), nbytes = thk_rd32(r + 40), data_offset = thk_rd32(r + 44);
    uint64_t count = 1, expect;
    if (!string_ok(m, thk_rd32(r))) return fail(msg, THINKER_ERR_FORMAT, "tensor", i, "bad name string");
    if (dtype < 1 || dtype > 7) return fail(msg, THINKER_ERR_FORMAT, "tensor", i, "unknown dtype code");
    if (ndim > THINKER_MAX_DIMS) return fail(msg, THINKER_ERR_FORMAT, "tensor", i, "more than 6 dims");
    for (k = 0; k < ndim; k++) {
        count *= thk_rd32(r + 12 + 4 * k);
        if (count > 0x7FFFFFFFu) return fail(msg, THINKER_ERR_FORMAT, "tensor", i, "too many elements");
    }
    expect = dtype == THINKER_INT4 ? (count + 1) / 2 : count * dtype_bytes(dtype);
    if (expect != nbytes) return fail(msg, THINKER_ERR_FORMAT, "tensor", i, "nbytes do not match shape");
    if ((flags & THK_FLAG_CONSTANT) &&
        (data_offset == THK_NO_TENSOR || (uint64_t)data_offset + nbytes > m->params_size))
        return fail(msg, THINKER_ERR_FORMAT, "tensor", i, "constant data outside params");
    /* beyond reader.py: elements must be aligned to their size (up to 8) so kernels can load
     * them directly; the writer aligns everything to 16 */
    k = dtype_bytes(dtype) > 8 ? 8 : dtype_bytes(dtype);
    if (k > 1 && ((((flags & THK_FLAG_CONSTANT) ? data_offset : 0) % k) ||
                  (memory != THINKER_MEM_FLASH && offset % k)))
        return fail(msg, THINKER_ERR_FORMAT, "tensor", i, "misaligned for its dtype");
    if (memory == THINKER_MEM_FLASH) {
        if (!(flags & THK_FLAG_CONSTANT) || offset != data_offset)
            return fail(msg, THINKER_ERR_FORMAT, "tensor", i, "only constants live in flash");
    } else if (memory < THK_ARENA_KINDS && m->arena_present[memory]) {
        if ((uint64_t)offset + nbytes > m->arena_size[memory])
            return fail(msg, THINKER_ERR_FORMAT, "tensor", i, "outside its arena");
    } else {
        return fail(msg, THINKER_ERR_FORMAT, "tensor", i, "memory kind has no arena");
    }
    return THINKER_OK;
}

static int id_ok(const thinker_model *m, uint32_t id, int optional) {
    return (optional && id == THK_NO_TENSOR) || id < m->n_tensors;
}

static thinker_status check_ops(thinker_model *m, thk_op *ops, thinker_message *msg) {
    cursor c;
    uint32_t i, k;
    c.base = m->op_records;
    c.pos = 0;
    c.end = m->ops_size;
    for (i = 0; i < m->n_ops; i++) {
        const uint8_t *h = take(&c, 16), *ids, *attrs;
        uint32_t n_in, n_out, n_attrs;
        if (!h) return fail(msg, THINKER_ERR_TRUNCATED, "op", i, "ops section is truncated");
        n_in = thk_rd16(h + 8);
        n_out = thk_rd16(h + 10);
        n_attrs = thk_rd16(h + 12);
        if (!string_ok(m, thk_rd32(h)) || !string_ok(m, thk_rd32(h + 4)))
            return fail(msg, THINKER_ERR_FORMAT, "op", i, "bad type or name string");
        ids = take(&c, 4ull * (n_in + n_out));
        if (!ids) return fail(msg, THINKER_ERR_TRUNCATED, "op", i, "ops section is truncated");
        for (k = 0; k < n_in + n_out; k++)
            if (!id_ok(m, thk_rd32(ids + 4 * k), k < n_in))
                return fail(msg, THINKER_ERR_FORMAT, "op", i, "tensor id out of range");
        attrs = m->op_records + c.pos;
        for (k = 0; k < n_attrs; k++) {
            const uint8_t *a = take(&c, 8);
            uint32_t type, count;
            if (!a) return fail(msg, THINKER_ERR_TRUNCATED, "op", i, "ops section is truncated");
            type = a[4];
            count = thk_rd16(a + 6);
            if (!string_ok(m, thk_rd32(a)))
                return fail(msg, THINKER_ERR_FORMAT, "op", i, "bad attribute name string");
            if (((type == THK_ATTR_INT || type == THK_ATTR_FLOAT || type == THK_ATTR_STRING) && count != 1) ||
                type < THK_ATTR_INT || type > THK_ATTR_STRING)
                return fail(msg, THINKER_ERR_FORMAT, "op", i, "bad attribute type or count");
            a = take(&c, 4ull * count);
            if (!a) return fail(msg, THINKER_ERR_TRUNCATED, "op", i, "ops section is truncated");
            if (type == THK_ATTR_STRING && !string_ok(m, thk_rd32(a)))
                return fail(msg, THINKER_ERR_FORMAT, "op", i, "bad attribute string");
        }
        {
            thinker_status s = thk_check_attrs(m, thk_string(m, thk_rd32(h)), thk_string(m, thk_rd32(h + 4)),
                                               attrs, n_attrs, msg);
            if (s != THINKER_OK) return s;
        }
        if (ops) {
            thk_op *op = &ops[i];
            memset(op, 0, sizeof *op);
            op->record = h;
            op->type = thk_string(m, thk_rd32(h));
            op->name = thk_string(m, thk_rd32(h + 4));
            op->ids = ids;
            op->attrs = attrs;
            op->strings = m->strings;
            op->n_in = (uint16_t)n_in;
            op->n_out = (uint16_t)n_out;
            op->n_attrs = (uint16_t)n_attrs;
        }
    }
    return THINKER_OK;
}

static int is_io(const thinker_model *m, uint32_t id, uint32_t from, uint32_t n) {
    uint32_t i;
    for (i = 0; i < n; i++)
        if (thk_rd32(m->io_ids + 4u * (from + i)) == id) return 1;
    return 0;
}

/* An optional section of fixed-size records whose first words are tensor ids (checked). */
static thinker_status read_records(thinker_model *m, const uint8_t *d, uint8_t present, uint32_t off,
                                   uint32_t size, uint32_t count, uint32_t record,
                                   const uint8_t **records, uint32_t *n, const char *what,
                                   thinker_message *msg) {
    uint32_t i, ids = record == 8u ? 2u : 1u, k;
    *records = NULL;
    *n = 0;
    if (!present) return THINKER_OK;
    if ((uint64_t)count * record > size) return fail(msg, THINKER_ERR_TRUNCATED, what, THK_NO_TENSOR, "section is truncated");
    for (i = 0; i < count; i++)
        for (k = 0; k < ids; k++)
            if (!id_ok(m, thk_rd32(d + off + record * i + 4u * k), 0))
                return fail(msg, THINKER_ERR_FORMAT, what, i, "tensor id out of range");
    *records = d + off;
    *n = count;
    return THINKER_OK;
}

static int is_history(const thinker_model *m, uint32_t id, uint32_t upto, int state) {
    uint32_t i;
    for (i = 0; i < upto; i++)
        if (thk_rd32(m->stream_records + 8u * i + (state ? 4u : 0u)) == id) return 1;
    return 0;
}

static int overlaps(uint32_t a, uint32_t an, uint32_t b, uint32_t bn) {
    return an && bn && (uint64_t)a < (uint64_t)b + bn && (uint64_t)b < (uint64_t)a + an;
}

/* reader.py's dynamic_problem, rule for rule and in its order. */
static thinker_status check_dynamic(thinker_model *m, thinker_message *msg) {
    uint32_t i, k;
    thk_tensor t, u;
    for (i = 0; i < m->n_dyn; i++) {
        const uint8_t *r = m->dyn_records + 20u * i;
        uint32_t id = thk_rd32(r), axis = thk_rd32(r + 4), lo = thk_rd32(r + 8), hi = thk_rd32(r + 12),
                 factor = thk_rd32(r + 16);
        thk_tensor_get(m, id, &t);
        if (!is_io(m, id, 0, m->n_inputs) || (t.flags & THK_FLAG_CONSTANT))
            return fail(msg, THINKER_ERR_FORMAT, "dynamic shape", i, "not a graph input");
        if (axis >= t.ndim) return fail(msg, THINKER_ERR_FORMAT, "dynamic shape", i, "axis out of range");
        if (lo < 1 || lo > hi || factor < 1 || t.dims[axis] != hi)
            return fail(msg, THINKER_ERR_FORMAT, "dynamic shape", i, "not 1 <= MIN <= MAX = planned, FACTOR >= 1");
        for (k = 0; k < i; k++)
            if (thk_rd32(m->dyn_records + 20u * k) == id && thk_rd32(m->dyn_records + 20u * k + 4) == axis)
                return fail(msg, THINKER_ERR_FORMAT, "dynamic shape", i, "axis given twice");
    }
    for (i = 0; i < m->n_streams; i++) {
        uint32_t h = thk_rd32(m->stream_records + 8u * i), st = thk_rd32(m->stream_records + 8u * i + 4);
        thk_tensor_get(m, h, &t);
        thk_tensor_get(m, st, &u);
        if (!is_io(m, h, 0, m->n_inputs) || (t.flags & THK_FLAG_CONSTANT) || !is_io(m, st, m->n_inputs, m->n_outputs) ||
            (u.flags & THK_FLAG_CONSTANT) || is_history(m, h, i, 0) || is_history(m, st, i, 1))
            return fail(msg, THINKER_ERR_FORMAT, "stream", i, "needs an input and an output in one pair");
        if (t.dtype != u.dtype || !thk_same_dims(&t, &u))
            return fail(msg, THINKER_ERR_FORMAT, "stream", i, "history and state differ");
        for (k = 0; k < m->n_tensors; k++) {
            thk_tensor_get(m, k, &u);
            if (k != h && !(u.flags & THK_FLAG_CONSTANT) && u.memory == t.memory &&
                overlaps(t.offset, t.nbytes, u.offset, u.nbytes))
                return fail(msg, THINKER_ERR_FORMAT, "stream", i, "history overlaps another tensor");
        }
        for (k = 0; k < m->n_scratch; k++) {
            const uint8_t *r = m->scratch_records + 16u * k;
            if (thk_rd32(r + 4) == t.memory && overlaps(t.offset, t.nbytes, thk_rd32(r + 8), thk_rd32(r + 12)))
                return fail(msg, THINKER_ERR_FORMAT, "stream", i, "history overlaps another tensor");
        }
    }
    for (i = 0; i < m->n_shape_rules; i++) {
        const uint8_t *r = m->shape_rules + 24u * i;
        uint32_t id = thk_rd32(r), axis = thk_rd32(r + 4), rule = thk_rd32(r + 8), div = thk_rd32(r + 20);
        int64_t mul = (int32_t)thk_rd32(r + 12), add = (int32_t)thk_rd32(r + 16), lo, hi;
        if (i && (thk_rd32(r - 24) > id || (thk_rd32(r - 24) == id && thk_rd32(r - 20) >= axis)))
            return fail(msg, THINKER_ERR_FORMAT, "shape rule", i, "not in (tensor, axis) order");
        thk_tensor_get(m, id, &t);
        if ((t.flags & THK_FLAG_CONSTANT) || is_history(m, id, m->n_streams, 0) || is_history(m, id, m->n_streams, 1))
            return fail(msg, THINKER_ERR_FORMAT, "shape rule", i, "is a constant or a stream state");
        if (axis >= t.ndim || rule >= m->n_dyn)
            return fail(msg, THINKER_ERR_FORMAT, "shape rule", i, "axis or dynamic shape out of range");
        lo = thk_rd32(m->dyn_records + 20u * rule + 8);
        hi = thk_rd32(m->dyn_records + 20u * rule + 12);
        /* mul >= 0 and div >= 1: the dim grows with L, so MAX's dim bounds every length's */
        if (div < 1 || mul < 0 || mul * lo + add < (int64_t)div || thk_udivmod64((uint64_t)(mul * hi + add), div, NULL) != t.dims[axis])
            return fail(msg, THINKER_ERR_FORMAT, "shape rule", i, "dim < 1 at MIN or not planned at MAX");
    }
    for (i = 0; i < m->n_dyn; i++) {
        const uint8_t *d = m->dyn_records + 20u * i;
        int found = 0;
        for (k = 0; k < m->n_shape_rules && !found; k++) {
            const uint8_t *r = m->shape_rules + 24u * k;
            found = thk_rd32(r) == thk_rd32(d) && thk_rd32(r + 4) == thk_rd32(d + 4) && thk_rd32(r + 8) == i &&
                    thk_rd32(r + 12) == 1u && thk_rd32(r + 16) == 0u && thk_rd32(r + 20) == 1u;
        }
        if (!found) return fail(msg, THINKER_ERR_FORMAT, "dynamic shape", i, "its own shape rule is missing");
    }
    return THINKER_OK;
}

thinker_status thk_parse(thinker_model *m, const void *bin, size_t size, thinker_message *msg) {
    const uint8_t *d = (const uint8_t *)bin;
    uint32_t n_sections, table, i, k;
    uint32_t sec_off[12] = {0}, sec_size[12] = {0}, sec_count[12] = {0};
    uint8_t present[12] = {0};
    uint64_t file_size;
    cursor c;
    static const char magic[8] = {'T', 'H', 'I', 'N', 'K', 'E', 'R', 0};

    memset(m, 0, sizeof *m);
    if (!bin) return fail(msg, THINKER_ERR_ARGUMENT, "model.bin", THK_NO_TENSOR, "NULL buffer");
    if (size < THK_HEADER_SIZE)
        return fail(msg, THINKER_ERR_TRUNCATED, "model.bin", THK_NO_TENSOR, "shorter than the header");
    if (memcmp(d, magic, 8) != 0)
        return fail(msg, THINKER_ERR_MAGIC, "model.bin", THK_NO_TENSOR, "bad magic");
    if (thk_rd16(d + 8) != THINKER_FORMAT_VERSION)
        return fail(msg, THINKER_ERR_VERSION, "model.bin", THK_NO_TENSOR, "unsupported format version");
    if (thk_rd16(d + 10) != THK_HEADER_SIZE)
        return fail(msg, THINKER_ERR_VERSION, "model.bin", THK_NO_TENSOR, "header size is not 64");
    file_size = (uint64_t)thk_rd32(d + 32) | ((uint64_t)thk_rd32(d + 36) << 32);
    if (file_size != (uint64_t)size)
        return fail(msg, THINKER_ERR_SIZE, "model.bin", THK_NO_TENSOR,
                    "file size differs from the buffer");
    if (thinker_crc32(0, d + THK_HEADER_SIZE, size - THK_HEADER_SIZE) != thk_rd32(d + 24))
        return fail(msg, THINKER_ERR_CRC, "model.bin", THK_NO_TENSOR, "CRC mismatch");
    n_sections = thk_rd32(d + 16);
    table = thk_rd32(d + 20);
    if (table < THK_HEADER_SIZE || n_sections > THK_MAX_SECTIONS ||
        (uint64_t)table + 16ull * n_sections > size)
        return fail(msg, THINKER_ERR_FORMAT, "model.bin", THK_NO_TENSOR, "section table out of bounds");
    for (i = 0; i < n_sections; i++) {
        const uint8_t *e = d + table + 16u * i;
        uint32_t kind = thk_rd32(e), off = thk_rd32(e + 4), sz = thk_rd32(e + 8);
        if (off % 16u || off < THK_HEADER_SIZE || (uint64_t)off + sz > size)
            return fail(msg, THINKER_ERR_FORMAT, "section", i, "misaligned or out of bounds");
        if (kind >= 1 && kind <= 11) {
            if (present[kind]) return fail(msg, THINKER_ERR_FORMAT, "section", i, "duplicate kind");
            present[kind] = 1;
            sec_off[kind] = off;
            sec_size[kind] = sz;
            sec_count[kind] = thk_rd32(e + 12);
        }
    }
    for (k = 1; k <= 6; k++)
        if (!present[k]) return fail(msg, THINKER_ERR_FORMAT, "section kind", k, "required section missing");

    m->bin = d;
    m->size = size;
    m->strings = (const char *)(d + sec_off[1]);
    m->strings_size = sec_size[1];
    m->params = d + sec_off[5];
    m->params_size = sec_size[5];

    /* memory plan */
    c.base = d + sec_off[6];
    c.pos = 0;
    c.end = sec_size[6];
    for (i = 0; i < sec_count[6]; i++) {
        const uint8_t *r = take(&c, 16);
        uint32_t kind, align;
        if (!r) return fail(msg, THINKER_ERR_TRUNCATED, "memory plan", THK_NO_TENSOR, "section is truncated");
        kind = thk_rd32(r);
        align = thk_rd32(r + 8);
        if (kind < THINKER_MEM_PSRAM || kind > THINKER_MEM_SHARE || align == 0 || (align & (align - 1)))
            return fail(msg, THINKER_ERR_FORMAT, "memory plan entry", i, "bad kind or alignment");
        m->arena_present[kind] = 1;
        m->arena_size[kind] = thk_rd32(r + 4);
        m->arena_align[kind] = align;
    }

    /* tensors */
    if ((uint64_t)sec_count[2] * THK_TENSOR_RECORD > sec_size[2])
        return fail(msg, THINKER_ERR_TRUNCATED, "tensors", THK_NO_TENSOR, "fewer records than its count");
    m->tensor_records = d + sec_off[2];
    m->n_tensors = sec_count[2];
    for (i = 0; i < m->n_tensors; i++) {
        thinker_status s = check_tensor(m, i, msg);
        if (s != THINKER_OK) return s;
    }

    /* ops */
    m->op_records = d + sec_off[3];
    m->ops_size = sec_size[3];
    m->n_ops = sec_count[3];
    {
        thinker_status s = check_ops(m, NULL, msg);
        if (s != THINKER_OK) return s;
    }

    /* io */
    c.base = d + sec_off[4];
    c.pos = 0;
    c.end = sec_size[4];
    {
        const uint8_t *h = take(&c, 8), *ids;
        if (!h) return fail(msg, THINKER_ERR_TRUNCATED, "io", THK_NO_TENSOR, "section is truncated");
        m->n_inputs = thk_rd32(h);
        m->n_outputs = thk_rd32(h + 4);
        ids = take(&c, 4ull * ((uint64_t)m->n_inputs + m->n_outputs));
        if (!ids) return fail(msg, THINKER_ERR_TRUNCATED, "io", THK_NO_TENSOR, "section is truncated");
        for (i = 0; i < m->n_inputs + m->n_outputs; i++)
            if (!id_ok(m, thk_rd32(ids + 4 * i), 0))
                return fail(msg, THINKER_ERR_FORMAT, "io entry", i, "tensor id out of range");
        m->io_ids = ids;
    }

    /* optional sections: dynamic shapes (records are checked, execution uses the static shape) */
    if (present[7]) {
        c.base = d + sec_off[7];
        c.pos = 0;
        c.end = sec_size[7];
        for (i = 0; i < sec_count[7]; i++) {
            const uint8_t *r = take(&c, 20);
            if (!r) return fail(msg, THINKER_ERR_TRUNCATED, "dynamic shapes", THK_NO_TENSOR, "section is truncated");
            if (!id_ok(m, thk_rd32(r), 0))
                return fail(msg, THINKER_ERR_FORMAT, "dynamic shape", i, "tensor id out of range");
        }
    }
    if (present[8]) {
        c.base = d + sec_off[8];
        c.pos = 0;
        c.end = sec_size[8];
        for (i = 0; i < sec_count[8]; i++) {
            const uint8_t *r = take(&c, 8);
            if (!r) return fail(msg, THINKER_ERR_TRUNCATED, "debug names", THK_NO_TENSOR, "section is truncated");
            if (!id_ok(m, thk_rd32(r), 0) || !string_ok(m, thk_rd32(r + 4)))
                return fail(msg, THINKER_ERR_FORMAT, "debug name", i, "bad tensor id or string");
        }
    }

    /* kernel scratch regions (section 9), reader.py's order of checks */
    if (present[9]) {
        uint32_t prev = 0;
        c.base = d + sec_off[9];
        c.pos = 0;
        c.end = sec_size[9];
        for (i = 0; i < sec_count[9]; i++) {
            const uint8_t *r = take(&c, 16);
            uint32_t op, kind, off, sz;
            if (!r) return fail(msg, THINKER_ERR_TRUNCATED, "scratch", THK_NO_TENSOR, "section is truncated");
            op = thk_rd32(r);
            kind = thk_rd32(r + 4);
            off = thk_rd32(r + 8);
            sz = thk_rd32(r + 12);
            if (op >= m->n_ops || (i && op <= prev))
                return fail(msg, THINKER_ERR_FORMAT, "scratch record", i, "op index out of range or order");
            if (kind >= THK_ARENA_KINDS || !m->arena_present[kind] || off % 8u || !sz ||
                (uint64_t)off + sz > m->arena_size[kind])
                return fail(msg, THINKER_ERR_FORMAT, "scratch record", i,
                            "empty, misaligned or outside its arena");
            prev = op;
        }
        m->scratch_records = d + sec_off[9];
        m->n_scratch = sec_count[9];
    }

    /* streaming and dynamic axes (sections 7, 10, 11): reader.py's dynamic_problem */
    m->dyn_records = present[7] ? d + sec_off[7] : NULL;
    m->n_dyn = present[7] ? sec_count[7] : 0;
    {
        thinker_status s = read_records(m, d, present[10], sec_off[10], sec_size[10], sec_count[10], 8u,
                                        &m->stream_records, &m->n_streams, "streams", msg);
        if (s == THINKER_OK)
            s = read_records(m, d, present[11], sec_off[11], sec_size[11], sec_count[11], 24u,
                             &m->shape_rules, &m->n_shape_rules, "shape rules", msg);
        if (s == THINKER_OK) s = check_dynamic(m, msg);
        if (s != THINKER_OK) return s;
    }

    /* beyond reader.py: what this executor writes must be writable. Graph inputs are copied
     * into their arena slot, so they cannot be constants or live in flash. */
    for (i = 0; i < m->n_inputs; i++) {
        thk_tensor t;
        thk_tensor_get(m, thk_rd32(m->io_ids + 4 * i), &t);
        if (t.memory == THINKER_MEM_FLASH || (t.flags & THK_FLAG_CONSTANT))
            return fail(msg, THINKER_ERR_FORMAT, "graph input", i, "is a constant or in flash");
    }
    return thk_check_records(m, msg); /* names, flags, single assignment, the memory plan */
}

thinker_status thk_op_error(thinker_message *msg, const thk_op *op, thinker_status status,
                            const char *what) {
    char text[sizeof msg->text];
    if (!msg) return status;
    thk_msg(msg, op->type, " '", op->name);
    memcpy(text, msg->text, sizeof text);
    thk_msg(msg, text, "': ", what);
    return status;
}

thinker_status thk_bad(thinker_message *msg, const thk_op *op, const char *what) {
    return thk_op_error(msg, op, THINKER_ERR_MODEL, what);
}

/* The planned scratch region of op `index`, or NULL (records are sorted by op; *next walks
 * them). */
static const uint8_t *scratch_record(const thinker_model *m, uint32_t index, uint32_t *next) {
    while (*next < m->n_scratch && thk_rd32(m->scratch_records + 16u * *next) < index) (*next)++;
    if (*next < m->n_scratch && thk_rd32(m->scratch_records + 16u * *next) == index)
        return m->scratch_records + 16u * *next;
    return NULL;
}

/* The kernel's need (its prepare step; Python twin thinker/memory/scratch.py) must fit its
 * planned region `r`. */
static thinker_status bind_scratch(thk_op *op, const thinker_model *m, const uint8_t *r, uint32_t need,
                                   thinker_message *msg) {
    char a[12], b[12], text[sizeof msg->text];
    uint32_t size = r ? thk_rd32(r + 12) : 0;
    if (need > size) {
        if (!msg) return THINKER_ERR_MEMORY;
        thk_msg(msg, "needs ", thk_utoa(need, a), " B of kernel scratch; model.bin plans ");
        memcpy(text, msg->text, sizeof text);
        thk_msg(msg, text, thk_utoa(size, b), " B (re-pack with this version's tpacker)");
        memcpy(text, msg->text, sizeof text);
        return thk_op_error(msg, op, THINKER_ERR_MEMORY, text);
    }
    op->scratch = m->arena[thk_rd32(r + 4)] ? m->arena[thk_rd32(r + 4)] + thk_rd32(r + 8) : NULL;
    op->scratch_size = size;
    return THINKER_OK;
}

/* Resolve every op against the compiled-in table and run its prepare step. With `ops` NULL
 * (planning) each op is prepared into a temporary record and only the needs are kept. */
thinker_status thk_prepare_ops(thinker_model *m, thk_op *ops, thinker_message *msg) {
    thk_op tmp;
    uint32_t i, k, next = 0;
    const uint8_t *record;
    thinker_status s;
    cursor c;
#ifdef THINKER_HOST_KERNELS
    /* jobs take the host region in op order, each a multiple of 64: at init as much as each
     * needs (its slot), when a dynamic length changes each its own slot again, so one job
     * needing more at another length leaves the others where they are */
    uint32_t host_used = 0;
    const int binding = ops && m->host_region;
#endif
    m->scratch_needed = 0;
    if (ops) {
        s = check_ops(m, ops, msg);
        if (s != THINKER_OK) return s;
    }
    c.base = m->op_records;
    c.pos = 0;
    c.end = m->ops_size;
    for (i = 0; i < m->n_ops; i++) {
        thk_op *op = ops ? &ops[i] : &tmp;
        thk_needs needs;
        if (!ops) { /* re-walk the (already validated) records */
            const uint8_t *h = take(&c, 16);
            uint32_t n_attrs;
            memset(op, 0, sizeof *op);
            op->record = h;
            op->type = thk_string(m, thk_rd32(h));
            op->name = thk_string(m, thk_rd32(h + 4));
            op->n_in = thk_rd16(h + 8);
            op->n_out = thk_rd16(h + 10);
            op->n_attrs = thk_rd16(h + 12);
            op->ids = take(&c, 4u * ((uint32_t)op->n_in + op->n_out));
            op->attrs = m->op_records + c.pos;
            op->strings = m->strings;
            for (n_attrs = 0; n_attrs < op->n_attrs; n_attrs++) {
                const uint8_t *a = take(&c, 8);
                take(&c, 4u * thk_rd16(a + 6));
            }
        }
        op->def = thk_find_op(op->type);
        if (!op->def) {
            thk_msg(msg, "op '", op->type, "' is not compiled in; rebuild with it in OPS");
            return THINKER_ERR_UNSUPPORTED_OP;
        }
        for (k = 0; k < op->n_out; k++) { /* outputs are written: activations in an arena only */
            thk_tensor t;
            thk_op_output(m, op, k, &t);
            if (t.memory == THINKER_MEM_FLASH || (t.flags & THK_FLAG_CONSTANT))
                return thk_op_error(msg, op, THINKER_ERR_MODEL, "output is a constant");
        }
        s = thk_check_op_rules(m, op, msg);
        if (s != THINKER_OK) return s;
        needs.scratch = 0;
        record = scratch_record(m, i, &next);
        needs.budget = record ? thk_rd32(record + 12) : 0;
#ifdef THINKER_HOST_KERNELS
        needs.host = 0;
        needs.host_region = binding ? m->host_region + host_used : NULL;
        needs.host_room = !binding ? 0 : m->host_fixed ? m->host_slot[i] : m->host_room - host_used;
#endif
        s = op->def->prepare(m, op, &needs, msg);
        if (s != THINKER_OK) return s;
#ifdef THINKER_HOST_KERNELS
        if (binding) {
            if (!m->host_fixed) m->host_slot[i] = needs.host;
            host_used += m->host_slot[i];
        } else if (!ops) { /* planning: jobs beyond THK_HOST_PLAN_LIMIT are not planned */
            if (needs.host > THK_HOST_PLAN_LIMIT - host_used) needs.host = 0;
            host_used += needs.host;
        }
#endif
        if (needs.scratch > m->scratch_needed) m->scratch_needed = needs.scratch;
        if (needs.scratch) {
            s = bind_scratch(op, m, record, needs.scratch, msg);
            if (s != THINKER_OK) return s;
        }
    }
#ifdef THINKER_HOST_KERNELS
    if (!ops) m->host_bytes = host_used;
    if (binding) m->host_fixed = 1;
#endif
    return THINKER_OK;
}
