/* Host-only: a chain of the numpy executor's compiled kernels run in one call (each job's
 * input and output already point at the previous job's output and its own buffer), so a
 * batch-1 model of small ops pays Python's per-call cost once per chain, not once per op. */
#include "thinker_host.h"

int thinker_host_run_chain(const thinker_host_link *links, int32_t count)
{
    for (int32_t i = 0; i < count; i++) {
        int status = 1;
        switch (links[i].kind) {
        case THINKER_HOST_CONV: status = thinker_host_conv_s8(links[i].job); break;
        case THINKER_HOST_DEPTHWISE_CONV: status = thinker_host_depthwise_s8(links[i].job); break;
        case THINKER_HOST_MEAN: status = thinker_host_mean_rows(links[i].job); break;
        default: break;
        }
        if (status != 0)
            return status;
    }
    return 0;
}
