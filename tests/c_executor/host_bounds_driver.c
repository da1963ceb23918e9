/* Bounds and exactness driver for the host-only kernels (executor/host/): random dense,
 * linear, depthwise and whole-map depthwise int8 convs, and mean_rows jobs, each buffer in
 * its own mmap'd region next to a PROT_NONE guard page (pass 0: the buffer ends at the guard;
 * pass 1: it starts right after one; for ``out`` the guard sits before the 16-element front
 * margin the callers allocate), so a stray read or write past either end faults. Outputs are
 * compared with a plain int64 scalar reference written from the definition (not from the
 * kernels), on a first call (prepared = 0, garbage in ``work``) and a second call of the same
 * job (as the first call left it) on new input values.
 *
 *   cc -O1 -g -march=native -Iexecutor/host executor/host/{conv_vnni,conv_avxvnni,depthwise_vnni,mean_rows,chain}.c \
 *      tests/c_executor/host_bounds_driver.c -o host_bounds_driver
 *   ./host_bounds_driver SEED [JOBS]
 *
 * Prints each run's job before it starts (so a crash is attributable; a SIGSEGV handler
 * also names the guard page hit), then "OK <jobs> jobs ..." and exit 0, or the mismatches
 * and exit 1. Exit 77: the CPU has no AVX-512 VNNI (nothing to test). */
#define _GNU_SOURCE
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "thinker_host.h"

#define MARGIN 16       /* output elements before ``out`` the kernels may address */
#define MAX_MACS 3000000 /* reference cost cap per job (keeps the run short) */
#define MAX_BIG_MACS 40000000 /* for the large maps that take several work chunks */
#define MAX_FAILS 10

/* ---- random numbers (splitmix64) ---- */
static uint64_t rng_state;
static uint64_t next_u64(void)
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
/* uniform in [lo, hi] */
static int64_t rnd(int64_t lo, int64_t hi) { return lo + (int64_t)(next_u64() % (uint64_t)(hi - lo + 1)); }
static int chance(double p) { return (double)(next_u64() >> 11) / 9007199254740992.0 < p; }

/* ---- guarded buffers ---- */
typedef struct {
    const char *name;
    char *map;
    size_t map_len;
    char *guard; /* the PROT_NONE page */
} region;

#define MAX_REGIONS 8
static region regions[MAX_REGIONS];
static int region_count;
static long page;
static char current[512]; /* the run in progress, for the fault handler */

/* ``bytes`` bytes (plus ``front`` bytes before the returned pointer, for out's margin) in a
 * fresh mapping: at_start = 0 puts the buffer's end at a guard page, 1 puts its start (the
 * front margin's start) right after one. */
static void *guarded(const char *name, size_t bytes, size_t front, int at_start)
{
    const size_t total = bytes + front;
    const size_t span = (total + (size_t)page - 1) / (size_t)page * (size_t)page;
    const size_t len = span + (size_t)page;
    char *map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (map == MAP_FAILED) {
        perror("mmap");
        exit(2);
    }
    char *guard = at_start ? map : map + span;
    if (mprotect(guard, (size_t)page, PROT_NONE) != 0) {
        perror("mprotect");
        exit(2);
    }
    if (region_count == MAX_REGIONS) {
        fprintf(stderr, "too many regions\n");
        exit(2);
    }
    regions[region_count++] = (region){name, map, len, guard};
    char *start = at_start ? map + page : map + span - total;
    return start + front;
}

static void release_all(void)
{
    for (int i = 0; i < region_count; i++)
        munmap(regions[i].map, regions[i].map_len);
    region_count = 0;
}

static void on_fault(int sig, siginfo_t *info, void *ctx)
{
    (void)ctx;
    char msg[1024];
    const char *which = "no guard page (elsewhere)";
    for (int i = 0; i < region_count; i++) {
        const char *a = (const char *)info->si_addr;
        if (a >= regions[i].guard && a < regions[i].guard + page) {
            which = regions[i].name;
            break;
        }
    }
    int len = snprintf(msg, sizeof msg, "\nCRASH: signal %d at %p (guard of: %s) during: %s\n",
                       sig, info->si_addr, which, current);
    if (len > 0)
        (void)!write(1, msg, (size_t)(len < (int)sizeof msg ? len : (int)sizeof msg - 1));
    _exit(3);
}

/* ---- conv jobs ---- */
enum { DENSE, LINEAR, DEPTHWISE, WHOLE_MAP, KINDS };
static const char *kind_names[KINDS] = {"dense", "linear", "depthwise", "whole-map"};

