/* write_file.c — nb_file_write_atomic: the atomic writer of io.h behind one
 * public call, for programs (the nabla tool's pictures) that hold a whole
 * file in memory. */
#include "io/io.h"

nb_status nb_file_write_atomic(const char *path, const void *data, size_t n) {
    if (!path || (!data && n)) return nb_fail(NB_ERR_ARG, "nb_file_write_atomic: NULL argument");
    nb_atomic_file af;
    nb_status s = nb_atomic_open(&af, path);
    if (!s) s = nb_atomic_write(&af, data, n);
    if (!s) s = nb_atomic_commit(&af);
    return s;
}
