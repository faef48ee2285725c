/* file.c — whole-file reads under a size limit, a gzip-aware byte stream,
 * and atomic writes (temporary file + fsync + rename). */
#include "io/io.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

nb_status nb_read_file(const char *path, size_t max_bytes, const char *what, uint8_t **data,
                       size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return nb_fail(NB_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0) {
        nb_status s = nb_fail(NB_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
        fclose(f);
        return s;
    }
    /* A directory opens fine on Linux but reads as EISDIR; say so plainly. */
    if (!S_ISREG(st.st_mode)) {
        fclose(f);
        return nb_fail(NB_ERR_IO, "%s: not a regular file", path);
    }
    if ((uintmax_t)st.st_size > max_bytes) {
        fclose(f);
        return nb_fail(NB_ERR_FORMAT, "%s: %s is %jd bytes, more than the %zu-byte limit", path,
                       what, (intmax_t)st.st_size, max_bytes);
    }
    size_t n = (size_t)st.st_size;
    uint8_t *buf = nb_alloc(n, what);
    if (!buf) {
        fclose(f);
        return nb_fail_prefix(NB_ERR_NOMEM, "%s: ", path);
    }
    size_t got = fread(buf, 1, n, f);
    int read_error = ferror(f);
    int err = errno;
    fclose(f);
    if (got != n) {
        nb_free(buf);
        if (read_error) return nb_fail(NB_ERR_IO, "%s: read error: %s", path, strerror(err));
        return nb_fail(NB_ERR_IO, "%s: file shrank while being read (%zu of %zu bytes)", path, got,
                       n);
    }
    *data = buf;
    *size = n;
    return NB_OK;
}

/* ---- a stream that undoes gzip ------------------------------------------ */

enum { NB_IN_CHUNK = 1 << 16 };

struct nb_in {
    FILE *f;
    char *path;
    bool gz;
    bool done;           /* gzip: the last member ended at the end of the file */
    z_stream z;
    uint8_t *buf;        /* compressed bytes waiting for inflate */
    uint64_t file_pos;   /* compressed bytes read from the file so far */
};

/* zlib's allocations go through nb_alloc too, so failure injection and a
 * user's allocator see the decompressor's window and tables. */
static voidpf z_alloc(voidpf opaque, uInt items, uInt size) {
    (void)opaque;
    size_t bytes;
    if (!nb_mul_size(items, size, &bytes)) return Z_NULL;
    return nb_alloc(bytes, "gzip decompression");
}

static void z_free(voidpf opaque, voidpf p) {
    (void)opaque;
    nb_free(p);
}

void nb_in_close(nb_in *in) {
    if (!in) return;
    if (in->gz) inflateEnd(&in->z);
    if (in->f) fclose(in->f);
    nb_free(in->buf);
    nb_free(in->path);
    nb_free(in);
}

nb_status nb_in_open(const char *path, nb_in **out) {
    nb_in *in = nb_zalloc(sizeof *in, "file reader");
    if (!in) return nb_fail_prefix(NB_ERR_NOMEM, "%s: ", path);
    in->path = nb_strdup(path, "file name");
    if (!in->path) {
        nb_in_close(in);
        return nb_fail_prefix(NB_ERR_NOMEM, "%s: ", path);
    }
    in->f = fopen(path, "rb");
    if (!in->f) {
        nb_status s = nb_fail(NB_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        nb_in_close(in);
        return s;
    }
    struct stat st;
    if (fstat(fileno(in->f), &st) != 0 || !S_ISREG(st.st_mode)) {
        nb_in_close(in);
        return nb_fail(NB_ERR_IO, "%s: not a regular file", path);
    }
    /* Peek at the magic, then start over: the bytes belong to the data. */
    uint8_t magic[2] = {0, 0};
    size_t k = fread(magic, 1, 2, in->f);
    in->gz = k == 2 && magic[0] == 0x1f && magic[1] == 0x8b;
    if (ferror(in->f) || fseek(in->f, 0, SEEK_SET) != 0) {
        nb_status s = nb_fail(NB_ERR_IO, "%s: read error: %s", path, strerror(errno));
        in->gz = false;
        nb_in_close(in);
        return s;
    }
    if (in->gz) {
        in->buf = nb_alloc(NB_IN_CHUNK, "gzip input buffer");
        if (!in->buf) {
            in->gz = false;
            nb_in_close(in);
            return nb_fail_prefix(NB_ERR_NOMEM, "%s: ", path);
        }
        in->z.zalloc = z_alloc;
        in->z.zfree = z_free;
        in->z.opaque = Z_NULL;
        /* 15 + 16: a gzip wrapper only; a raw zlib stream is not a .gz. */
        int ret = inflateInit2(&in->z, 15 + 16);
        if (ret != Z_OK) {
            in->gz = false;
            nb_in_close(in);
            if (ret == Z_MEM_ERROR) return nb_fail_prefix(NB_ERR_NOMEM, "%s: ", path);
            return nb_fail(NB_ERR_IO, "%s: cannot start gzip decompression (zlib error %d)", path,
                           ret);
        }
    }
    *out = in;
    return NB_OK;
}

bool nb_in_is_gzip(const nb_in *in) { return in->gz; }

/* Top up the compressed buffer; *eof when the file has nothing more. */
static nb_status refill(nb_in *in, bool *eof) {
    *eof = false;
    if (in->z.avail_in > 0) return NB_OK;
    size_t k = fread(in->buf, 1, NB_IN_CHUNK, in->f);
    if (k == 0) {
        if (ferror(in->f))
            return nb_fail(NB_ERR_IO, "%s: read error: %s", in->path, strerror(errno));
        *eof = true;
        return NB_OK;
    }
    in->z.next_in = in->buf;
    in->z.avail_in = (uInt)k;
    in->file_pos += k;
    return NB_OK;
}

static uint64_t compressed_offset(const nb_in *in) { return in->file_pos - in->z.avail_in; }

static nb_status read_gzip(nb_in *in, uint8_t *out, size_t n, size_t *got) {
    size_t total = 0;
    while (total < n && !in->done) {
        bool eof;
        nb_status s = refill(in, &eof);
        if (s) return s;
        if (eof)
            return nb_fail(
                NB_ERR_FORMAT,
                "%s: gzip data ends early, after %llu compressed bytes (truncated file?)", in->path,
                (unsigned long long)in->file_pos);
        size_t want = n - total;
        in->z.next_out = out + total;
        in->z.avail_out = want > UINT_MAX ? UINT_MAX : (uInt)want;
        uInt before = in->z.avail_out;
        int ret = inflate(&in->z, Z_NO_FLUSH);
        total += before - in->z.avail_out;
        if (ret == Z_STREAM_END) {
            /* A .gz may hold several members back to back (gzip -c a >> f);
             * anything else after a member is not gzip data. */
            s = refill(in, &eof);
            if (s) return s;
            if (eof) {
                in->done = true;
            } else if (in->z.next_in[0] == 0x1f) {
                inflateReset(&in->z);
            } else {
                return nb_fail(NB_ERR_FORMAT,
                               "%s: data that is not gzip follows the end of the gzip stream at "
                               "compressed byte %llu",
                               in->path, (unsigned long long)compressed_offset(in));
            }
        } else if (ret == Z_MEM_ERROR) {
            return nb_fail_prefix(NB_ERR_NOMEM, "%s: ", in->path);
        } else if (ret == Z_BUF_ERROR) {
            /* No progress: only legitimate when input ran dry (refilled on
             * the next turn); with input and room left it cannot happen. */
            if (in->z.avail_in > 0 && in->z.avail_out > 0)
                return nb_fail(NB_ERR_FORMAT, "%s: gzip data stalls at compressed byte %llu",
                               in->path, (unsigned long long)compressed_offset(in));
        } else if (ret != Z_OK) {
            return nb_fail(NB_ERR_FORMAT, "%s: corrupt gzip data near compressed byte %llu: %s",
                           in->path, (unsigned long long)compressed_offset(in),
                           in->z.msg ? in->z.msg : "unknown zlib error");
        }
    }
    *got = total;
    return NB_OK;
}

nb_status nb_in_read(nb_in *in, void *buf, size_t n, size_t *got) {
    *got = 0;
    if (in->gz) return read_gzip(in, buf, n, got);
    size_t k = fread(buf, 1, n, in->f);
    if (k < n && ferror(in->f))
        return nb_fail(NB_ERR_IO, "%s: read error: %s", in->path, strerror(errno));
    *got = k;
    return NB_OK;
}

/* ---- atomic writes ------------------------------------------------------- */

void nb_atomic_abort(nb_atomic_file *af) {
    if (af->f) fclose(af->f);
    if (af->tmp_path) unlink(af->tmp_path);
    nb_free(af->tmp_path);
    nb_free(af->path);
    nb_free(af->dir);
    af->f = NULL;
    af->tmp_path = af->path = af->dir = NULL;
}

/* The directory holding path ("." for a bare name), allocated here so that
 * commit, past the point of no return, allocates nothing. */
static char *parent_dir(const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) return nb_strdup(".", "directory name");
    size_t n = slash == path ? 1 : (size_t)(slash - path);
    char *dir = nb_alloc(n + 1, "directory name");
    if (dir) {
        memcpy(dir, path, n);
        dir[n] = '\0';
    }
    return dir;
}

nb_status nb_atomic_open(nb_atomic_file *af, const char *path) {
    af->f = NULL;
    af->path = af->tmp_path = af->dir = NULL;
    size_t len = strlen(path);
    if (len == 0) return nb_fail(NB_ERR_ARG, "cannot write a file with an empty name");
    af->path = nb_strdup(path, "file name");
    af->dir = af->path ? parent_dir(path) : NULL;
    af->tmp_path = af->dir ? nb_alloc(len + sizeof ".tmp.XXXXXX", "temporary file name") : NULL;
    if (!af->tmp_path) {
        nb_atomic_abort(af);
        return nb_fail_prefix(NB_ERR_NOMEM, "%s: ", path);
    }
    memcpy(af->tmp_path, path, len);
    memcpy(af->tmp_path + len, ".tmp.XXXXXX", sizeof ".tmp.XXXXXX");
    int fd = mkstemp(af->tmp_path);
    if (fd < 0) {
        nb_status s = nb_fail(NB_ERR_IO, "%s: cannot create a temporary file %s: %s", path,
                              af->tmp_path, strerror(errno));
        nb_free(af->tmp_path);
        af->tmp_path = NULL; /* nothing was created, so nothing to unlink */
        nb_atomic_abort(af);
        return s;
    }
    /* mkstemp makes the file 0600. Keep an existing file's mode; a new file
     * gets 0644, because a library cannot read the umask without changing
     * it for every thread of the process. */
    struct stat st;
    mode_t mode = (stat(path, &st) == 0 && S_ISREG(st.st_mode)) ? (st.st_mode & 07777) : 0644;
    if (fchmod(fd, mode) != 0 || !(af->f = fdopen(fd, "wb"))) {
        nb_status s = nb_fail(NB_ERR_IO, "%s: cannot prepare temporary file %s: %s", path,
                              af->tmp_path, strerror(errno));
        close(fd);
        nb_atomic_abort(af);
        return s;
    }
    return NB_OK;
}

nb_status nb_atomic_write(nb_atomic_file *af, const void *data, size_t n) {
    if (n == 0) return NB_OK;
    if (fwrite(data, 1, n, af->f) != n) {
        nb_status s = nb_fail(NB_ERR_IO, "%s: write failed: %s (the previous file is unchanged)",
                              af->path, strerror(errno));
        nb_atomic_abort(af);
        return s;
    }
    return NB_OK;
}

/* The directory entry made by rename is durable only once the directory
 * itself is synced. Returns 0 or an errno. */
static int sync_dir(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0) return errno;
    int err = 0;
    /* Some file systems cannot sync a directory (EINVAL); nothing to do. */
    if (fsync(fd) != 0 && errno != EINVAL) err = errno;
    close(fd);
    return err;
}

