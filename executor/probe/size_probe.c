/* Size probe: references the whole public API so that a --gc-sections link keeps exactly the
 * code a firmware using the executor carries. Never run; `arm-none-eabi-size` reads it.
 *
 * The entry point only returns a table of the API's addresses (conversions between function
 * pointer types are valid C99): every function is kept whole, and the probe adds a table of
 * one word per function instead of the code of a call with arguments to each. */
#include "thinker.h"

typedef void (*thinker_probe_fn)(void);

const thinker_probe_fn *thinker_size_probe(void);

static const thinker_probe_fn api[] = {
    (thinker_probe_fn)thinker_initialize,
    (thinker_probe_fn)thinker_get_memory_plan,
    (thinker_probe_fn)thinker_model_init,
    (thinker_probe_fn)thinker_executor_create,
    (thinker_probe_fn)thinker_get_input_count,
    (thinker_probe_fn)thinker_get_output_count,
    (thinker_probe_fn)thinker_get_input_info,
    (thinker_probe_fn)thinker_get_output_info,
    (thinker_probe_fn)thinker_set_input,
    (thinker_probe_fn)thinker_forward,
    (thinker_probe_fn)thinker_get_output,
    (thinker_probe_fn)thinker_get_op_count,
    (thinker_probe_fn)thinker_get_op_info,
    (thinker_probe_fn)thinker_get_op_tensor,
    (thinker_probe_fn)thinker_get_tensor_count,
    (thinker_probe_fn)thinker_get_tensor_info,
    (thinker_probe_fn)thinker_get_tensor_data,
    (thinker_probe_fn)thinker_forward_op,
    (thinker_probe_fn)thinker_update_shape, /* streams and dynamic axes */
    (thinker_probe_fn)thinker_get_dynamic_axis,
    (thinker_probe_fn)thinker_reset,
    (thinker_probe_fn)thinker_get_stream_info,
    (thinker_probe_fn)thinker_get_stream_pair,
    (thinker_probe_fn)thinker_executor_message,
    (thinker_probe_fn)thinker_status_name,
    (thinker_probe_fn)thinker_crc32,
    (thinker_probe_fn)thinker_executor_release,
    (thinker_probe_fn)thinker_model_release,
    (thinker_probe_fn)thinker_uninitialize,
};

const thinker_probe_fn *thinker_size_probe(void) { return api; }
