/* Host-only global average pooling for the numpy executor: each row's integer sum, divided
 * with thinker.qmath.rescale_div's exact rounding, saturated. Plain C (the host build
 * vectorizes the sums); numpy would pay a few microseconds per array operation on what is,
 * at batch 1, a few dozen values. */
#include <string.h>

#include "thinker_host.h"

/* floor(a / b) for b > 0 */
static int64_t floor_div(int64_t a, int64_t b)
{
    const int64_t q = a / b;
    return q * b > a ? q - 1 : q;
}

int thinker_host_mean_rows(const thinker_host_mean *m)
{
    if (m->den <= 0 || (m->out_bytes != 1 && m->out_bytes != 2) || m->length <= 0)
        return 1;
    for (int64_t r = 0; r < m->rows; r++) {
        const int8_t *x = m->x + r * m->length;
        int64_t sum = 0;
        for (int64_t k = 0; k < m->length; k += 1 << 16) { /* int32 parts: 2**16 * 128 */
            const int64_t end = m->length - k < (1 << 16) ? m->length : k + (1 << 16);
            int32_t part = 0;
            for (int64_t i = k; i < end; i++)
                part += x[i];
            sum += part;
        }
        /* round_half_up(sum * 2**-shift / den): the shift scales the divisor (den was
         * shifted by Python when shift > 0) or the numerator */
        const int64_t num = m->shift < 0 ? sum * ((int64_t)1 << -m->shift) : sum;
        int64_t v = floor_div(2 * num + m->den, 2 * m->den);
        v = v < m->lo ? m->lo : v > m->hi ? m->hi : v;
        if (m->out_bytes == 1)
            ((int8_t *)m->out)[r] = (int8_t)v;
        else
            ((int16_t *)m->out)[r] = (int16_t)v;
    }
    return 0;
}
