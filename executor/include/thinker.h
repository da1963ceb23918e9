/* thinker C executor: runs a model.bin (docs/format.md) with the same integers as the numpy
 * executor. Freestanding C99: needs only <stdint.h>, <stddef.h>, <string.h>; never allocates;
 * keeps no mutable global state, so any number of models can run side by side.
 *
 * The call order mirrors the original thinker API (docs/c_executor.md has an example):
 *
 *   thinker_initialize()
 *   thinker_get_memory_plan(bin, size, &plan, &msg)      what buffers the model needs
 *   ... the caller provides one buffer per plan entry ...
 *   thinker_model_init(&model, bin, size, mems, n, &msg) validate, copy RAM constants, prepare ops
 *   thinker_executor_create(&exe, model)
 *   thinker_get_input_info / thinker_get_output_info
 *   thinker_update_shape(exe, i, axis, length)          only for a dynamic axis, before set_input
 *   thinker_set_input(exe, i, data, nbytes)
 *   thinker_forward(exe)                                 (or thinker_forward_op per op)
 *   thinker_get_output(exe, i, &data, &nbytes)
 *   thinker_executor_release(exe); thinker_model_release(model); thinker_uninitialize()
 *
 * Every function returns a thinker_status; THINKER_OK is 0. The model.bin buffer must stay
 * alive and unchanged while the model is in use: weights are read from it in place.
 */
#ifndef THINKER_H
#define THINKER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define THINKER_VERSION_MAJOR 0
#define THINKER_VERSION_MINOR 1
#define THINKER_FORMAT_VERSION 1 /* the model.bin version this executor reads */

typedef enum {
    THINKER_OK = 0,
    THINKER_ERR_ARGUMENT = 1,    /* NULL pointer, index out of range, call out of order */
    THINKER_ERR_TRUNCATED = 2,   /* shorter than the header, or a section/record runs past its end */
    THINKER_ERR_MAGIC = 3,       /* not a model.bin */
    THINKER_ERR_VERSION = 4,     /* format version (or header size) this executor cannot read */
    THINKER_ERR_SIZE = 5,        /* header's file size differs from the buffer's size */
    THINKER_ERR_CRC = 6,         /* CRC-32 mismatch: the file is corrupt */
    THINKER_ERR_FORMAT = 7,      /* a section, string, record, id or offset is out of range */
    THINKER_ERR_UNSUPPORTED_OP = 8, /* an op type not compiled into this build (message names it) */
    THINKER_ERR_MODEL = 9,       /* an op's attributes, shapes or dtypes are inconsistent */
    THINKER_ERR_MEMORY = 10,     /* a buffer is missing, too small or misaligned */
    THINKER_ERR_INPUT = 11,      /* an input of the wrong size */
    THINKER_ERR_RUNTIME = 12,    /* a data-dependent failure while running (e.g. Gather index) */
    THINKER_ERR_PLATFORM = 13    /* this CPU cannot run the executor (big-endian) */
} thinker_status;

/* Memory kinds: the first three are the model.bin kinds; STATE holds the executor's tables. */
#define THINKER_MEM_FLASH 1   /* inside model.bin (never requested) */
#define THINKER_MEM_PSRAM 2   /* arena for activations / constants placed in PSRAM */
#define THINKER_MEM_SHARE 3   /* "share-memory" (SRAM) arena */
#define THINKER_MEM_STATE 8   /* the model's and executor's tables; lives until release */
#define THINKER_MEM_SCRATCH 9 /* never requested (kept for source compatibility): kernel
                                 scratch is planned inside the arenas (model.bin section 9) */
#define THINKER_MAX_MEMORY 4

typedef struct {
    uint32_t kind;      /* THINKER_MEM_* */
    uint32_t size;      /* bytes */
    uint32_t alignment; /* required alignment of the base address (power of two) */
} thinker_memory_request;

typedef struct {
    uint32_t count;
    thinker_memory_request request[THINKER_MAX_MEMORY];
} thinker_memory_plan;

typedef struct {
    uint32_t kind; /* THINKER_MEM_* */
    void *base;
    size_t size;
} thinker_memory;

/* Optional human-readable detail of the last failure (naming the op, tensor or section). */
typedef struct {
    char text[160];
} thinker_message;

/* dtype codes are the model.bin codes */
#define THINKER_INT8 1
#define THINKER_UINT8 2
#define THINKER_INT16 3
#define THINKER_INT32 4
#define THINKER_INT64 5
#define THINKER_FLOAT32 6
#define THINKER_INT4 7
#define THINKER_MAX_DIMS 6

typedef struct {
    const char *name;   /* points into model.bin */
    uint32_t id;        /* tensor id in model.bin */
    uint32_t dtype;     /* THINKER_INT8 ... */
    uint32_t ndim;
    uint32_t dims[THINKER_MAX_DIMS];
    int32_t exponent;   /* real value = int / 2**exponent, when has_exponent */
    uint32_t has_exponent;
    uint32_t nbytes;
    uint32_t memory;    /* THINKER_MEM_FLASH / PSRAM / SHARE */
    uint32_t flags;     /* model.bin flags: 1 constant, 2 input, 4 output, 8 exponent */
} thinker_tensor_info;

typedef struct {
    const char *type;   /* e.g. "Conv2dInt" */
    const char *name;
    uint32_t n_inputs, n_outputs;
} thinker_op_info;

typedef struct thinker_model thinker_model;
typedef struct thinker_executor thinker_executor;