typedef struct {
    int kind, big;
    int n, c, h, w, o, kh, kw, sh, sw, dh, dw, pt, pl, pb, pr, ho, wo;
    int shift, lo, hi, out_bytes;
    int8_t *wt;   /* [o][c][kh][kw] (dense), [c][kh][kw] (depthwise) */
    int32_t *bias; /* [o] */
} spec;

static void describe(const spec *s, char *buf, size_t size)
{
    snprintf(buf, size,
             "%s n=%d c=%d h=%d w=%d o=%d k=%dx%d s=%dx%d d=%dx%d pads(t,l,b,r)=%d,%d,%d,%d "
             "out=%dx%d shift=%d lo=%d hi=%d out_bytes=%d",
             kind_names[s->kind], s->n, s->c, s->h, s->w, s->o, s->kh, s->kw, s->sh, s->sw,
             s->dh, s->dw, s->pt, s->pl, s->pb, s->pr, s->ho, s->wo, s->shift, s->lo, s->hi,
             s->out_bytes);
}

/* output length along one axis, <= 0 when the kernel does not fit */
static int out_len(int in, int pad0, int pad1, int k, int stride, int dil)
{
    const int span = (k - 1) * dil + 1;
    if (in + pad0 + pad1 < span)
        return 0;
    return (in + pad0 + pad1 - span) / stride + 1;
}

static void pick_limits(spec *s)
{
    s->out_bytes = (int)rnd(1, 2);
    int lo = -128, hi = 127;
    if (s->out_bytes == 2 && chance(0.6)) {
        lo = -32768;
        hi = 32767;
    }
    const double r = (double)(next_u64() % 1000) / 1000.0;
    if (r < 0.2) { /* ReLU-like */
        lo = 0;
    } else if (r < 0.4) { /* a random clamp inside the range */
        const int a = (int)rnd(lo, hi), b = (int)rnd(lo, hi);
        lo = a < b ? a : b;
        hi = a < b ? b : a;
    } else if (r < 0.45 && s->out_bytes == 2) { /* a 4-bit output stored in int16 */
        lo = -8;
        hi = 7;
    }
    s->lo = lo;
    s->hi = hi;
}

static int small_or_large(int small, int large) { return chance(0.3) ? (int)rnd(1, large) : (int)rnd(1, small); }

/* a random job of ``kind``; 0 when its output is empty */
static int generate(spec *s, int kind)
{
    memset(s, 0, sizeof *s);
    s->kind = kind;
    s->sh = s->sw = s->dh = s->dw = 1;
    if (kind == LINEAR) {
        s->n = small_or_large(8, 200);
        s->c = chance(0.2) ? (int)rnd(1, 300) : (int)rnd(1, 40);
        s->o = chance(0.2) ? (int)rnd(1, 100) : (int)rnd(1, 40);
        s->h = s->w = s->kh = s->kw = 1;
    } else if (kind == WHOLE_MAP) {
        s->n = (int)rnd(1, 5);
        s->c = (int)rnd(1, 40);
        do {
            s->h = chance(0.4) ? 1 : small_or_large(6, 20);
            s->w = chance(0.2) ? 1 : small_or_large(8, 70);
        } while (s->h * s->w < 4 || s->h * s->w > 400);
        s->kh = s->h;
        s->kw = s->w;
        s->sh = (int)rnd(1, 3);
        s->sw = (int)rnd(1, 3);
        s->o = s->c;
    } else {
        s->n = (int)rnd(1, 5);
        s->c = (int)rnd(1, 40);
        s->o = kind == DEPTHWISE ? s->c : (int)rnd(1, 40);
        s->h = small_or_large(16, 70);
        s->w = small_or_large(16, 70);
        if (chance(0.08)) { /* inputs past the kernels' 512 KiB work chunk: several chunks */
            s->big = 1;
            s->n = (int)rnd(2, 5);
            s->c = (int)rnd(20, 40);
            s->o = kind == DEPTHWISE ? s->c : (int)rnd(1, 16);
            s->h = (int)rnd(40, 70);
            s->w = (int)rnd(40, 70);
        }
        s->kh = (int)rnd(1, 5);
        s->kw = (int)rnd(1, 5);
        if (chance(0.3))
            s->kh = s->kw = 3;
        s->sh = (int)rnd(1, 3);
        s->sw = (int)rnd(1, 3);
        if (chance(0.3))
            s->dh = (int)rnd(1, 3);
        if (chance(0.3))
            s->dw = (int)rnd(1, 3);
        s->pt = (int)rnd(0, 3);
        s->pl = (int)rnd(0, 3);
        s->pb = (int)rnd(0, 3);
        s->pr = (int)rnd(0, 3);
    }
    s->ho = out_len(s->h, s->pt, s->pb, s->kh, s->sh, s->dh);
    s->wo = out_len(s->w, s->pl, s->pr, s->kw, s->sw, s->dw);
    s->shift = (int)rnd(0, 12);
    pick_limits(s);
    return s->ho > 0 && s->wo > 0;
}

