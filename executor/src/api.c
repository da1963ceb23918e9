/* The public API (thinker.h): memory plan, model init, executor, I/O, forward, inspection. */
#include "thinker_internal.h"

#define STATE_ALIGN 16u

static int little_endian(void) {
    const uint16_t probe = 1;
    return *(const uint8_t *)&probe == 1;
}

static size_t align_up(size_t v, size_t a) { return (v + a - 1) & ~(a - 1); }

thinker_status thinker_initialize(void) { return little_endian() ? THINKER_OK : THINKER_ERR_PLATFORM; }

thinker_status thinker_uninitialize(void) { return THINKER_OK; }

/* The executor's records; host builds add the host-kernel jobs (host/executor_kernels.c),
 * 64-aligned, after them: thk_prepare_ops counts their bytes while planning. */
static uint64_t state_bytes(const thinker_model *m) {
    uint64_t bytes = align_up(sizeof(thinker_model), STATE_ALIGN) + (uint64_t)m->n_ops * sizeof(thk_op) +
                     thk_dynamic_bytes(m);
#ifdef THINKER_HOST_KERNELS
    bytes += 4u * (uint64_t)m->n_ops; /* host_slot */
    if (m->host_bytes) bytes += 64u + m->host_bytes;
#endif
    return bytes;
}

static thinker_status check_bin(const void *bin, thinker_message *msg) {
    if (!little_endian()) {
        thk_msg(msg, "needs a little-endian CPU", "", "");
        return THINKER_ERR_PLATFORM;
    }
    if (bin && ((uintptr_t)bin & 15u)) {
        thk_msg(msg, "model.bin must be 16-byte aligned", "", "");
        return THINKER_ERR_MEMORY;
    }
    return THINKER_OK;
}

thinker_status thinker_get_memory_plan(const void *model_bin, size_t size, thinker_memory_plan *plan,
                                       thinker_message *message) {
    thinker_model m;
    thinker_status s;
    uint32_t kind;
    uint64_t state;
    if (message) message->text[0] = '\0';
    if (!plan) return THINKER_ERR_ARGUMENT;
    memset(plan, 0, sizeof *plan);
    s = check_bin(model_bin, message);
    if (s == THINKER_OK) s = thk_parse(&m, model_bin, size, message);
    if (s == THINKER_OK) s = thk_prepare_ops(&m, NULL, message);
    if (s != THINKER_OK) return s;
    for (kind = THINKER_MEM_PSRAM; kind <= THINKER_MEM_SHARE; kind++) {
        if (!m.arena_present[kind]) continue;
        plan->request[plan->count].kind = kind;
        plan->request[plan->count].size = m.arena_size[kind];
        plan->request[plan->count].alignment = m.arena_align[kind];
        plan->count++;
    }
    state = state_bytes(&m);
    if (state > 0xFFFFFFF0u) {
        thk_msg(message, "model has too many ops", "", "");
        return THINKER_ERR_MEMORY;
    }
    plan->request[plan->count].kind = THINKER_MEM_STATE;
    plan->request[plan->count].size = (uint32_t)state;
    plan->request[plan->count].alignment = STATE_ALIGN;
    plan->count++;
    /* no SCRATCH request: every op's kernel scratch is a region of the planned arenas
     * (model.bin section 9, bound by thk_prepare_ops) */
    return THINKER_OK;
}

static const thinker_memory *find_memory(const thinker_memory *memory, uint32_t count, uint32_t kind) {
    uint32_t i;
    for (i = 0; memory && i < count; i++)
        if (memory[i].kind == kind) return &memory[i];
    return NULL;
}

static thinker_status memory_error(thinker_message *msg, const char *what) {
    thk_msg(msg, what, " missing, misaligned or too small", "");
    return THINKER_ERR_MEMORY;
}

