/* Shared by the executor's sources: the decoded view of a model.bin and the op interface.
 *
 * The model keeps no copy of the tensor table: a tensor record (48 bytes in model.bin) is
 * decoded on demand (thk_tensor_get), which keeps the STATE buffer to one small record per op
 * and lets get_memory_plan prepare every op before any buffer exists. */
#ifndef THINKER_INTERNAL_H
#define THINKER_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "thinker.h"

#define THK_NO_TENSOR 0xFFFFFFFFu
#define THK_HEADER_SIZE 64u
#define THK_TENSOR_RECORD 48u
#define THK_MAX_SECTIONS 64u
#define THK_ARENA_KINDS 4u /* index by memory kind 0..3; 2 PSRAM, 3 share-memory */

#define THK_FLAG_CONSTANT 1u
#define THK_FLAG_INPUT 2u
#define THK_FLAG_OUTPUT 4u
#define THK_FLAG_EXPONENT 8u

/* attribute value types (docs/format.md) */
#define THK_ATTR_INT 1
#define THK_ATTR_FLOAT 2
#define THK_ATTR_INTS 3
#define THK_ATTR_FLOATS 4
#define THK_ATTR_STRING 5

/* little-endian reads that never assume alignment */
static inline uint32_t thk_rd32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static inline uint16_t thk_rd16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }

/* One tensor, decoded from its record; `data` is NULL while only planning. */
typedef struct {
    const char *name;
    uint8_t dtype, ndim, memory, flags;
    int32_t exponent;
    uint32_t dims[THINKER_MAX_DIMS];
    uint32_t count; /* number of elements */
    uint32_t offset, nbytes, data_offset;
    uint8_t *data;        /* where the executor reads/writes it; NULL while only planning */
    const uint8_t *init;  /* a constant's bytes inside params (usable while planning), else NULL */
} thk_tensor;

/* Output stage of an accumulating op (conv, linear, batchnorm): see ops/accumulate.c. */
typedef struct {
    int32_t shift;      /* q_x + q_w - q_o */
    int32_t qin;        /* q_x + q_w: exponent of the accumulator */
    int64_t lo, hi;     /* saturation to o_bits intersected with the fused activation */
    uint8_t out_float;  /* no o_bits: float32 acc / 2**qin */
    uint8_t acc32;      /* |sum of products| < 2**31 proven from the weights at init */
    uint8_t round_mode; /* THK_ROUND_* of the op's quant_mode (qmath.h) */
} thk_outstage;

typedef struct {
    thk_outstage st;
    uint32_t kh, kw, sh, sw, dh, dw, pt, pl, pb, pr, oph, opw, group;
    uint32_t tile;  /* tiled GEMM rows per tile, from the planned region (thk_gemm_tile_in) */
    uint8_t fast;   /* int8 input and 8/4-bit weights with an int32 accumulator */
    uint8_t out32;  /* int8 output rounded in int32 arithmetic (ops/gemm_s8.c, thk_gemm_out32) */
    uint8_t lean;   /* planned without scratch (tpacker --scratch fit) on int8 x and int8 w with
                       an int32 accumulator: the scratch-free direct loops (conv_lean, linear) */
#ifdef THINKER_HOST_KERNELS
    void *host;     /* host builds: its job on the compiled x86 kernels (host/), or NULL */
#endif
} thk_conv_params;

typedef struct {
    uint32_t kernel[2], strides[2], pads[4], dilations[2], out[2], spatial;
    int32_t shift;          /* avgpool: q_x - q_o */
    int64_t lo, hi;         /* avgpool: output range */
    int64_t uniform;        /* avgpool: the divisor when every window has the same one */
    int32_t pow2_bits;      /* avgpool: log2(uniform) + 1 when uniform is a power of two, else -1 */
    int32_t override;       /* avgpool: divisor_override, or -1 */
    uint8_t include_pad;
    uint8_t round_mode;     /* avgpool: THK_ROUND_* of quant_mode */
} thk_pool_params;

