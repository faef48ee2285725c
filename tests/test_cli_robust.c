/* test_cli_robust.c — `nabla train` never crashes and never loses a run:
 * SIGKILLed at random moments and resumed, it ends with the weights and
 * epoch lines of an uninterrupted run, bit for bit; SIGTERM and SIGINT stop
 * it cleanly with a checkpoint and the command that resumes it; a diverging
 * run stops or skips its non-finite steps and never overwrites a good
 * checkpoint; a full disk, an oversized write or a read-only directory gives
 * a clear error, leaves the previous file byte for byte and no temporary
 * behind; and every error path of train, eval and predict exits cleanly (in
 * the sanitizer build, leak-free: LeakSanitizer's report fails the test).
 *
 * Runs $BUILD/nabla on a small MNIST-format data set it writes to a
 * temporary directory. As root it makes a private mount namespace for small
 * and read-only tmpfs mounts, which vanish with the test; otherwise the
 * cases that need one are skipped with a note. */
#define _GNU_SOURCE /* unshare() */
#include "support.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char tmp[64], nabla[4096], data[128], hot_data[128];
static bool private_mounts; /* a mount namespace of our own: tmpfs mounts allowed */
static nb_rng rng;
static double straight_seconds; /* the reference run, no checkpoints */
/* out_text and err_text are the shared capture buffers of support.h. */

/* ---- files -------------------------------------------------------------------------- */

static const char *path_in(const char *dir, const char *name) {
    static char path[8][256];
    static int k;
    k = (k + 1) % 8;
    snprintf(path[k], sizeof path[k], "%s/%s", dir, name);
    return path[k];
}

static const char *tmp_file(const char *name) { return path_in(tmp, name); }

static bool exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* The whole file (NUL-terminated), or NULL; *n gets its size. */
static char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = NULL;
    size_t cap = 0, used = 0;
    for (;;) {
        if (used + 1 >= cap) buf = realloc(buf, cap = cap ? 2 * cap : 1 << 16);
        size_t k = fread(buf + used, 1, cap - used - 1, f);
        if (k == 0) break;
        used += k;
    }
    fclose(f);
    buf[used] = '\0';
    if (n) *n = used;
    return buf;
}

static bool same_file(const char *a, const char *b) {
    size_t na, nb;
    char *x = slurp(a, &na), *y = slurp(b, &nb);
    bool same = x && y && na == nb && !memcmp(x, y, na);
    free(x);
    free(y);
    return same;
}

static void assert_same_file(const char *a, const char *b) {
    if (!same_file(a, b)) print_error("%s and %s differ\n", a, b);
    assert_true(same_file(a, b));
}

static void copy_file(const char *from, const char *to) {
    size_t n;
    char *bytes = slurp(from, &n);
    assert_non_null(bytes);
    FILE *f = fopen(to, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(bytes, 1, n, f), n);
    fclose(f);
    free(bytes);
}

static void put_be32(FILE *f, uint32_t v) {
    unsigned char b[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16), (unsigned char)(v >> 8),
                          (unsigned char)v};
    fwrite(b, 1, 4, f);
}

/* An MNIST-format split of 28x28 images: class c lights a 4x4 block at a
 * place of its own over noise; 10% of the labels are wrong, so the losses
 * stay well away from 0. Pixels 0 and 1 are dark, except in every
 * `hot_every`-th sample (0: none), where they are 255. */
static int write_split(const char *dir, const char *split, int count, int hot_every) {
    char name[256];
    snprintf(name, sizeof name, "%s/%s-images-idx3-ubyte", dir, split);
    FILE *fi = fopen(name, "wb");
    snprintf(name, sizeof name, "%s/%s-labels-idx1-ubyte", dir, split);
    FILE *fl = fopen(name, "wb");
    if (!fi || !fl) return -1;
    put_be32(fi, 0x803), put_be32(fi, (uint32_t)count), put_be32(fi, 28), put_be32(fi, 28);
    put_be32(fl, 0x801), put_be32(fl, (uint32_t)count);
    unsigned char img[784];
    for (int i = 0; i < count; i++) {
        int c = i % 10;
        for (int k = 0; k < 784; k++) img[k] = (unsigned char)nb_rng_below(&rng, 100);
        int r0 = 2 + 6 * (c / 4), c0 = 2 + 6 * (c % 4);
        for (int r = 0; r < 4; r++)
            for (int q = 0; q < 4; q++) img[(r0 + r) * 28 + c0 + q] = 200;
        img[0] = img[1] = hot_every && i % hot_every == hot_every - 1 ? 255 : 0;
        fwrite(img, 1, 784, fi);
        fputc(nb_rng_below(&rng, 10) == 0 ? (c + 3) % 10 : c, fl);
    }
    int bad = ferror(fi) || ferror(fl);
    return (fclose(fi) | fclose(fl) | bad) ? -1 : 0;
}

