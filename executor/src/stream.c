/* Streaming and dynamic axes (docs/streaming.md, model.bin sections 7, 10, 11).
 *
 * Streams: each (history input, state output) pair is carried between forwards: after the last
 * op the state's bytes are copied over the history's. tpacker plans a history for the whole run
 * (no other tensor or scratch shares its bytes; both readers check it), so the copy never
 * disturbs an output the caller has yet to read, and nothing overwrites it before the next
 * forward. thinker_reset zeroes the histories (so does thinker_model_init).
 *
 * Dynamic axes: thinker_update_shape sets the length of one input axis; every dim that follows
 * it (its shape rule: floor((mul L + add) / div), mul >= 0, so never beyond the MAX the memory
 * was planned for) is recomputed, and every op is prepared again at the new shapes, with the
 * same checks as at init: an op whose shapes do not agree is refused, never run. */
#include "qmath.h"
#include "thinker_internal.h"

uint32_t thk_dynamic_bytes(const thinker_model *m) { return 4u * (m->n_dyn + m->n_shape_rules); }

static void compute_dims(thinker_model *m) {
    uint32_t i;
    for (i = 0; i < m->n_shape_rules; i++) {
        const uint8_t *r = m->shape_rules + 24u * i;
        int64_t mul = (int32_t)thk_rd32(r + 12), add = (int32_t)thk_rd32(r + 16);
        /* mul >= 0 and mul MIN + add >= div (checked at parse): a positive numerator */
        m->rule_dim[i] = (uint32_t)thk_udivmod64((uint64_t)(mul * m->dyn_len[thk_rd32(r + 8)] + add), thk_rd32(r + 20), NULL);
    }
}

void thk_dynamic_init(thinker_model *m, uint8_t *base) {
    uint32_t i;
    if (!m->n_dyn && !m->n_shape_rules) return;
    m->dyn_len = (uint32_t *)(void *)base;
    for (i = 0; i < m->n_dyn; i++) m->dyn_len[i] = thk_rd32(m->dyn_records + 20u * i + 12);
    m->rule_dim = m->dyn_len + m->n_dyn;
    compute_dims(m);
}

void thk_stream_reset(thinker_model *m) {
    uint32_t i;
    for (i = 0; i < m->n_streams; i++) {
        thk_tensor h;
        thk_tensor_get(m, thk_rd32(m->stream_records + 8u * i), &h);
        if (h.data && h.nbytes) memset(h.data, 0, h.nbytes);
    }
}

void thk_stream_carry(thinker_model *m) {
    uint32_t i;
    for (i = 0; i < m->n_streams; i++) {
        thk_tensor h, s;
        thk_tensor_get(m, thk_rd32(m->stream_records + 8u * i), &h);
        thk_tensor_get(m, thk_rd32(m->stream_records + 8u * i + 4), &s);
        if (h.nbytes) memcpy(h.data, s.data, h.nbytes);
    }
}

static int usable(const thinker_executor *e) {
    return e && e->created && e->model && e->model->alive == THK_ALIVE;
}

thinker_status thinker_reset(thinker_executor *e) {
    if (!usable(e)) return THINKER_ERR_ARGUMENT;
    thk_stream_reset(e->model);
    return THINKER_OK;
}

thinker_status thinker_get_stream_info(const thinker_executor *e, uint32_t *count, uint32_t *state_bytes) {
    uint32_t i, total = 0;
    if (!usable(e) || !count) return THINKER_ERR_ARGUMENT;
    for (i = 0; i < e->model->n_streams; i++) {
        thk_tensor h;
        thk_tensor_get(e->model, thk_rd32(e->model->stream_records + 8u * i), &h);
        total += h.nbytes;
    }
    *count = e->model->n_streams;
    if (state_bytes) *state_bytes = total;
    return THINKER_OK;
}

static void append_number(thinker_message *msg, const char *before, uint32_t v) {
    char num[12], text[sizeof msg->text];
    int n = 0, k = 0;
    do {
        text[n++] = (char)('0' + v % 10u);
        v /= 10u;
    } while (v);
    while (n) num[k++] = text[--n];
    num[k] = '\0';
    memcpy(text, msg->text, sizeof text);
    thk_msg(msg, text, before, num);
}