typedef struct {
    int32_t sx, sy;        /* rescale shifts of the two inputs (iqAdd/iqSub), or product (iqMul) */
    int32_t sw;            /* PRelu: negative branch shift */
    int64_t lo, hi;        /* output range */
    int64_t clip_lo, clip_hi; /* Clip on integers */
    uint32_t fclip_lo, fclip_hi; /* Clip on float32: the bounds' bits */
    int32_t axis;          /* iqCat/Concat/Split/Gather axis */
    int32_t q;             /* Quant/Dequant exponent */
    uint8_t round_mode;    /* Quant/Requant/iqAdd/iqSub/iqMul/iqCat: THK_ROUND_* of quant_mode */
} thk_elem_params;

typedef struct {
    int64_t start[THINKER_MAX_DIMS], step[THINKER_MAX_DIMS]; /* Slice */
    uint32_t before[THINKER_MAX_DIMS];                       /* Pad */
    uint8_t perm[THINKER_MAX_DIMS];                          /* Transpose */
    uint8_t mode;                                            /* Pad: 0 constant 1 reflect 2 edge */
    int64_t ivalue;                                          /* Pad constant (integer tensors) */
    uint32_t fvalue;                                         /* Pad constant (float tensors): bits */
    int32_t axis;
} thk_move_params;

typedef struct {
    int32_t in_shift;       /* rshift_round of the input to the kernel's Q (qx - kernel input Q) */
    int32_t out_shift;      /* rescale of the kernel's output (kernel output Q - qo) */
    int64_t lo, hi;         /* output range (o_bits) */
    int64_t eps_q;          /* LayerNormInt: the integer eps (attribute eps_q) */
    uint32_t outer, len, inner; /* rows: `len` elements `inner` apart, outer * inner of them */
    uint8_t family;         /* THK_NL_* of nonlinear_tables.h */
    uint8_t function;       /* iqSigmoid / iqTanh: THK_PWL_* */
    uint8_t has_bias;       /* LayerNormInt */
} thk_nonlinear_params;

typedef struct {
    int32_t shift;          /* iqSum q_x - q_o, iqVar 2 q_x - q_o, BmmInt q_x + q_y - q_o */
    int64_t lo, hi;         /* output range (o_bits) */
    int64_t divisor;        /* iqSum: divisor; iqVar: n (n - c) */
    uint32_t axes;          /* iqSum / iqVar: bit d set when axis d is reduced */
    uint32_t count;         /* iqVar: n, the number of reduced elements */
    uint32_t m, k, n;       /* BmmInt: [M, K] @ [K, N] */
    uint8_t fast;           /* BmmInt: int8 @ int8 with |sum| < 2**31 */
    uint8_t round_mode;     /* BmmInt: THK_ROUND_* of quant_mode */
} thk_reduce_params;

typedef struct {
    int32_t s_x, s_h;       /* q_x + q_iw - Q_in, q_h + q_hw - Q_in: the projections to the gates' Q */
    int32_t qh;             /* q_h */
    int32_t s_o;            /* q_h - q_o: Y from h */
    uint32_t steps, batch, in_f, hidden;
    uint8_t o_bits, h_bits; /* Y and h saturate to these */
    uint8_t family;         /* THK_FAMILY_* (ops.h) */
    uint8_t cell;           /* LSTMInt */
    uint8_t has_h, has_c, bias, batch_first, forward;
    uint8_t acc32_x, acc32_h; /* |x W_ih| / |h W_hh| sums < 2**31, proven from the weights */
} thk_rnn_params;

typedef union {
    thk_conv_params conv;
    thk_pool_params pool;
    thk_elem_params elem;
    thk_move_params move;
    thk_nonlinear_params nl;
    thk_reduce_params red;
    thk_rnn_params rnn;
} thk_params;

struct thinker_model;
typedef struct thk_op thk_op;