static int64_t macs(const spec *s)
{
    const int64_t taps = (int64_t)s->kh * s->kw * (s->kind == DEPTHWISE || s->kind == WHOLE_MAP ? 1 : s->c);
    return (int64_t)s->n * s->o * s->ho * s->wo * taps;
}

static int is_depthwise(const spec *s) { return s->kind == DEPTHWISE || s->kind == WHOLE_MAP; }

static void random_values(int8_t *dst, int64_t count, int scale)
{
    const int mode = (int)rnd(0, 9);
    for (int64_t i = 0; i < count; i++) {
        if (mode == 0)
            dst[i] = -128; /* extremes: the x + 128 = 0 and 255 ends */
        else if (mode == 1)
            dst[i] = 127;
        else if (mode == 2)
            dst[i] = chance(0.5) ? -128 : 127;
        else
            dst[i] = (int8_t)rnd(-scale - 1 < -128 ? -128 : -scale - 1, scale);
    }
}

static void make_weights(spec *s)
{
    const int64_t per = (int64_t)(is_depthwise(s) ? 1 : s->c) * s->kh * s->kw;
    s->wt = malloc((size_t)(s->o * per));
    s->bias = malloc(sizeof(int32_t) * (size_t)s->o);
    static const int scales[] = {1, 3, 15, 127};
    random_values(s->wt, s->o * per, scales[rnd(0, 3)]);
    const int64_t bias_range = chance(0.3) ? 0 : (int64_t)1 << rnd(0, 22);
    for (int i = 0; i < s->o; i++)
        s->bias[i] = (int32_t)rnd(-bias_range, bias_range);
}

static int64_t floor_div(int64_t a, int64_t b) /* b > 0 */
{
    return a >= 0 ? a / b : -((-a + b - 1) / b);
}

/* out[n][o][y][x] from the definition, in int64 */
static void reference(const spec *s, const int8_t *x, int32_t *out)
{
    const int64_t half = s->shift > 0 ? (int64_t)1 << (s->shift - 1) : 0;
    const int64_t scale = (int64_t)1 << s->shift;
    int64_t at = 0;
    for (int n = 0; n < s->n; n++)
        for (int o = 0; o < s->o; o++)
            for (int y = 0; y < s->ho; y++)
                for (int xo = 0; xo < s->wo; xo++) {
                    int64_t acc = 0;
                    const int c0 = is_depthwise(s) ? o : 0, c1 = is_depthwise(s) ? o + 1 : s->c;
                    for (int c = c0; c < c1; c++)
                        for (int i = 0; i < s->kh; i++) {
                            const int iy = y * s->sh + i * s->dh - s->pt;
                            if (iy < 0 || iy >= s->h)
                                continue;
                            for (int j = 0; j < s->kw; j++) {
                                const int ix = xo * s->sw + j * s->dw - s->pl;
                                if (ix < 0 || ix >= s->w)
                                    continue;
                                const int64_t wv = is_depthwise(s) ?
                                    s->wt[((int64_t)o * s->kh + i) * s->kw + j] :
                                    s->wt[(((int64_t)o * s->c + c) * s->kh + i) * s->kw + j];
                                acc += x[(((int64_t)n * s->c + c) * s->h + iy) * s->w + ix] * wv;
                            }
                        }
                    int64_t v = floor_div(acc + s->bias[o] + half, scale);
                    v = v < s->lo ? s->lo : v > s->hi ? s->hi : v;
                    out[at++] = (int32_t)v;
                }
}

