/* fuzz_image.c — any bytes as a PNG or PGM, gray 28x28 and RGB 8x8. */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_write_temp(data, size, ".img");
    if (!path) return 0;
    static float gray[28 * 28], rgb[3 * 8 * 8];
    nb_image_load(path, 1, 28, 28, gray);
    nb_image_load(path, 3, 8, 8, rgb);
    unlink(path);
    return 0;
}