/* What an op's prepare step reports besides its params. */
typedef struct {
    uint32_t scratch; /* bytes of kernel workspace needed by run */
    uint32_t budget;  /* in: the op's planned scratch region (model.bin section 9; 0 without
                         one); conv and linear take their scratch-free path when their fast
                         path needs more (twin: thinker.memory.scratch.op_scratch) */
#ifdef THINKER_HOST_KERNELS
    uint8_t *host_region; /* in: where its host-kernel job may go (NULL while planning) */
    uint32_t host_room;   /* in: the bytes there */
    uint32_t host;        /* out: the bytes its job takes (planning: would take) */
#endif
} thk_needs;

typedef struct {
    const struct thinker_model *model;
    const thk_op *op;
    uint8_t *scratch;
    uint32_t scratch_size;
    thinker_message *message;
} thk_run_ctx;

typedef thinker_status (*thk_prepare_fn)(const struct thinker_model *m, thk_op *op, thk_needs *needs,
                                         thinker_message *message);
typedef thinker_status (*thk_run_fn)(thk_run_ctx *ctx);

typedef thinker_status (*thk_rules_fn)(const struct thinker_model *m, const thk_op *op, thinker_message *msg);

/* Model rules an op type opts into (rules.c, thk_check_op_rules) */
#define THK_RULE_MODE 1u       /* rounds with quant_mode (thinker.ops.rounding.MODE_OPS) */
#define THK_RULE_FLOAT_OUT 2u  /* without o_bits: a float32 output at q_x + q_w */
#define THK_RULE_WEIGHTS 4u    /* inputs 1 and 2: integer constants within int32 */
#define THK_RULE_WEIGHT 8u     /* input 1: an integer constant within int32 */
#define THK_RULE_RECURRENT 16u /* every integer constant input within int32 */
#define THK_RULE_OPERAND 32u   /* input 1: a constant integer tensor */
#define THK_RULE_OPERANDS 64u  /* inputs 1..4: constant integer tensors (Slice) */

typedef struct {
    const char *type;
    thk_prepare_fn prepare;
    thk_run_fn run;
    thk_rules_fn rules;     /* the op's own rules (rules.c: geometry, Clip, Pad), or NULL */
    uint8_t min_in, max_in; /* Op.min_inputs / max_inputs of the numpy op; max 0: any number */
    uint8_t optional;       /* bit k: input k < min_in may be omitted (Op.optional_inputs) */
    uint8_t flags;          /* THK_RULE_* */
} thk_op_def;

struct thk_op {
    const thk_op_def *def;
    const uint8_t *record; /* the op record in model.bin */
    const char *type;
    const char *name;
    const uint8_t *ids;    /* n_in + n_out little-endian u32 */
    const uint8_t *attrs;  /* first attribute record */
    const char *strings;   /* the model's strings section (attribute names) */
    uint16_t n_in, n_out, n_attrs;
    thk_params p;
    uint8_t *scratch;      /* its planned kernel scratch region in an arena (model.bin
                              section 9), NULL when its prepare needs none */
    uint32_t scratch_size; /* the region's recorded size (>= the prepare's need) */
};

struct thinker_executor {
    struct thinker_model *model;
    uint8_t created;
    thinker_message message;
};

