/* fuzz_idx.c — any bytes, gzipped or not, must give an IDX or an error. */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_write_temp(data, size, ".idx");
    if (!path) return 0;
    nb_idx idx;
    if (nb_idx_read(path, &idx) == NB_OK) {
        size_t n = 1;
        for (int i = 0; i < idx.ndim; i++) n *= (size_t)idx.dims[i];
        volatile uint8_t sink = n ? idx.data[n - 1] : 0; /* the whole buffer is readable */
        (void)sink;
        nb_idx_free(&idx);
    }
    unlink(path);
    return 0;
}