nb_status nb_atomic_commit(nb_atomic_file *af) {
    nb_status s = NB_OK;
    FILE *f = af->f;
    af->f = NULL;
    /* Each step can be where a full disk first shows (ENOSPC). */
    if (fflush(f) != 0) {
        s = nb_fail(NB_ERR_IO, "%s: write failed: %s (the previous file is unchanged)", af->path,
                    strerror(errno));
        fclose(f);
    } else if (fsync(fileno(f)) != 0) {
        s = nb_fail(NB_ERR_IO, "%s: fsync failed: %s (the previous file is unchanged)", af->path,
                    strerror(errno));
        fclose(f);
    } else if (fclose(f) != 0) {
        s = nb_fail(NB_ERR_IO, "%s: close failed: %s (the previous file is unchanged)", af->path,
                    strerror(errno));
    } else if (rename(af->tmp_path, af->path) != 0) {
        s = nb_fail(NB_ERR_IO,
                    "%s: cannot rename %s into place: %s (the previous file is unchanged)",
                    af->path, af->tmp_path, strerror(errno));
    } else {
        nb_free(af->tmp_path);
        af->tmp_path = NULL; /* renamed: nothing left to unlink */
        int err = sync_dir(af->dir);
        if (err)
            s = nb_fail(NB_ERR_IO, "%s: written, but syncing its directory failed: %s", af->path,
                        strerror(err));
    }
    nb_atomic_abort(af);
    return s;
}