typedef struct thinker_model {
    uint32_t alive; /* THK_ALIVE while initialised */
    const uint8_t *bin;
    size_t size;
    const char *strings;
    uint32_t strings_size;
    const uint8_t *params;
    uint32_t params_size;
    const uint8_t *tensor_records;
    uint32_t n_tensors;
    const uint8_t *op_records;
    uint32_t ops_size;
    uint32_t n_ops;
    const uint8_t *io_ids; /* inputs then outputs */
    uint32_t n_inputs, n_outputs;
    uint32_t arena_size[THK_ARENA_KINDS], arena_align[THK_ARENA_KINDS];
    uint8_t arena_present[THK_ARENA_KINDS];
    uint8_t *arena[THK_ARENA_KINDS];
    uint32_t scratch_needed;          /* the largest op's kernel scratch need */
    const uint8_t *scratch_records;   /* section 9: u32 op, kind, offset, size per record */
    uint32_t n_scratch;
    const uint8_t *dyn_records;       /* section 7: u32 input id, axis, min, max, factor */
    uint32_t n_dyn;
    const uint8_t *stream_records;    /* section 10: u32 history input id, u32 state output id */
    uint32_t n_streams;
    const uint8_t *shape_rules;       /* section 11: u32 id, axis, rule, i32 mul, add, u32 div */
    uint32_t n_shape_rules;
    uint32_t *dyn_len;                /* current length per dynamic axis (STATE), NULL: the plan's */
    uint32_t *rule_dim;               /* current dim per shape rule (STATE), NULL: the records' */
    thk_op *ops; /* n_ops records in the STATE buffer (NULL while planning) */
#ifdef THINKER_HOST_KERNELS
    uint32_t host_bytes;  /* planning: the STATE the ops' host-kernel jobs would take */
    uint8_t *host_region; /* init: where they go (64-aligned), host_room bytes */
    uint32_t host_room;
    uint32_t *host_slot;  /* per op: the bytes of its job's slot (STATE), 0: none */
    uint8_t host_fixed;   /* slots set (after init's prepare) */
#endif
    struct thinker_executor executor;
} thinker_model;

#define THK_ALIVE 0x4B4E4854u

/* model_reader.c */
thinker_status thk_parse(thinker_model *m, const void *bin, size_t size, thinker_message *msg);
void thk_tensor_get(const thinker_model *m, uint32_t id, thk_tensor *t);
const char *thk_string(const thinker_model *m, uint32_t offset); /* validated offsets only */
thinker_status thk_prepare_ops(thinker_model *m, thk_op *ops, thinker_message *msg);

/* stream.c: streams (history <- state after each forward) and dynamic axes */
uint32_t thk_dynamic_bytes(const thinker_model *m); /* STATE bytes after the op records */
void thk_dynamic_init(thinker_model *m, uint8_t *base); /* lengths at MAX; histories zeroed later */
void thk_stream_reset(thinker_model *m);
void thk_stream_carry(thinker_model *m);

/* rules.c: the model rules of thinker/resource/rules.py */
thinker_status thk_check_attrs(const thinker_model *m, const char *op_type, const char *name,
                               const uint8_t *attrs, uint32_t n_attrs, thinker_message *msg);
thinker_status thk_check_records(const thinker_model *m, thinker_message *msg);
thinker_status thk_check_op_rules(const thinker_model *m, thk_op *op, thinker_message *msg);
/* the op-specific rules an op_table entry points to (only the compiled ops' are linked) */
thinker_status thk_clip_rules(const thinker_model *m, const thk_op *op, thinker_message *msg);
thinker_status thk_maxpool_rules(const thinker_model *m, const thk_op *op, thinker_message *msg);
thinker_status thk_avgpool_rules(const thinker_model *m, const thk_op *op, thinker_message *msg);
thinker_status thk_conv_rules(const thinker_model *m, const thk_op *op, thinker_message *msg);
thinker_status thk_pad_rules(const thinker_model *m, const thk_op *op, thinker_message *msg);

/* op_table.c */
const thk_op_def *thk_find_op(const char *type);

/* messages (never longer than thinker_message.text) */
void thk_msg(thinker_message *msg, const char *a, const char *b, const char *c);
thinker_status thk_op_error(thinker_message *msg, const thk_op *op, thinker_status status,
                            const char *what);
/* thk_op_error with THINKER_ERR_MODEL (THK_BAD): one argument less at each of its call sites */
thinker_status thk_bad(thinker_message *msg, const thk_op *op, const char *what);

