/* Size probe: references the whole public API so that a --gc-sections link keeps exactly the
 * code a firmware using the executor carries. Never run; `arm-none-eabi-size` reads it. */
#include "thinker.h"

void thinker_size_probe(void);

void thinker_size_probe(void) {
    static volatile const void *sink;
    static uint8_t bin[64] __attribute__((aligned(16)));
    thinker_memory_plan plan;
    thinker_memory mem[THINKER_MAX_MEMORY];
    thinker_message msg;
    thinker_model *model = 0;
    thinker_executor *exe = 0;
    thinker_tensor_info info;
    thinker_op_info op;
    const void *out = 0;
    size_t n = 0;
    uint32_t count = 0, id = 0;
    thinker_initialize();
    thinker_get_memory_plan(bin, sizeof bin, &plan, &msg);
    thinker_model_init(&model, bin, sizeof bin, mem, plan.count, &msg);
    thinker_executor_create(&exe, model);
    thinker_get_input_count(exe, &count);
    thinker_get_output_count(exe, &count);
    thinker_get_input_info(exe, 0, &info);
    thinker_get_output_info(exe, 0, &info);
    thinker_set_input(exe, 0, bin, 1);
    thinker_forward(exe);
    thinker_get_output(exe, 0, &out, &n);
    thinker_get_op_count(model, &count);
    thinker_get_op_info(model, 0, &op);
    thinker_get_op_tensor(model, 0, 0, 0, &id);
    thinker_get_tensor_count(model, &count);
    thinker_get_tensor_info(model, 0, &info);
    thinker_get_tensor_data(exe, 0, &out, &n);
    thinker_forward_op(exe, 0);
    thinker_update_shape(exe, 0, 0, 1);                 /* streams and dynamic axes */
    thinker_get_dynamic_axis(exe, 0, 0, &count, &count, &count, &count);
    thinker_reset(exe);
    thinker_get_stream_info(exe, &count, &id);
    thinker_get_stream_pair(exe, 0, &count, &id);
    sink = thinker_executor_message(exe);
    sink = thinker_status_name(THINKER_OK);
    thinker_executor_release(exe);
    thinker_model_release(model);
    thinker_uninitialize();
    sink = out;
}
