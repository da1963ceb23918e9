/* An op's rounding mode: its quant_mode attribute (thinker/ops/rounding.py lists the ops that
 * honour it; tpacker refuses a non-default mode on any other op). */
#include "ops.h"

int thk_round_mode(const thinker_model *m, const thk_op *op, uint8_t *mode) {
    static const char names[4][10] = {"floor_add", "floor", "round", "ceil"};
    const char *s;
    uint8_t k;
    *mode = THK_ROUND_FLOOR_ADD;
    if (!thk_attr_has(op, "quant_mode")) return 1;
    if (!thk_attr_string(op, m, "quant_mode", &s)) return 0;
    for (k = 0; k < 4; k++)
        if (thk_streq(s, names[k])) {
            *mode = k;
            return 1;
        }
    return 0;
}
