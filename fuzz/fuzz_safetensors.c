/* fuzz_safetensors.c — load any bytes as LeNet-5-sized tensors, both with
 * and without extra tensors allowed; only a status may come back. */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_write_temp(data, size, ".safetensors");
    if (!path) return 0;
    static float a[6 * 1 * 5 * 5], b[6], c[4];
    nb_named_tensor want[3] = {
        {"conv1.weight", {4, {6, 1, 5, 5}, a}, NULL},
        {"conv1.bias", {1, {6}, b}, NULL},
        {"x", {2, {2, 2}, c}, NULL},
    };
    nb_meta meta[4];
    int meta_count;
    nb_safetensors_load(path, want, 3, 0, meta, 4, &meta_count);
    nb_safetensors_load(path, want, 2, 1, NULL, 0, NULL);
    unlink(path);
    return 0;
}