/* [ceil(O/16)][kh*kw][ceil(C/4)][16][4], zeros past O and C */
static int8_t *pack(const spec *s, int64_t *bytes)
{
    const int ob = (s->o + 15) / 16, cb = (s->c + 3) / 4, taps = s->kh * s->kw;
    *bytes = (int64_t)ob * taps * cb * 64;
    int8_t *p = calloc((size_t)*bytes, 1);
    for (int b = 0; b < ob; b++)
        for (int t = 0; t < taps; t++)
            for (int g = 0; g < cb; g++)
                for (int oi = 0; oi < 16; oi++)
                    for (int ci = 0; ci < 4; ci++) {
                        const int o = b * 16 + oi, c = g * 4 + ci;
                        if (o < s->o && c < s->c)
                            p[((((int64_t)b * taps + t) * cb + g) * 16 + oi) * 4 + ci] =
                                s->wt[((int64_t)o * s->c + c) * taps + t];
                    }
    return p;
}

static int fails;

static int check(const spec *s, const char *when, const void *out, const int32_t *want, int64_t count,
                 int sentinel)
{
    const int64_t per_o = (int64_t)s->ho * s->wo;
    for (int64_t i = 0; i < count; i++) {
        const int32_t got = s->out_bytes == 1 ? ((const int8_t *)out)[i] : ((const int16_t *)out)[i];
        if (got != want[i]) {
            char d[400];
            describe(s, d, sizeof d);
            printf("MISMATCH %s: %s: at n=%" PRId64 " o=%" PRId64 " y=%" PRId64 " x=%" PRId64
                   " got %d want %d\n",
                   when, d, i / (per_o * s->o), i / per_o % s->o, i % per_o / s->wo, i % s->wo, got,
                   want[i]);
            fflush(stdout);
            return 0;
        }
    }
    const unsigned char *m = (const unsigned char *)out - MARGIN * s->out_bytes;
    for (int i = 0; i < MARGIN * s->out_bytes; i++)
        if (m[i] != (unsigned char)sentinel) {
            char d[400];
            describe(s, d, sizeof d);
            printf("MARGIN WRITTEN %s: %s: byte %d before out\n", when, d, MARGIN * s->out_bytes - i);
            fflush(stdout);
            return 0;
        }
    return 1;
}

/* both passes and both calls of one job; 0 on a mismatch */
static int run_conv(spec *s, int job_index)
{
    const int64_t in_count = (int64_t)s->n * s->c * s->h * s->w;
    const int64_t out_count = (int64_t)s->n * s->o * s->ho * s->wo;
    const int64_t corr_count = (int64_t)(s->o + 15) / 16 * 16;
    int8_t *xa = malloc((size_t)in_count), *xb = malloc((size_t)in_count);
    random_values(xa, in_count, 127);
    random_values(xb, in_count, 127);
    int32_t *want_a = malloc(sizeof(int32_t) * (size_t)out_count);
    int32_t *want_b = malloc(sizeof(int32_t) * (size_t)out_count);
    reference(s, xa, want_a);
    reference(s, xb, want_b);
    int64_t w_bytes;
    int8_t *wsrc;
    if (is_depthwise(s)) {
        w_bytes = (int64_t)s->c * s->kh * s->kw;
        wsrc = malloc((size_t)w_bytes);
        memcpy(wsrc, s->wt, (size_t)w_bytes);
    } else {
        wsrc = pack(s, &w_bytes);
    }
    int32_t *corr = calloc((size_t)corr_count, sizeof(int32_t));
    const int64_t half = s->shift > 0 ? (int64_t)1 << (s->shift - 1) : 0;
    const int64_t per = (int64_t)(is_depthwise(s) ? 1 : s->c) * s->kh * s->kw;
    for (int o = 0; o < s->o; o++) {
        int64_t sum = 0;
        for (int64_t k = 0; k < per; k++)
            sum += s->wt[o * per + k];
        corr[o] = (int32_t)(uint32_t)(s->bias[o] + half - 128 * sum);
    }
    thinker_host_conv job;
    memset(&job, 0, sizeof job);
    job.n = s->n, job.c = s->c, job.h = s->h, job.w_in = s->w, job.o = s->o, job.kh = s->kh;
    job.kw = s->kw, job.sh = s->sh, job.sw = s->sw, job.dh = s->dh, job.dw = s->dw;
    job.pt = s->pt, job.pl = s->pl, job.pb = s->pb, job.pr = s->pr, job.ho = s->ho, job.wo = s->wo;
    job.shift = s->shift, job.lo = s->lo, job.hi = s->hi, job.out_bytes = s->out_bytes;
    const int64_t work_bytes = is_depthwise(s) ? thinker_host_depthwise_work_bytes(&job) :
                                                 thinker_host_conv_work_bytes(&job);
    int ok = 1;
    char d[400];
    describe(s, d, sizeof d);
    for (int pass = 0; pass < 2 && ok; pass++) {
        int8_t *x = guarded("x", (size_t)in_count, 0, pass);
        int8_t *w = guarded("w", (size_t)w_bytes, 0, pass);
        int32_t *c = guarded("corr", sizeof(int32_t) * (size_t)corr_count, 0, pass);
        void *out = guarded("out", (size_t)(out_count * s->out_bytes),
                            (size_t)(MARGIN * s->out_bytes), pass);
        uint8_t *work = guarded("work", (size_t)work_bytes, 0, pass);
        memcpy(w, wsrc, (size_t)w_bytes);
        memcpy(c, corr, sizeof(int32_t) * (size_t)corr_count);
        for (int64_t i = 0; i < work_bytes; i++)
            work[i] = (uint8_t)next_u64(); /* the kernel must not rely on a zeroed work */
        job.w = w, job.corr = c, job.out = out, job.work = work, job.work_bytes = work_bytes;
        job.prepared = 0;
        for (int call = 0; call < 2 && ok; call++) {
            const int sentinel = call ? 0xA5 : 0x5A;
            memcpy(x, call ? xb : xa, (size_t)in_count);
            memset((char *)out - MARGIN * s->out_bytes, sentinel,
                   (size_t)((out_count + MARGIN) * s->out_bytes));
            job.x = x; /* call 1: the job as call 0 left it (prepared, its kernel recorded) */
            snprintf(current, sizeof current, "job %d pass %d (%s) call %d (prepared=%d): %s",
                     job_index, pass, pass ? "starts after guard" : "ends at guard", call,
                     job.prepared, d);
            printf("%s\n", current);
            fflush(stdout);
            const int r = is_depthwise(s) ? thinker_host_depthwise_s8(&job) : thinker_host_conv_s8(&job);
            if (r != 0) {
                printf("REFUSED (status %d) %s\n", r, current);
                ok = 0;
                break;
            }
            char when[64];
            snprintf(when, sizeof when, "job %d pass %d call %d", job_index, pass, call);
            ok = check(s, when, out, call ? want_b : want_a, out_count, sentinel);
        }
        release_all();
    }
    free(xa), free(xb), free(want_a), free(want_b), free(wsrc), free(corr);
    return ok;
}

