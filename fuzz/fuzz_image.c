/* fuzz_image.c — any bytes as a PNG, JPEG or PGM: read at gray 28x28 and
 * RGB 8x8, and decoded at any size (under a small pixel limit) and put
 * through the eval transform. */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_write_temp(data, size, ".img");
    if (!path) return 0;
    static float gray[28 * 28], rgb[3 * 8 * 8];
    nb_image_load(path, 1, 28, 28, gray);
    nb_image_load(path, 3, 8, 8, rgb);
    nb_image im;
    if (nb_image_decode(path, 1 << 16, &im) == NB_OK) {
        static uint8_t chw[3 * 12 * 10];
        nb_image_eval_transform(&im, 3, 12, 10, 0, chw);
        nb_image_eval_transform(&im, 1, 5, 9, 7, chw);
        nb_image_free(&im);
    }
    unlink(path);
    return 0;
}