/* --- lifecycle ------------------------------------------------------------------------- */
thinker_status thinker_initialize(void);
thinker_status thinker_uninitialize(void);

/* Validates the whole model.bin (magic, version, size, CRC, every id and offset, every op's
 * attributes and shapes) and fills the buffers it needs. */
thinker_status thinker_get_memory_plan(const void *model_bin, size_t size,
                                       thinker_memory_plan *plan, thinker_message *message);

/* Validates again, lays out the model's tables in the STATE buffer, copies constants placed in
 * PSRAM/share-memory into their arena, and prepares every op. `model_bin` must be 16-byte
 * aligned (weights are used in place). */
thinker_status thinker_model_init(thinker_model **model, const void *model_bin, size_t size,
                                  const thinker_memory *memory, uint32_t count,
                                  thinker_message *message);
thinker_status thinker_model_release(thinker_model *model);

thinker_status thinker_executor_create(thinker_executor **executor, thinker_model *model);
thinker_status thinker_executor_release(thinker_executor *executor);

/* --- inputs and outputs ----------------------------------------------------------------- */
thinker_status thinker_get_input_count(const thinker_executor *executor, uint32_t *count);
thinker_status thinker_get_output_count(const thinker_executor *executor, uint32_t *count);
thinker_status thinker_get_input_info(const thinker_executor *executor, uint32_t index,
                                      thinker_tensor_info *info);
thinker_status thinker_get_output_info(const thinker_executor *executor, uint32_t index,
                                       thinker_tensor_info *info);
/* Copies exactly info.nbytes bytes (little-endian, C order) into the input's arena slot. */
thinker_status thinker_set_input(thinker_executor *executor, uint32_t index, const void *data,
                                 size_t nbytes);
thinker_status thinker_forward(thinker_executor *executor);
/* Points at the output inside its arena: valid until the next forward. */
thinker_status thinker_get_output(const thinker_executor *executor, uint32_t index,
                                  const void **data, size_t *nbytes);

/* --- streams and dynamic axes (docs/streaming.md) ---------------------------------------- */
/* Length `length` for axis `axis` of input `index` (a dynamic axis: tpacker --dynamic_shape, or
 * the chunk axis of tpacker --isstream). Allowed: MIN, MIN + FACTOR, ... <= MAX; anything else
 * is THINKER_ERR_INPUT (the message names the input and MIN:MAX:FACTOR) and changes nothing.
 * Every shape that follows the axis is recomputed and every op prepared again (only when the
 * length changes); memory stays within the plan made for MAX. Call it before thinker_set_input:
 * inputs and outputs then have the new shape (thinker_get_input_info / _output_info). */
thinker_status thinker_update_shape(thinker_executor *executor, uint32_t index, uint32_t axis,
                                    uint32_t length);
/* MIN, MAX, FACTOR and the current length of a dynamic axis (NULL pointers are skipped);
 * THINKER_ERR_ARGUMENT when the axis is not dynamic. */
thinker_status thinker_get_dynamic_axis(const thinker_executor *executor, uint32_t index,
                                        uint32_t axis, uint32_t *minimum, uint32_t *maximum,
                                        uint32_t *factor, uint32_t *current);
/* A streaming model (tpacker --isstream) carries its states from one thinker_forward to the
 * next by itself; the caller feeds only the other inputs. thinker_reset starts a new stream
 * (every state zero, as after thinker_model_init). */
thinker_status thinker_reset(thinker_executor *executor);
/* Number of carried states and their total bytes (the history inputs, inside the arenas). */
thinker_status thinker_get_stream_info(const thinker_executor *executor, uint32_t *count,
                                       uint32_t *state_bytes);
/* State `k` (< count): the graph input index of its history and the graph output index of the
 * state written by each forward (the caller feeds and reads neither). */
thinker_status thinker_get_stream_pair(const thinker_executor *executor, uint32_t k,
                                       uint32_t *input_index, uint32_t *output_index);

/* --- inspection (profiling, CRC dumps, debugging) ---------------------------------------- */
thinker_status thinker_get_op_count(const thinker_model *model, uint32_t *count);
thinker_status thinker_get_op_info(const thinker_model *model, uint32_t index,
                                   thinker_op_info *info);
/* Tensor id of input/output `slot` of op `index` (0xFFFFFFFF for an omitted optional input). */
thinker_status thinker_get_op_tensor(const thinker_model *model, uint32_t index, int is_output,
                                     uint32_t slot, uint32_t *tensor_id);
thinker_status thinker_get_tensor_count(const thinker_model *model, uint32_t *count);
thinker_status thinker_get_tensor_info(const thinker_model *model, uint32_t id,
                                       thinker_tensor_info *info);
/* Current bytes of any tensor (activations: valid right after the op that wrote them). */
thinker_status thinker_get_tensor_data(const thinker_executor *executor, uint32_t id,
                                       const void **data, size_t *nbytes);
/* Runs op `index` only; thinker_forward is these in order. */
thinker_status thinker_forward_op(thinker_executor *executor, uint32_t index);
/* Detail of the last failing call on this executor (empty when none). */
const char *thinker_executor_message(const thinker_executor *executor);

const char *thinker_status_name(thinker_status status);
/* IEEE CRC-32 (zlib's crc32): `crc` is 0 for a fresh sum, or a previous result to continue. */
uint32_t thinker_crc32(uint32_t crc, const void *data, size_t size);

#ifdef __cplusplus
}
#endif
#endif /* THINKER_H */