thinker_status thinker_get_dynamic_axis(const thinker_executor *e, uint32_t input_index, uint32_t axis,
                                        uint32_t *minimum, uint32_t *maximum, uint32_t *factor,
                                        uint32_t *current) {
    const thinker_model *m;
    uint32_t i, id;
    if (!usable(e) || input_index >= e->model->n_inputs) return THINKER_ERR_ARGUMENT;
    m = e->model;
    id = thk_rd32(m->io_ids + 4u * input_index);
    for (i = 0; i < m->n_dyn; i++) {
        const uint8_t *r = m->dyn_records + 20u * i;
        if (thk_rd32(r) != id || thk_rd32(r + 4) != axis) continue;
        if (minimum) *minimum = thk_rd32(r + 8);
        if (maximum) *maximum = thk_rd32(r + 12);
        if (factor) *factor = thk_rd32(r + 16);
        if (current) *current = m->dyn_len[i];
        return THINKER_OK;
    }
    return THINKER_ERR_ARGUMENT;
}

thinker_status thinker_update_shape(thinker_executor *e, uint32_t input_index, uint32_t axis, uint32_t length) {
    thinker_model *m;
    thk_tensor t;
    uint32_t i, id, old;
    thinker_status s;
    if (!usable(e) || input_index >= e->model->n_inputs) return THINKER_ERR_ARGUMENT;
    m = e->model;
    e->message.text[0] = '\0';
    id = thk_rd32(m->io_ids + 4u * input_index);
    thk_tensor_get(m, id, &t);
    for (i = 0; i < m->n_dyn; i++) {
        const uint8_t *r = m->dyn_records + 20u * i;
        uint32_t lo, hi, factor;
        if (thk_rd32(r) != id || thk_rd32(r + 4) != axis) continue;
        lo = thk_rd32(r + 8);
        hi = thk_rd32(r + 12);
        factor = thk_rd32(r + 16);
        if (length < lo || length > hi || (length - lo) % factor) {
            thk_msg(&e->message, "input '", t.name, "': length ");
            append_number(&e->message, "", length);
            append_number(&e->message, " not allowed on axis ", axis);
            append_number(&e->message, "; MIN:MAX:FACTOR = ", lo);
            append_number(&e->message, ":", hi);
            append_number(&e->message, ":", factor);
            return THINKER_ERR_INPUT;
        }
        old = m->dyn_len[i];
        if (old == length) return THINKER_OK;
        m->dyn_len[i] = length;
        compute_dims(m);
        s = thk_prepare_ops(m, m->ops, &e->message);
        if (s != THINKER_OK) { /* back to the lengths that were prepared */
            m->dyn_len[i] = old;
            compute_dims(m);
            (void)thk_prepare_ops(m, m->ops, NULL);
        }
        return s;
    }
    thk_msg(&e->message, "input '", t.name, "': no dynamic axis ");
    append_number(&e->message, "", axis);
    return THINKER_ERR_ARGUMENT;
}

static uint32_t io_index(const thinker_model *m, uint32_t id, uint32_t from, uint32_t n) {
    uint32_t i;
    for (i = 0; i < n; i++)
        if (thk_rd32(m->io_ids + 4u * (from + i)) == id) return i;
    return 0xFFFFFFFFu; /* never: the reader checked both are graph I/O */
}

thinker_status thinker_get_stream_pair(const thinker_executor *e, uint32_t k, uint32_t *input_index,
                                       uint32_t *output_index) {
    const thinker_model *m;
    if (!usable(e) || !input_index || !output_index || k >= e->model->n_streams) return THINKER_ERR_ARGUMENT;
    m = e->model;
    *input_index = io_index(m, thk_rd32(m->stream_records + 8u * k), 0, m->n_inputs);
    *output_index = io_index(m, thk_rd32(m->stream_records + 8u * k + 4), m->n_inputs, m->n_outputs);
    return THINKER_OK;
}
