/* Host builds only: the C executor's int8 convs, depthwise convs and linears on the compiled
 * x86 kernels (conv_vnni.c, depthwise_vnni.c, conv_avxvnni.c) where the CPU has them, the same
 * kernels the numpy executor calls. Device builds never compile this file (no
 * THINKER_HOST_KERNELS).
 *
 * A job lives in the STATE buffer, after the executor's own records: the job, the per-channel
 * constants (bias + half - 128 * sum(w)), the packed weights (dense convs and linears; a
 * depthwise conv reads its [C][kh*kw] weights in place) and the kernel's work. The plan asks
 * for those bytes (thinker_get_memory_plan); at init an op takes its job only where the STATE
 * the caller gave still has room, else it runs the portable kernels, with the same integers;
 * each job keeps its slot when a dynamic length changes (thk_prepare_ops).
 * THINKER_HOST_KERNELS=0 in the environment plans and takes none. */
#include <stdlib.h>

#include "ops/ops.h"
#include "thinker_host.h"

#define JOB_ALIGN 64u

typedef struct {
    thinker_host_conv job;
    int32_t depthwise;
} host_job;

static uint64_t align64(uint64_t v) { return (v + JOB_ALIGN - 1) & ~(uint64_t)(JOB_ALIGN - 1); }

static int disabled(void)
{
    const char *v = getenv("THINKER_HOST_KERNELS");
    return v && v[0] == '0' && !v[1];
}

/* The kernels' limits (thinker.ops.host_kernels.host_conv): an integer output of at most 16
 * bits, the default rounding, a right shift of 0..31, and acc + bias + half inside int32. */
static int stage_fits(const thk_outstage *st, uint64_t weight_abs_sum, const thk_tensor *bias,
                      int has_bias, int64_t *half)
{
    uint64_t bias_max = 0;
    uint32_t i;
    if (st->out_float || st->round_mode != THK_ROUND_FLOOR_ADD || st->shift < 0 || st->shift > 31 ||
        st->lo < -32768 || st->hi > 32767)
        return 0;
    *half = st->shift > 0 ? (int64_t)1 << (st->shift - 1) : 0;
    for (i = 0; has_bias && i < bias->count; i++) {
        int64_t b = thk_load_int(bias->init, bias->dtype, i);
        uint64_t a = b < 0 ? (uint64_t)0 - (uint64_t)b : (uint64_t)b;
        if (a > bias_max) bias_max = a;
    }
    return thk_add_sat(thk_add_sat(thk_mul_sat(128u, weight_abs_sum), bias_max), (uint64_t)*half) <
           ((uint64_t)1 << 31);
}

uint32_t thk_host_conv_bind(const thk_host_shape *s, const thk_tensor *w, uint64_t weight_abs_sum,
                            const thk_tensor *bias, int has_bias, const thk_outstage *st,
                            uint8_t *region, uint32_t room, void **bound)
{
    thinker_host_conv j;
    int64_t half, work, corr_bytes, packed;
    uint64_t need;
    uint32_t o, k, taps = s->kh * s->kw, per_out = w->count / (s->o ? s->o : 1);
    int depthwise = s->group > 1;
    *bound = NULL;
    if (disabled() || w->dtype != THINKER_INT8 || (s->group != 1 && !(depthwise && s->group == s->o &&
        s->group == s->c && per_out == taps)) || !stage_fits(st, weight_abs_sum, bias, has_bias, &half))
        return 0;
    memset(&j, 0, sizeof j);
    j.n = (int32_t)s->n; j.c = (int32_t)s->c; j.h = (int32_t)s->h; j.w_in = (int32_t)s->w;
    j.o = (int32_t)s->o; j.kh = (int32_t)s->kh; j.kw = (int32_t)s->kw;
    j.sh = (int32_t)s->sh; j.sw = (int32_t)s->sw; j.dh = (int32_t)s->dh; j.dw = (int32_t)s->dw;
    j.pt = (int32_t)s->pt; j.pl = (int32_t)s->pl; j.pb = (int32_t)s->pb; j.pr = (int32_t)s->pr;
    j.ho = (int32_t)s->ho; j.wo = (int32_t)s->wo;
    j.shift = st->shift; j.lo = (int32_t)st->lo; j.hi = (int32_t)st->hi;
    j.out_bytes = s->out_bytes;
    work = depthwise ? thinker_host_depthwise_work_bytes(&j) : thinker_host_conv_work_bytes(&j);
    if (work < 0) return 0;
    corr_bytes = ((int64_t)s->o + 15) / 16 * 16 * 4;
    packed = depthwise ? 0 : thinker_host_packed_weight_bytes(j.o, j.c, (int32_t)taps);
    need = align64(sizeof(host_job)) + align64((uint64_t)corr_bytes) + align64((uint64_t)packed) +
           align64((uint64_t)work);
    if (need > 0x7FFFFFF0u) return 0;
    if (!region) return (uint32_t)need; /* planning */
    if (need > room) return 0;
    {
        host_job *h = (host_job *)(void *)region;
        int32_t *corr = (int32_t *)(void *)(region + align64(sizeof(host_job)));
        int8_t *pack = (int8_t *)corr + align64((uint64_t)corr_bytes);
        const int8_t *wv = (const int8_t *)w->init;
        memset(corr, 0, (size_t)corr_bytes);
        for (o = 0; o < s->o; o++) { /* bias + half - 128 * sum(w): the kernels add 128 to x */
            int64_t sum = 0;
            for (k = 0; k < per_out; k++) sum += wv[(size_t)o * per_out + k];
            /* the bias's bytes in model.bin: an arena copy is made only after prepare */
            int64_t b = has_bias ? thk_load_int(bias->init, bias->dtype, bias->count == 1 ? 0 : o) : 0;
            corr[o] = (int32_t)(b + half - 128 * sum);
        }
        if (!depthwise) thinker_host_pack_conv_weights(wv, j.o, j.c, (int32_t)taps, pack);
        j.w = depthwise ? wv : pack;
        j.corr = corr;
        j.work = (uint8_t *)pack + align64((uint64_t)packed);
        j.work_bytes = work;
        h->job = j;
        h->depthwise = depthwise;
        *bound = h;
    }
    return (uint32_t)need;
}

int thk_host_conv_run(const thk_run_ctx *ctx, thinker_status *status)
{
    host_job *h = (host_job *)ctx->op->p.conv.host;
    thk_tensor x, out;
    int refused;
    if (!h) return 0;
    thk_op_input(ctx->model, ctx->op, 0, &x);
    thk_op_output(ctx->model, ctx->op, 0, &out);
    h->job.x = (const int8_t *)x.data;
    h->job.out = out.data;
    /* the job was sized and checked when it was bound; a refusal means the CPU's kernel
     * changed since (THINKER_HOST_ISA set between init and this forward) */
    refused = h->depthwise ? thinker_host_depthwise_s8(&h->job) : thinker_host_conv_s8(&h->job);
    *status = refused ? thk_op_error(ctx->message, ctx->op, THINKER_ERR_RUNTIME,
                                     "the compiled host kernel refused its job (host CPU features "
                                     "changed)")
                      : THINKER_OK;
    return 1;
}