/* ---- mean_rows ---- */
static int run_mean(int job_index)
{
    thinker_host_mean m;
    memset(&m, 0, sizeof m);
    m.rows = chance(0.1) ? rnd(1, 2) : rnd(1, 40);
    m.length = m.rows <= 2 && chance(0.5) ? rnd(60000, 140000) : rnd(1, 500);
    m.shift = (int32_t)rnd(-6, 10);
    const int64_t divisor = chance(0.5) ? m.length : rnd(1, 1000);
    m.den = divisor << (m.shift > 0 ? m.shift : 0);
    spec lim;
    pick_limits(&lim);
    m.lo = lim.lo, m.hi = lim.hi, m.out_bytes = lim.out_bytes;
    const int64_t count = m.rows * m.length;
    int8_t *src = malloc((size_t)count);
    random_values(src, count, 127);
    int32_t *want = malloc(sizeof(int32_t) * (size_t)m.rows);
    for (int64_t r = 0; r < m.rows; r++) {
        int64_t sum = 0;
        for (int64_t i = 0; i < m.length; i++)
            sum += src[r * m.length + i];
        /* round_half_up(sum * 2**-shift / divisor) = floor(sum * 2**-shift / divisor + 1/2) */
        int64_t v;
        if (m.shift < 0)
            v = floor_div(2 * sum * ((int64_t)1 << -m.shift) + divisor, 2 * divisor);
        else
            v = floor_div(2 * sum + (divisor << m.shift), (divisor << m.shift) * 2);
        want[r] = (int32_t)(v < m.lo ? m.lo : v > m.hi ? m.hi : v);
    }
    int ok = 1;
    for (int pass = 0; pass < 2 && ok; pass++) {
        int8_t *x = guarded("x", (size_t)count, 0, pass);
        void *out = guarded("out", (size_t)(m.rows * m.out_bytes), 0, pass);
        memcpy(x, src, (size_t)count);
        memset(out, 0x5A, (size_t)(m.rows * m.out_bytes));
        m.x = x, m.out = out;
        snprintf(current, sizeof current,
                 "mean %d pass %d: rows=%" PRId64 " length=%" PRId64 " den=%" PRId64
                 " divisor=%" PRId64 " shift=%d lo=%d hi=%d out_bytes=%d",
                 job_index, pass, m.rows, m.length, m.den, divisor, m.shift, m.lo, m.hi, m.out_bytes);
        printf("%s\n", current);
        fflush(stdout);
        if (thinker_host_mean_rows(&m) != 0) {
            printf("REFUSED %s\n", current);
            ok = 0;
        }
        for (int64_t r = 0; r < m.rows && ok; r++) {
            const int32_t got = m.out_bytes == 1 ? ((int8_t *)out)[r] : ((int16_t *)out)[r];
            if (got != want[r]) {
                printf("MISMATCH %s: row %" PRId64 " got %d want %d\n", current, r, got, want[r]);
                ok = 0;
            }
        }
        release_all();
    }
    free(src), free(want);
    return ok;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s SEED [JOBS]\n", argv[0]);
        return 2;
    }
    const uint64_t seed = strtoull(argv[1], NULL, 0);
    const int jobs = argc > 2 ? atoi(argv[2]) : 100;
    rng_state = seed * 0x2545F4914F6CDD1Dull + 1;
    page = sysconf(_SC_PAGESIZE);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSEGV, &sa, NULL);
    sigaction(SIGBUS, &sa, NULL);

    const int features = thinker_host_features();
    if (!(features & (THINKER_HOST_VNNI | THINKER_HOST_VNNI256))) {
        printf("SKIP: no AVX-512 VNNI or AVX-VNNI (features %d)\n", features);
        return 77;
    }
    const int depthwise = (features & (THINKER_HOST_DEPTHWISE | THINKER_HOST_VNNI256)) != 0;
    int ran[KINDS] = {0}, empty = 0, unsupported = 0, costly = 0, means = 0, big = 0;
    int done = 0, attempts = 0;
    while (done < jobs && attempts < jobs * 50) {
        attempts++;
        if (done % 5 == 4) { /* every fifth job a mean_rows one */
            if (!run_mean(done) && ++fails >= MAX_FAILS)
                break;
            means++;
            done++;
            continue;
        }
        const double r = (double)(next_u64() % 1000) / 1000.0;
        const int kind = r < 0.45 ? DENSE : r < 0.55 ? LINEAR : r < 0.9 ? DEPTHWISE : WHOLE_MAP;
        if (is_depthwise(&(spec){.kind = kind}) && !depthwise)
            continue;
        spec s;
        if (!generate(&s, kind)) {
            empty++;
            continue;
        }
        if (macs(&s) > (s.big ? MAX_BIG_MACS : MAX_MACS)) {
            costly++;
            continue;
        }
        thinker_host_conv probe;
        memset(&probe, 0, sizeof probe);
        probe.n = s.n, probe.c = s.c, probe.h = s.h, probe.w_in = s.w, probe.o = s.o;
        probe.kh = s.kh, probe.kw = s.kw, probe.sh = s.sh, probe.sw = s.sw, probe.dh = s.dh;
        probe.dw = s.dw, probe.pt = s.pt, probe.pl = s.pl, probe.pb = s.pb, probe.pr = s.pr;
        probe.ho = s.ho, probe.wo = s.wo, probe.shift = s.shift, probe.lo = s.lo, probe.hi = s.hi;
        probe.out_bytes = s.out_bytes;
        const int64_t need = is_depthwise(&s) ? thinker_host_depthwise_work_bytes(&probe) :
                                                thinker_host_conv_work_bytes(&probe);
        if (need < 0) {
            unsupported++;
            continue;
        }
        make_weights(&s);
        const int ok = run_conv(&s, done);
        free(s.wt), free(s.bias);
        ran[kind]++;
        big += s.big;
        done++;
        if (!ok && ++fails >= MAX_FAILS)
            break;
    }
    printf("%s %d jobs (dense %d, linear %d, depthwise %d, whole-map %d, mean %d; %d with large inputs; skipped: "
           "%d empty, %d unsupported, %d over the reference budget; seed %" PRIu64 ")\n",
           fails ? "FAIL" : "OK", done, ran[DENSE], ran[LINEAR], ran[DEPTHWISE], ran[WHOLE_MAP],
           means, big, empty, unsupported, costly, seed);
    if (fails)
        printf("%d failing jobs\n", fails);
    return fails ? 1 : 0;
}