/* attrs.c: attribute lookup on an op; each returns 1 when found and valid */
const uint8_t *thk_attr_find(const thk_op *op, const char *name, uint32_t *type, uint32_t *count);
int thk_attr_has(const thk_op *op, const char *name);
int thk_attr_int(const thk_op *op, const char *name, int64_t *value);
/* ints list: fills up to `cap` values, returns the count (or -1 when absent or not ints) */
int thk_attr_ints(const thk_op *op, const char *name, int64_t *values, int cap);
int thk_attr_string(const thk_op *m_op, const thinker_model *m, const char *name, const char **s);
/* exponent of a scale attribute (exact power of two): 1 found, 0 absent, -1 not a power of two */
int thk_attr_exponent(const thk_op *op, const char *name, int32_t *q);
/* the same on an attribute's type and first word: 1 a power of two (*q), -1 not */
int thk_scale_exponent(uint32_t type, uint32_t bits, int32_t *q);

/* tensors.c */
uint32_t thk_op_id(const thk_op *op, int is_output, uint32_t slot);
/* input `slot` of an op: 0 when omitted (or beyond n_in), else 1 and *t filled */
int thk_op_input(const thinker_model *m, const thk_op *op, uint32_t slot, thk_tensor *t);
void thk_op_output(const thinker_model *m, const thk_op *op, uint32_t slot, thk_tensor *t);
uint32_t thk_dtype_size(uint32_t dtype);
int thk_streq(const char *a, const char *b); /* strcmp's code is large on newlib */
int thk_is_int(uint32_t dtype); /* int8, uint8, int16, int32, int64 */
int64_t thk_load_int(const void *data, uint32_t dtype, uint32_t index);
void thk_store_int(void *data, uint32_t dtype, uint32_t index, int64_t value);
int thk_same_dims(const thk_tensor *a, const thk_tensor *b);
/* integer range of `bits` in {4, 8, 16, 32}; returns 0 for other widths */
int thk_bits_range(int64_t bits, int64_t *lo, int64_t *hi, uint32_t *dtype);
/* The number an op reads from constant input `slot` (a single value), else from attribute
 * `attr`: 0 absent, 1 an integer (*v, exact), 2 a float32 (*bits), -1 the input is not a single
 * constant. */
int thk_const_number(const thinker_model *m, const thk_op *op, uint32_t slot, const char *attr, int64_t *v,
                     uint32_t *bits);
/* float32 bits as an int32 ordered like the floats (NaN excluded; -0 and +0 equal) */
int32_t thk_f32_key(uint32_t bits);
#define THK_F32_NAN(bits) (((bits) & 0x7FFFFFFFu) > 0x7F800000u)
/* the constant integers of input `slot` (int or float tensor holding integers), up to `cap` */
int thk_const_ints(const thinker_model *m, const thk_op *op, uint32_t slot, int64_t *values, int cap);

#ifdef THINKER_HOST_KERNELS
#define THK_HOST_PLAN_LIMIT (1u << 30) /* jobs planned in all, at most (STATE stays < 4 GiB) */
/* host/executor_kernels.c (host builds only): an int8 conv (group 1 or depthwise) or linear
 * (a 1x1 conv over its rows) on the compiled x86 kernels */
typedef struct {
    uint32_t n, c, h, w, o, kh, kw, sh, sw, dh, dw, pt, pl, pb, pr, ho, wo, group;
    int32_t out_bytes;
} thk_host_shape;
/* The STATE bytes the op's job takes, 0 where the kernels do not apply (this CPU, these
 * parameters, THINKER_HOST_KERNELS=0); weight_abs_sum: the largest sum of |w| of an output.
 * Planning (region NULL): the bytes it would take. Else builds the job in `region` when it
 * fits in `room` (*job set; else 0 and NULL). */
uint32_t thk_host_conv_bind(const thk_host_shape *s, const thk_tensor *w, uint64_t weight_abs_sum,
                            const thk_tensor *bias, int has_bias, const thk_outstage *st,
                            uint8_t *region, uint32_t room, void **job);
/* runs a conv or linear op on its bound job: 1 (*status: THINKER_OK, or THINKER_ERR_RUNTIME
 * with the message set when the kernel refused the job), 0 when it has none */
int thk_host_conv_run(const thk_run_ctx *ctx, thinker_status *status);
#endif

#endif
