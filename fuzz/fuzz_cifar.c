/* fuzz_cifar.c — any bytes as a CIFAR-10 test_batch.bin and as a CIFAR-100
 * test.bin (fine and coarse labels), loaded through nb_dataset_open. */
#include "fuzz_common.h"

#include <sys/stat.h>

static void try_as(const char *dir, const char *name, const uint8_t *data, size_t size,
                   int coarse) {
    char path[512];
    mkdir(dir, 0700);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) return;
    if (size) fwrite(data, 1, size, f);
    fclose(f);
    nb_dataset_opts o;
    memset(&o, 0, sizeof o);
    o.coarse_labels = coarse;
    nb_dataset d;
    nb_dataset_info info;
    if (nb_dataset_open(dir, "test", &o, &d, &info) == NB_OK) {
        nb_dataset_free(&d);
        nb_dataset_info_free(&info);
    }
    unlink(path);
    rmdir(dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char dir[256];
    snprintf(dir, sizeof dir, "/tmp/nabla-fuzz-cifar-%ld", (long)getpid());
    try_as(dir, "test_batch.bin", data, size, 0);
    try_as(dir, "test.bin", data, size, size & 1);
    return 0;
}