thinker_status thinker_model_init(thinker_model **model, const void *model_bin, size_t size,
                                  const thinker_memory *memory, uint32_t count, thinker_message *message) {
    const thinker_memory *state;
    thinker_model tmp, *m;
    thinker_status s;
    uint32_t kind, i;
    if (message) message->text[0] = '\0';
    if (!model) return THINKER_ERR_ARGUMENT;
    *model = NULL;
    s = check_bin(model_bin, message);
    if (s == THINKER_OK) s = thk_parse(&tmp, model_bin, size, message);
    if (s != THINKER_OK) return s;
    state = find_memory(memory, count, THINKER_MEM_STATE);
    if (!state || !state->base || ((uintptr_t)state->base & (STATE_ALIGN - 1)) || state->size < state_bytes(&tmp))
        return memory_error(message, "STATE buffer");
    m = (thinker_model *)state->base;
    *m = tmp;
    for (kind = THINKER_MEM_PSRAM; kind <= THINKER_MEM_SHARE; kind++) {
        const thinker_memory *a;
        if (!m->arena_present[kind]) continue;
        a = find_memory(memory, count, kind);
        if (!a || (!a->base && m->arena_size[kind]) || a->size < m->arena_size[kind] ||
            ((uintptr_t)a->base & (m->arena_align[kind] - 1)))
            return memory_error(message, kind == THINKER_MEM_PSRAM ? "PSRAM arena" : "share-memory arena");
        m->arena[kind] = (uint8_t *)a->base;
    }
    m->ops = (thk_op *)(void *)((uint8_t *)state->base + align_up(sizeof(thinker_model), STATE_ALIGN));
    thk_dynamic_init(m, (uint8_t *)(m->ops + m->n_ops)); /* dynamic axes at MAX */
#ifdef THINKER_HOST_KERNELS
    m->host_slot = (uint32_t *)(void *)((uint8_t *)(m->ops + m->n_ops) + thk_dynamic_bytes(m));
    memset(m->host_slot, 0, 4u * (size_t)m->n_ops);
    m->host_fixed = 0;
    { /* the jobs take what STATE has beyond the records (a smaller STATE: the portable kernels) */
        uint8_t *end = (uint8_t *)state->base + state->size;
        uint8_t *records_end = (uint8_t *)state->base + state_bytes(&tmp);
        uint8_t *at = records_end + ((64u - ((uintptr_t)records_end & 63u)) & 63u);
        m->host_region = at < end ? at : NULL;
        m->host_room = at < end ? (uint32_t)(end - at) : 0;
    }
#endif
    s = thk_prepare_ops(m, m->ops, message);
    if (s != THINKER_OK) return s;
    /* constants placed in PSRAM / share-memory live in their arena for the whole run */
    for (i = 0; i < m->n_tensors; i++) {
        thk_tensor t;
        thk_tensor_get(m, i, &t);
        if ((t.flags & THK_FLAG_CONSTANT) && t.memory != THINKER_MEM_FLASH && t.nbytes)
            memcpy(t.data, t.init, t.nbytes);
    }
    thk_stream_reset(m); /* a new stream: every state zero */
    m->executor.model = m;
    m->alive = THK_ALIVE;
    *model = m;
    return THINKER_OK;
}

static int model_ok(const thinker_model *m) { return m && m->alive == THK_ALIVE; }
static int exec_ok(const thinker_executor *e) { return e && e->created && model_ok(e->model); }

thinker_status thinker_model_release(thinker_model *model) {
    if (!model_ok(model)) return THINKER_ERR_ARGUMENT;
    model->executor.created = 0;
    model->alive = 0;
    return THINKER_OK;
}

thinker_status thinker_executor_create(thinker_executor **executor, thinker_model *model) {
    if (!executor || !model_ok(model)) return THINKER_ERR_ARGUMENT;
    if (model->executor.created) return THINKER_ERR_ARGUMENT; /* one executor per model */
    model->executor.created = 1;
    model->executor.message.text[0] = '\0';
    *executor = &model->executor;
    return THINKER_OK;
}

thinker_status thinker_executor_release(thinker_executor *executor) {
    if (!exec_ok(executor)) return THINKER_ERR_ARGUMENT;
    executor->created = 0;
    return THINKER_OK;
}

thinker_status thinker_get_input_count(const thinker_executor *e, uint32_t *count) {
    if (!exec_ok(e) || !count) return THINKER_ERR_ARGUMENT;
    *count = e->model->n_inputs;
    return THINKER_OK;
}

thinker_status thinker_get_output_count(const thinker_executor *e, uint32_t *count) {
    if (!exec_ok(e) || !count) return THINKER_ERR_ARGUMENT;
    *count = e->model->n_outputs;
    return THINKER_OK;
}

static void fill_info(const thinker_model *m, uint32_t id, thinker_tensor_info *info) {
    thk_tensor t;
    uint32_t d;
    thk_tensor_get(m, id, &t);
    info->name = t.name;
    info->id = id;
    info->dtype = t.dtype;
    info->ndim = t.ndim;
    for (d = 0; d < THINKER_MAX_DIMS; d++) info->dims[d] = t.dims[d];
    info->has_exponent = (t.flags & THK_FLAG_EXPONENT) != 0;
    info->exponent = t.exponent;
    info->nbytes = t.nbytes;
    info->memory = t.memory;
    info->flags = t.flags;
}

static uint32_t io_id(const thinker_model *m, uint32_t slot) { return thk_rd32(m->io_ids + 4u * slot); }

thinker_status thinker_get_input_info(const thinker_executor *e, uint32_t index, thinker_tensor_info *info) {
    if (!exec_ok(e) || !info || index >= e->model->n_inputs) return THINKER_ERR_ARGUMENT;
    fill_info(e->model, io_id(e->model, index), info);
    return THINKER_OK;
}

thinker_status thinker_get_output_info(const thinker_executor *e, uint32_t index, thinker_tensor_info *info) {
    if (!exec_ok(e) || !info || index >= e->model->n_outputs) return THINKER_ERR_ARGUMENT;
    fill_info(e->model, io_id(e->model, e->model->n_inputs + index), info);
    return THINKER_OK;
}