/* ---- processes ------------------------------------------------------------------------ */

typedef struct child {
    pid_t pid;
    char out[192], err[192];
} child;

/* Start nabla with the words of the formatted command (split at spaces: no
 * path here holds one), stdout and stderr to files named after `tag`, in
 * directory cwd (NULL: ours). fsize > 0 caps the size of any file it
 * writes (RLIMIT_FSIZE) with SIGXFSZ ignored, so an oversized write fails
 * with EFBIG as a full disk fails with ENOSPC. */
#if defined(__GNUC__)
static child start(const char *tag, const char *cwd, long fsize, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
#endif
static child start(const char *tag, const char *cwd, long fsize, const char *fmt, ...) {
    static char line[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    char *argv[96];
    int argc = 0;
    argv[argc++] = nabla;
    for (char *w = strtok(line, " "); w && argc < 95; w = strtok(NULL, " ")) argv[argc++] = w;
    argv[argc] = NULL;
    child c;
    snprintf(c.out, sizeof c.out, "%s/%s.out", tmp, tag);
    snprintf(c.err, sizeof c.err, "%s/%s.err", tmp, tag);
    fflush(NULL);
    c.pid = fork();
    assert_true(c.pid >= 0);
    if (c.pid == 0) {
        int out = open(c.out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int err = open(c.err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int in = open("/dev/null", O_RDONLY);
        if (out < 0 || err < 0 || in < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0)
            _exit(126);
        if (cwd && chdir(cwd) != 0) _exit(126);
        /* Whatever our own parent ignores, the child must see these. */
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        if (fsize > 0) {
            struct rlimit rl = {(rlim_t)fsize, (rlim_t)fsize};
            signal(SIGXFSZ, SIG_IGN);
            if (setrlimit(RLIMIT_FSIZE, &rl) != 0) _exit(126);
        }
        execv(nabla, argv);
        _exit(127);
    }
    return c;
}

/* Wait for the child; its exit code, or -N when signal N ended it. Its
 * output lands in out_text and err_text. A sanitizer's report (a leak, in
 * particular, which exits 1 like an ordinary failure) fails the test. */
static int finish(const child *c) {
    int status;
    while (waitpid(c->pid, &status, 0) < 0) assert_int_equal(errno, EINTR);
    char *o = slurp(c->out, NULL), *e = slurp(c->err, NULL);
    snprintf(out_text, sizeof out_text, "%s", o ? o : "");
    snprintf(err_text, sizeof err_text, "%s", e ? e : "");
    free(o);
    free(e);
    if (strstr(err_text, "Sanitizer")) print_error("sanitizer report:\n%s\n", err_text);
    assert_null(strstr(err_text, "Sanitizer"));
    return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
}

#if defined(__GNUC__)
static int run(const char *tag, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#endif
static int run(const char *tag, const char *fmt, ...) {
    char line[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    child c = start(tag, NULL, 0, "%s", line);
    return finish(&c);
}

static void expect_code(int got, int want) {
    if (got != want) print_error("exit %d, expected %d; stderr:\n%s\n", got, want, err_text);
    assert_int_equal(got, want);
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void sleep_seconds(double s) {
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

/* Wait until the child's stdout holds `needle`; false if it exits first. */
static bool wait_for_output(const child *c, const char *needle) {
    for (double t0 = now(); now() - t0 < 60.0; sleep_seconds(0.001)) {
        char *o = slurp(c->out, NULL);
        bool found = o && strstr(o, needle);
        free(o);
        if (found) return true;
        if (waitpid(c->pid, NULL, WNOHANG) != 0) return false;
    }
    return false;
}

/* ---- epoch lines ---------------------------------------------------------------------- */

#define MAX_EPOCHS 8

/* What an epoch line says about the run, without its timing: "epoch 2/3
 * train loss 1.2345  test loss ...  test acc ...%". */
typedef struct epoch_lines {
    char text[MAX_EPOCHS + 1][160];
} epoch_lines;

/* Add the epoch lines of `out`; a repeated epoch (reported again after a
 * resume) must say the same as before. */
static void add_epoch_lines(epoch_lines *l, const char *out) {
    for (const char *p = strstr(out, "epoch "); p; p = strstr(p + 1, "\nepoch ")) {
        if (*p == '\n') p++;
        int epoch;
        if (sscanf(p, "epoch %d/", &epoch) != 1 || epoch < 1 || epoch > MAX_EPOCHS) continue;
        const char *end = strstr(p, " img/s");
        assert_non_null(end);
        while (end > p && !(end[-1] == ' ' && end[-2] == ' ')) end--;
        char line[160];
        snprintf(line, sizeof line, "%.*s", (int)(end - p), p);
        if (l->text[epoch][0] && strcmp(l->text[epoch], line))
            print_error("epoch %d reported twice, differently:\n%s\n%s\n", epoch, l->text[epoch], line);
        if (l->text[epoch][0]) assert_string_equal(l->text[epoch], line);
        snprintf(l->text[epoch], sizeof l->text[epoch], "%s", line);
    }
}

static void assert_same_epochs(const epoch_lines *want, const epoch_lines *got, int epochs) {
    for (int e = 1; e <= epochs; e++) {
        if (strcmp(want->text[e], got->text[e]))
            print_error("epoch %d: straight run '%s', interrupted run '%s'\n", e, want->text[e],
                        got->text[e]);
        assert_true(want->text[e][0] != '\0');
        assert_string_equal(want->text[e], got->text[e]);
    }
}

/* ---- setup -------------------------------------------------------------------------- */

/* The run every interruption is compared with: an MLP with Adam and the
 * default cosine schedule, 3 epochs of 160 batches, evaluated after each. */
#define EPOCHS 3
#define STEPS (EPOCHS * 160)
static char common[512];
static epoch_lines straight_epochs;

static int setup(void **state) {
    (void)state;
    const char *build = getenv("BUILD");
    char rel[256];
    snprintf(rel, sizeof rel, "%s/nabla", build && *build ? build : "build");
    /* Absolute: some runs start in another working directory. */
    if (!realpath(rel, nabla)) {
        fprintf(stderr, "%s: %s\n", rel, strerror(errno));
        return -1;
    }
    snprintf(tmp, sizeof tmp, "/tmp/nabla-robust-XXXXXX");
    if (!mkdtemp(tmp)) return -1;
    /* A leak makes a sanitized nabla exit 23, unlike any exit of its own. */
    setenv("LSAN_OPTIONS", "exitcode=23", 0);
    nb_rng_seed(&rng, 2024);
    snprintf(data, sizeof data, "%s/data", tmp);
    snprintf(hot_data, sizeof hot_data, "%s/hot", tmp);
    if (mkdir(data, 0755) || write_split(data, "train", 1280, 0) || write_split(data, "t10k", 200, 0) ||
        mkdir(hot_data, 0755) || write_split(hot_data, "train", 64, 20) ||
        write_split(hot_data, "t10k", 20, 0))
        return -1;
    snprintf(common, sizeof common, "train --model mlp --hidden 48 --data %s --epochs %d --batch 8 "
             "--optimizer adam --seed 5 --threads 1", data, EPOCHS);
    double t0 = now();
    if (run("straight", "%s --save %s", common, tmp_file("straight.safetensors")) != 0) {
        fprintf(stderr, "the reference run failed:\n%s\n", err_text);
        return -1;
    }
    straight_seconds = now() - t0;
    add_epoch_lines(&straight_epochs, out_text);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    /* A failed test may have left its mount behind. */
    if (private_mounts) {
        umount2(path_in(tmp, "full"), MNT_DETACH);
        umount2(path_in(tmp, "ro"), MNT_DETACH);
    }
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    return system(cmd) == 0 ? 0 : -1;
}

/* The step a checkpoint holds, from its metadata. */
static long checkpoint_step(const char *path) {
    nb_meta meta[32];
    int n = 0;
    nb_named_tensor none = {0};
    if (nb_safetensors_load(path, &none, 0, 1, meta, 32, &n)) return -1;
    for (int i = 0; i < n; i++)
        if (!strcmp(meta[i].key, "nabla.step")) return atol(meta[i].value);
    return -1;
}

/* ---- kills ---------------------------------------------------------------------------- */

/* Checkpoint every 3 steps; SIGKILL the run at a random moment, resume it
 * from whatever checkpoint is on disk, five times over; then let it finish.
 * A kill can land in a step, between steps, in an evaluation or in the
 * middle of writing the checkpoint. */
static void test_sigkill_and_resume_is_bit_identical(void **s) {
    (void)s;
    /* A directory of its own: a kill in the middle of a write leaves that
     * write's temporary behind (the checkpoint itself is whole). */
    char dir[128];
    snprintf(dir, sizeof dir, "%s/kill", tmp);
    mkdir(dir, 0755);
    const char *ck = path_in(dir, "kill.ckpt"), *full = path_in(dir, "full.safetensors");
    double t0 = now();
    child c = start("full", NULL, 0, "%s --checkpoint %s --checkpoint-every 3 --save %s", common, ck, full);
    expect_code(finish(&c), 0);
    double run_seconds = now() - t0;
    assert_same_file(tmp_file("straight.safetensors"), full);
    epoch_lines got = {0};
    add_epoch_lines(&got, out_text);
    assert_same_epochs(&straight_epochs, &got, EPOCHS);
    remove(ck);

    /* Each kill lands 1/15 to 1/5 of a whole run after a start: five of
     * them can hardly finish the run, and where they land is random. */
    uint64_t seed = (uint64_t)time(NULL) ^ (uint64_t)getpid();
    nb_rng kr;
    nb_rng_seed(&kr, seed);
    const char *killed = path_in(dir, "killed.safetensors");
    memset(&got, 0, sizeof got);
    int kills = 0, resumes = 0;
    long resumed_from[16];
    bool finished = false;
    for (int attempt = 0; attempt < 12 && kills < 5 && !finished; attempt++) {
        bool resume = exists(ck);
        if (resume) resumed_from[resumes++] = checkpoint_step(ck);
        c = start("killed", NULL, 0, "%s --checkpoint %s --checkpoint-every 3 --save %s%s%s", common,
                  ck, killed, resume ? " --resume " : "", resume ? ck : "");
        sleep_seconds(run_seconds * (1.0 / 15 + nb_rng_uniform(&kr) * (1.0 / 5 - 1.0 / 15)));
        kill(c.pid, SIGKILL);
        int code = finish(&c);
        add_epoch_lines(&got, out_text);
        if (code == -SIGKILL) kills++;
        else expect_code(code, 0), finished = true;
    }
    if (!finished) {
        resumed_from[resumes++] = checkpoint_step(ck);
        c = start("killed", NULL, 0, "%s --checkpoint %s --checkpoint-every 3 --save %s --resume %s",
                  common, ck, killed, ck);
        expect_code(finish(&c), 0);
        add_epoch_lines(&got, out_text);
    }
    printf("SIGKILLed %d times (seed %llu), resumed from steps", kills, (unsigned long long)seed);
    for (int i = 0; i < resumes; i++) printf(" %ld", resumed_from[i]);
    printf(" of %d\n", STEPS);
    assert_true(kills >= 3);
    /* Temporaries of writes cut short were cleared by the next run. */
    assert_no_temporaries(dir);
    assert_same_file(tmp_file("straight.safetensors"), killed);
    assert_same_epochs(&straight_epochs, &got, EPOCHS);
}

/* ---- SIGTERM and SIGINT ------------------------------------------------------------------ */

/* Run the resume command the stopped run printed, with our nabla. */
static int run_printed_resume(const char *tag) {
    const char *p = strstr(err_text, "\n  nabla ");
    assert_non_null(p);
    p += strlen("\n  nabla ");
    const char *end = strchr(p, '\n');
    assert_non_null(end);
    char words[2048];
    snprintf(words, sizeof words, "%.*s", (int)(end - p), p);
    return run(tag, "%s", words);
}

/* Start the run, wait for its header (the handlers are in place from
 * then on), give it a random part of a straight run's time, and signal
 * it. Should the run have finished first (a busy machine), try again at
 * once. Returns the stopped run's exit code. */
static int signal_run(const char *tag, int sig, const char *extra, epoch_lines *lines) {
    double delay = straight_seconds * nb_rng_uniform(&rng) / 3;
    for (int attempt = 0; attempt < 3; attempt++, delay = 0) {
        child c = start(tag, NULL, 0, "%s %s", common, extra);
        assert_true(wait_for_output(&c, "parameters;"));
        sleep_seconds(delay);
        kill(c.pid, sig);
        int code = finish(&c);
        /* Killed by the signal itself: it came after the run had ended and
         * given the default handler back (a loaded machine slows the
         * sender); try again, earlier. */
        if (code == -sig) continue;
        if (code != 0) {
            add_epoch_lines(lines, out_text);
            return code;
        }
    }
    return 0;
}

static void test_sigterm_stops_with_checkpoint(void **s) {
    (void)s;
    const char *ck = tmp_file("term.ckpt"), *w = tmp_file("term.safetensors");
    char extra[512];
    snprintf(extra, sizeof extra, "--checkpoint %s --save %s", ck, w);
    epoch_lines got = {0};
    expect_code(signal_run("term", SIGTERM, extra, &got), 143);
    expect(err_text, "nabla: SIGTERM: stopped after step");
    expect(err_text, "checkpoint written to ");
    expect(err_text, "to resume, run the same command with --resume ");
    char resume_flag[256];
    snprintf(resume_flag, sizeof resume_flag, "--resume %s\n", ck);
    expect(err_text, resume_flag);
    assert_false(exists(w));
    assert_no_temporaries(tmp);
    expect_code(run_printed_resume("term-resumed"), 0);
    add_epoch_lines(&got, out_text);
    assert_same_file(tmp_file("straight.safetensors"), w);
    assert_same_epochs(&straight_epochs, &got, EPOCHS);
}

/* Without --checkpoint, the stop writes next to --save. */
static void test_sigint_stops_with_default_checkpoint(void **s) {
    (void)s;
    const char *w = tmp_file("int.safetensors"), *ck = tmp_file("int.ckpt.safetensors");
    char extra[512];
    snprintf(extra, sizeof extra, "--save %s", w);
    epoch_lines got = {0};
    expect_code(signal_run("int", SIGINT, extra, &got), 130);
    expect(err_text, "nabla: SIGINT: stopped after step");
    expect(err_text, ck);
    assert_true(exists(ck));
    expect_code(run_printed_resume("int-resumed"), 0);
    add_epoch_lines(&got, out_text);
    assert_same_file(tmp_file("straight.safetensors"), w);
    assert_same_epochs(&straight_epochs, &got, EPOCHS);
}

/* ---- non-finite values ---------------------------------------------------------------------- */

static void test_nonfinite_runs(void **s) {
    (void)s;
    /* Weights from --init with a NaN: refused before the first step. */
    nb_model *m = nb_model_create("logreg", NULL);
    assert_non_null(m);
    float *p;
    nb_graph_params(nb_model_graph(m), &p, NULL);
    p[100] = NAN;
    const char *nan_init = tmp_file("nan.safetensors");
    assert_ok(nb_model_save(m, nan_init));
    /* Weights from pixels 0 and 1 to class 0 near FLT_MAX: finite, but the
     * samples that light both pixels (every 20th of the hot set: samples
     * 19, 39 and 59, so steps 3, 5 and 8 with batch 8 in file order)
     * overflow the loss. */
    p[100] = 0.0f;
    p[0] = p[1] = 3e38f;
    const char *hot_init = tmp_file("hot.safetensors");
    assert_ok(nb_model_save(m, hot_init));
    nb_model_free(m);
    expect_code(run("nan", "train --model logreg --data %s --epochs 1 --init %s", hot_data, nan_init), 1);
    expect(err_text, "cannot train from weights that are not finite: parameter fc.weight is not "
                     "finite (element 100 is nan)");

    expect_code(run("hot", "train --model logreg --data %s --epochs 1 --batch 8 --no-shuffle --init %s",
                    hot_data, hot_init), 1);
    expect(err_text, "epoch 1, step 3: model 'logreg': the loss is");
    expect_code(run("hot-skip", "train --model logreg --data %s --epochs 2 --batch 8 --no-shuffle "
                    "--init %s --skip-nonfinite", hot_data, hot_init), 0);
    expect(out_text, "epoch 1/2  train loss");
    expect(out_text, "skipped 3 non-finite steps");

    /* A learning rate of 1e6 on inputs scaled to 1e35 makes the first
     * update overflow the weights to infinity, with every gradient finite.
     * Skipping the steps that follow cannot save the run: the checkpoint
     * it would write is refused, and the good one stays. */
    const char *ck = tmp_file("good.ckpt"), *w = tmp_file("good.safetensors");
    expect_code(run("good", "train --model logreg --data %s --epochs 1 --batch 8 --no-test --checkpoint %s "
                    "--save %s", hot_data, ck, w), 0);
    copy_file(ck, tmp_file("good.ckpt.copy"));
    copy_file(w, tmp_file("good.safetensors.copy"));
    expect_code(run("diverge", "train --model logreg --data %s --epochs 1 --batch 8 --lr 1e6 --normalize "
                    "0,1e-35 --skip-nonfinite --checkpoint %s --save %s", hot_data, ck, w), 1);
    expect(err_text, "good.ckpt: checkpoint not written, the previous one is kept: parameter "
                     "fc.weight is not finite");
    assert_same_file(ck, tmp_file("good.ckpt.copy"));
    assert_same_file(w, tmp_file("good.safetensors.copy"));
    assert_no_temporaries(tmp);
}

/* ---- failed writes ------------------------------------------------------------------------- */

/* Train logreg briefly, saving to dir/w.safetensors and checkpointing to
 * dir/c.ckpt, with writes capped at fsize bytes (0: none). */
static int brief_run(const char *tag, const char *dir, long fsize, const char *what) {
    child c = start(tag, NULL, fsize, "train --model logreg --data %s --steps 4 --batch 8 --no-test "
                    "--seed %d %s %s", data, fsize ? 9 : 1, what,
                    path_in(dir, strstr(what, "save") ? "w.safetensors" : "c.ckpt"));
    return finish(&c);
}

/* First good files, then a write that fails: it must say why, exit 1,
 * and leave the good file byte for byte with no temporary beside it. */
static void check_failed_writes(const char *dir, long fsize, void (*fill)(const char *),
                                const char *reason) {
    const char *kinds[2] = {"--save", "--checkpoint"};
    for (int k = 0; k < 2; k++) {
        expect_code(brief_run("good", dir, 0, kinds[k]), 0);
        const char *file = path_in(dir, k ? "c.ckpt" : "w.safetensors");
        const char *keep = tmp_file(k ? "kept.ckpt" : "kept.safetensors");
        copy_file(file, keep);
        if (fill) fill(dir);
        expect_code(brief_run("fail", dir, fsize, kinds[k]), 1);
        expect(err_text, file);
        expect(err_text, reason);
        expect(err_text, "the previous file is unchanged");
        assert_same_file(file, keep);
        assert_no_temporaries(dir);
        if (fill) remove(path_in(dir, "filler"));
    }
}

static void fill_disk(const char *dir) {
    FILE *f = fopen(path_in(dir, "filler"), "wb");
    assert_non_null(f);
    static const char block[4096];
    while (fwrite(block, 1, sizeof block, f) == sizeof block && fflush(f) == 0) {}
    fclose(f);
}

static bool mount_tmpfs(const char *dir, const char *options) {
    mkdir(dir, 0755);
    if (mount("nabla-test", dir, "tmpfs", 0, options) == 0) return true;
    print_message("cannot mount a tmpfs on %s: %s\n", dir, strerror(errno));
    return false;
}

static void test_full_disk(void **s) {
    (void)s;
    if (!private_mounts) {
        print_message("skipped: a full disk needs a small tmpfs, which needs root "
                      "(test_write_size_limit covers a failing write)\n");
        skip();
    }
    char dir[128];
    snprintf(dir, sizeof dir, "%s/full", tmp);
    assert_true(mount_tmpfs(dir, "size=512k"));
    check_failed_writes(dir, 0, fill_disk, "No space left on device");
    assert_int_equal(umount(dir), 0);
}

/* RLIMIT_FSIZE: the same failure as a full disk, without root. */
static void test_write_size_limit(void **s) {
    (void)s;
    char dir[128];
    snprintf(dir, sizeof dir, "%s/limit", tmp);
    mkdir(dir, 0755);
    check_failed_writes(dir, 16 << 10, NULL, "File too large");
}

/* A directory where a file should go, or a file where a directory should
 * be: refused before training, nothing touched. */
static void test_unwritable_paths(void **s) {
    (void)s;
    const char *dir = tmp_file("adir"), *file = tmp_file("afile");
    mkdir(dir, 0755);
    FILE *f = fopen(file, "w");
    assert_non_null(f);
    fputs("not a directory\n", f);
    fclose(f);
    expect_code(run("adir", "train --model logreg --data %s --steps 2 --save %s", data, dir), 2);
    expect(err_text, "that is a directory");
    expect_code(run("adir", "train --model logreg --data %s --steps 2 --checkpoint %s", data, dir), 2);
    expect(err_text, "that is a directory");
    expect_code(run("afile", "train --model logreg --data %s --steps 2 --save %s/w.safetensors", data,
                    file), 2);
    expect(err_text, "cannot write to directory");
    expect(err_text, "not a directory");
    struct stat st;
    assert_int_equal(stat(dir, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_no_temporaries(dir);
    assert_no_temporaries(tmp);
}

/* A read-only directory: root writes through permission bits, so it takes
 * a read-only mount, or, for anyone else, mode 0555. --save and
 * --checkpoint there are refused before training; a stop whose default
 * checkpoint would go there (the working directory) fails to write it and
 * says so, exiting 1. */
static void test_read_only_directory(void **s) {
    (void)s;
    char dir[128];
    snprintf(dir, sizeof dir, "%s/ro", tmp);
    bool mounted = false;
    if (private_mounts) {
        if (!mount_tmpfs(dir, "size=1m")) skip();
        mounted = true;
    } else if (geteuid() != 0) {
        mkdir(dir, 0755);
    } else {
        print_message("skipped: root ignores permission bits, and no read-only mount can be made\n");
        skip();
    }
    expect_code(brief_run("ro-good", dir, 0, "--save"), 0);
    const char *w = path_in(dir, "w.safetensors");
    copy_file(w, tmp_file("ro-kept.safetensors"));
    if (mounted) assert_int_equal(mount(NULL, dir, NULL, MS_REMOUNT | MS_RDONLY, NULL), 0);
    else assert_int_equal(chmod(dir, 0555), 0);

    expect_code(brief_run("ro", dir, 0, "--save"), 2);
    expect(err_text, "cannot write to directory");
    expect_code(brief_run("ro", dir, 0, "--checkpoint"), 2);
    expect(err_text, "cannot write to directory");

    child c = start("ro-stop", dir, 0, "%s", common);
    assert_true(wait_for_output(&c, "parameters;"));
    kill(c.pid, SIGTERM);
    expect_code(finish(&c), 1);
    expect(err_text, "stopped after step");
    expect(err_text, "but the checkpoint was not written");
    expect(err_text, "mlp.ckpt.safetensors");
    assert_false(exists(path_in(dir, "mlp.ckpt.safetensors")));
    assert_same_file(w, tmp_file("ro-kept.safetensors"));
    assert_no_temporaries(dir);
    if (mounted) assert_int_equal(umount(dir), 0);
    else chmod(dir, 0755);
}

/* ---- error paths ----------------------------------------------------------------------- */

/* Each mistake exits with its code and a message, and nothing else: in the
 * sanitizer build a leak on the way out would be reported (and fail). */
static void test_error_paths_exit_cleanly(void **s) {
    (void)s;
    const char *junk = tmp_file("junk.safetensors"), *w = tmp_file("ok.safetensors");
    FILE *f = fopen(junk, "wb");
    assert_non_null(f);
    fputs("\x10\0\0\0\0\0\0\0{\"a\":{\"dtype\":", f);
    fclose(f);
    expect_code(run("ok", "train --model logreg --data %s --steps 2 --no-test --save %s", data, w), 0);
    static const struct {
        int code;
        const char *args, *needle;
    } cases[] = {
        {2, "train --model logreg --checkpoint-every 5 --steps 1", "--checkpoint-every needs --checkpoint"},
        {2, "train --model logreg --bogus", "unknown option '--bogus'"},
        {1, "train --model logreg --data /no/such/dir --steps 1", "/no/such/dir"},
        {1, "train --model logreg --data DATA --steps 1 --init JUNK", "junk.safetensors"},
        {1, "train --model logreg --data DATA --steps 1 --resume /no/such.ckpt", "/no/such.ckpt"},
        {1, "train --model logreg --data DATA --steps 1 --resume JUNK", "junk.safetensors"},
        {1, "train --model logreg --data DATA --steps 1 --resume OK", "not a nabla checkpoint"},
        {2, "train --model /no/such.net --steps 1", "/no/such.net"},
        {2, "eval --model logreg --weights OK --bogus", "unknown option '--bogus'"},
        {1, "eval --model logreg --weights /no/such.safetensors --data DATA", "/no/such.safetensors"},
        {1, "eval --model logreg --weights JUNK --data DATA", "junk.safetensors"},
        {1, "eval --model logreg --weights OK --data /no/such/dir", "/no/such/dir"},
        {1, "eval --model lenet5 --weights OK --data DATA", "conv1.weight"},
        {2, "predict --model logreg --weights OK --bogus x.png", "unknown option '--bogus'"},
        {1, "predict --model logreg --weights JUNK x.png", "junk.safetensors"},
        {1, "predict --model logreg --weights /no/such.safetensors x.png", "/no/such.safetensors"},
        {1, "predict --model logreg --weights OK /no/such.png", "/no/such.png"},
        {1, "predict --model logreg --weights OK JUNK", "junk.safetensors"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        /* DATA, JUNK and OK stand for the paths made above. */
        char args[1024] = "";
        for (const char *p = cases[i].args; *p;) {
            const char *sub = !strncmp(p, "DATA", 4) ? data : !strncmp(p, "JUNK", 4) ? junk
                              : !strncmp(p, "OK", 2) ? w : NULL;
            size_t used = strlen(args);
            if (sub) {
                snprintf(args + used, sizeof args - used, "%s", sub);
                p += strncmp(p, "OK", 2) ? 4 : 2;
            } else {
                snprintf(args + used, sizeof args - used, "%c", *p++);
            }
        }
        int code = run("error", "%s", args);
        if (code != cases[i].code) print_error("nabla %s\n", args);
        expect_code(code, cases[i].code);
        expect(err_text, cases[i].needle);
    }
}

int main(void) {
    /* A mount namespace of our own, private all the way down, so that the
     * tmpfs mounts below are seen by no one else and vanish with us. Must
     * come before any thread exists. */
    private_mounts = geteuid() == 0 && unshare(CLONE_NEWNS) == 0 &&
                     mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sigkill_and_resume_is_bit_identical),
        cmocka_unit_test(test_sigterm_stops_with_checkpoint),
        cmocka_unit_test(test_sigint_stops_with_default_checkpoint),
        cmocka_unit_test(test_nonfinite_runs),
        cmocka_unit_test(test_full_disk),
        cmocka_unit_test(test_write_size_limit),
        cmocka_unit_test(test_unwritable_paths),
        cmocka_unit_test(test_read_only_directory),
        cmocka_unit_test(test_error_paths_exit_cleanly),
    };
    return cmocka_run_group_tests_name("cli_robust", tests, setup, teardown);
}