thinker_status thinker_set_input(thinker_executor *e, uint32_t index, const void *data, size_t nbytes) {
    thk_tensor t;
    if (!exec_ok(e) || index >= e->model->n_inputs || (!data && nbytes)) return THINKER_ERR_ARGUMENT;
    thk_tensor_get(e->model, io_id(e->model, index), &t);
    if (nbytes != t.nbytes) {
        thk_msg(&e->message, "input '", t.name, "': wrong number of bytes");
        return THINKER_ERR_INPUT;
    }
    if (nbytes) memcpy(t.data, data, nbytes);
    return THINKER_OK;
}

thinker_status thinker_forward_op(thinker_executor *e, uint32_t index) {
    thk_run_ctx ctx;
    const thk_op *op;
    if (!exec_ok(e) || index >= e->model->n_ops) return THINKER_ERR_ARGUMENT;
    op = &e->model->ops[index];
    ctx.model = e->model;
    ctx.op = op;
    ctx.scratch = op->scratch;
    ctx.scratch_size = op->scratch_size;
    ctx.message = &e->message;
    return op->def->run(&ctx);
}

thinker_status thinker_forward(thinker_executor *e) {
    uint32_t i;
    if (!exec_ok(e)) return THINKER_ERR_ARGUMENT;
    e->message.text[0] = '\0';
    for (i = 0; i < e->model->n_ops; i++) {
        thinker_status s = thinker_forward_op(e, i);
        if (s != THINKER_OK) return s;
    }
    thk_stream_carry(e->model); /* states -> histories for the next call */
    return THINKER_OK;
}

thinker_status thinker_get_output(const thinker_executor *e, uint32_t index, const void **data, size_t *nbytes) {
    thk_tensor t;
    if (!exec_ok(e) || !data || !nbytes || index >= e->model->n_outputs) return THINKER_ERR_ARGUMENT;
    thk_tensor_get(e->model, io_id(e->model, e->model->n_inputs + index), &t);
    *data = t.data;
    *nbytes = t.nbytes;
    return THINKER_OK;
}

thinker_status thinker_get_op_count(const thinker_model *m, uint32_t *count) {
    if (!model_ok(m) || !count) return THINKER_ERR_ARGUMENT;
    *count = m->n_ops;
    return THINKER_OK;
}

thinker_status thinker_get_op_info(const thinker_model *m, uint32_t index, thinker_op_info *info) {
    if (!model_ok(m) || !info || index >= m->n_ops) return THINKER_ERR_ARGUMENT;
    info->type = m->ops[index].type;
    info->name = m->ops[index].name;
    info->n_inputs = m->ops[index].n_in;
    info->n_outputs = m->ops[index].n_out;
    return THINKER_OK;
}

thinker_status thinker_get_op_tensor(const thinker_model *m, uint32_t index, int is_output, uint32_t slot,
                                     uint32_t *tensor_id) {
    const thk_op *op;
    if (!model_ok(m) || !tensor_id || index >= m->n_ops) return THINKER_ERR_ARGUMENT;
    op = &m->ops[index];
    if (slot >= (is_output ? op->n_out : op->n_in)) return THINKER_ERR_ARGUMENT;
    *tensor_id = thk_op_id(op, is_output, slot);
    return THINKER_OK;
}

thinker_status thinker_get_tensor_count(const thinker_model *m, uint32_t *count) {
    if (!model_ok(m) || !count) return THINKER_ERR_ARGUMENT;
    *count = m->n_tensors;
    return THINKER_OK;
}

thinker_status thinker_get_tensor_info(const thinker_model *m, uint32_t id, thinker_tensor_info *info) {
    if (!model_ok(m) || !info || id >= m->n_tensors) return THINKER_ERR_ARGUMENT;
    fill_info(m, id, info);
    return THINKER_OK;
}

thinker_status thinker_get_tensor_data(const thinker_executor *e, uint32_t id, const void **data, size_t *nbytes) {
    thk_tensor t;
    if (!exec_ok(e) || !data || !nbytes || id >= e->model->n_tensors) return THINKER_ERR_ARGUMENT;
    thk_tensor_get(e->model, id, &t);
    *data = t.data;
    *nbytes = t.nbytes;
    return THINKER_OK;
}

const char *thinker_executor_message(const thinker_executor *e) { return e ? e->message.text : ""; }

const char *thinker_status_name(thinker_status s) {
    static const char *const names[] = {
        "OK", "ERR_ARGUMENT", "ERR_TRUNCATED", "ERR_MAGIC", "ERR_VERSION", "ERR_SIZE", "ERR_CRC",
        "ERR_FORMAT", "ERR_UNSUPPORTED_OP", "ERR_MODEL", "ERR_MEMORY", "ERR_INPUT", "ERR_RUNTIME",
        "ERR_PLATFORM"};
    return (unsigned)s < sizeof names / sizeof names[0] ? names[s] : "ERR_UNKNOWN";
}
