/* cmd_train.c — `nabla train`: build a model, load MNIST-format data, train
 * with the chosen optimizer and schedule, report each epoch, save weights;
 * checkpoint the run, and on SIGINT or SIGTERM stop it cleanly with a
 * checkpoint to resume from. */
#include "cli.h"
#include "cli_data.h"
#include "metrics_log.h"
#include "progress.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char help[] =
    "usage: nabla train --model lenet5|alexnet|resnet18|mlp|logreg|FILE [options]\n"
    "\n"
    "Train a classifier and print, after each epoch, the training loss, the\n"
    "test loss and accuracy, and the training speed in images per second.\n"
    "\n"
    "  --model M           a built-in model or a network file (like examples/lenet5.net)\n"
    "  --data DIR          MNIST IDX files, CIFAR-10/100 binaries or an image folder\n"
    "                      (DIR/train/CLASS/*.jpg|png|pgm, DIR/val/...); the layout\n"
    "                      is detected (default " NB_FASHION_MNIST_DIR ")\n"
    "  --labels L          CIFAR-100: fine (default, 100 classes) or coarse (20)\n"
    "  --resize S          folder images: shorter side to S, then the centre crop\n"
    "                      (default round(size / 0.875); images at the size pass)\n"
    "  --skip-bad-images   leave corrupt images out of their batch, counted in the\n"
    "                      epoch's line, instead of stopping\n"
    "  --cache             keep decoded folder images in memory (up to half of it)\n"
    "                      so later epochs do not read and decode them again\n"
    "  --workers N         threads that read, decode and augment batches ahead of\n"
    "                      the step (default 0: each batch when it is needed, on\n"
    "                      the --threads threads); same results for any N\n"
    "  --augment LIST      training augmentation, torchvision's: rrc (RandomResized-\n"
    "                      Crop), flip (horizontal, p 0.5), crop:P (RandomCrop with\n"
    "                      P pixels of zero padding); e.g. --augment crop:4,flip\n"
    "  --max-pixels N      refuse larger images (default 89478485, as Pillow)\n"
    "  --epochs N          epochs to train (default 10)\n"
    "  --steps N           train this many batches instead, ending mid-epoch if need be\n"
    "  --batch B           batch size (default 64); the last partial batch is used\n"
    "  --optimizer K       sgd, adam or adamw (default sgd)\n"
    "  --lr X              learning rate (default for sgd: lenet5 0.02, mlp 0.2,\n"
    "                      logreg 0.05, alexnet 0.01, files 0.02; adam/adamw 0.001)\n"
    "  --momentum M        SGD momentum (default 0.9)\n"
    "  --nesterov          Nesterov momentum\n"
    "  --weight-decay W    L2 penalty (decoupled for adamw; default 0, adamw 0.01)\n"
    "  --schedule S        cosine (annealed to 0 over the run: the default),\n"
    "                      constant, step:SIZE:GAMMA (every SIZE steps) or\n"
    "                      inv:GAMMA:POWER\n"
    "  --clip-norm X       scale gradients to a global L2 norm of at most X\n"
    "  --warmup N          raise the lr linearly over the first N steps (from lr/N,\n"
    "                      torch's LinearLR), then run the schedule over the rest\n"
    "  --label-smoothing X train on the target (1-X) onehot + X/classes, as\n"
    "                      F.cross_entropy(label_smoothing=X); test loss stays plain\n"
    "  --no-decay-norm-bias  no weight decay on biases and batch norm parameters\n"
    "  --seed S            parameter init and shuffle seed (default 0)\n"
    "  --threads T         worker threads\n"
    "  --init W            start from these weights (.safetensors)\n"
    "  --save W            write the trained weights here (.safetensors)\n"
    "  --checkpoint C      write a resumable checkpoint here after every epoch\n"
    "  --checkpoint-every N  write it every N steps instead (and at the end)\n"
    "  --resume C          continue the run saved in checkpoint C (same options)\n"
    "  --skip-nonfinite    skip a step whose loss or gradient is NaN or infinite\n"
    "                      (no update; counted in the epoch's line) instead of\n"
    "                      stopping with an error\n"
    "  --no-shuffle        keep the file order\n"
    "  --no-test           skip the test-set evaluation after each epoch\n"
    "  --profile           print the time spent in each operator and node at the end\n"
    "  --log FILE          write metrics to FILE.csv or FILE.jsonl: step, epoch, lr,\n"
    "                      losses, test accuracy, img/s, wall time; a resumed run\n"
    "                      appends to it without repeating records\n"
    "  --log-every N       a record every N steps as well as each epoch's (default\n"
    "                      100; 0: epochs only)\n"
    "  --quiet             no live progress bar (without a terminal on stderr there\n"
    "                      is none anyway: one line per epoch either way)\n"
    "  --mpi-timeout S     under mpirun: end the job when a rank waits more than S\n"
    "                      seconds for the others (default 300)\n"
    "  --mpi-reduce R      how the ranks sum gradients: overlap (buckets reduced\n"
    "                      while backward runs: the default), after-backward (the\n"
    "                      same buckets, the same sums, after it) or one-block\n"
    "  --mpi-bucket-kb K   bucket size (default 1024)\n"
    "  --hidden H          mlp hidden width (default 128)\n"
    "  --classes N         output classes (default 10; alexnet, resnet18 1000)\n"
    "  --normalize M,S     feed (x/255 - M) / S; per channel: M1,..,Mc,S1,..,Sc;\n"
    "                      imagenet: 0.485,0.456,0.406,0.229,0.224,0.225\n"
    "                      (default x/255; saved with the weights)\n"
    "\n"
    "SIGINT (Ctrl-C) or SIGTERM stops training after the current step, writes a\n"
    "checkpoint (to --checkpoint C; without it to W.ckpt.safetensors next to\n"
    "--save W.safetensors, else MODEL.ckpt.safetensors here), prints the command\n"
    "that resumes the run and exits with 130 (SIGINT) or 143 (SIGTERM). A second\n"
    "signal ends the program at once; the last checkpoint stays whole.\n"
    "\n"
    "Under mpirun (a build with Open MPI) every process is one rank of a data-\n"
    "parallel run: each trains on its share of every batch of --batch images and\n"
    "the gradients are averaged, so N ranks train as one process would. Rank 0\n"
    "alone prints and writes files; a checkpoint resumes on any number of ranks:\n"
    "  mpirun -np 4 nabla train --model lenet5 --threads 1 --checkpoint c.safetensors\n";

typedef struct train_args {
    cli_model_opts mo;
    const char *data, *init, *save, *checkpoint, *resume, *schedule, *log;
    long epochs, steps, batch, checkpoint_every, log_every, workers;
    int shuffle, test, skip_nonfinite;
    int argc;    /* the command line, to print the one that resumes */
    char **argv;
    nb_optimizer_opts opt;
    bool lr_set, momentum_set, decay_set, profile, quiet;
    cli_data_opts data_opts;
    nb_augment augment;
    bool augment_set;
    float label_smoothing;
    long warmup;
    bool no_decay_norm_bias;
    nb_dist *dist;       /* under mpirun: the ranks; NULL alone */
    double mpi_timeout;
    nb_dist_reduce mpi_reduce;
    long mpi_bucket_kb;
} train_args;

/* What the training callbacks share: the live bar and the --log file. */
typedef struct train_ui {
    cli_progress bar;
    metrics_log log;
    bool logging;
} train_ui;

static int parse_optimizer(const char *v, nb_optimizer_kind *kind) {
    if (!strcmp(v, "sgd")) *kind = NB_OPT_SGD;
    else if (!strcmp(v, "adam")) *kind = NB_OPT_ADAM;
    else if (!strcmp(v, "adamw")) *kind = NB_OPT_ADAMW;
    else {
        cli_error("--optimizer: unknown optimizer '%s' (expected sgd, adam or adamw)", v);
        return -1;
    }
    return 1;
}

/* One option of train's own (the model options are handled before). */
static int train_option(cli_args *a, train_args *t) {
    const char *v;
    float f;
    if (cli_is(a, "--no-shuffle")) return cli_flag(a) ? (t->shuffle = 0, 1) : -1;
    if (cli_is(a, "--no-test")) return cli_flag(a) ? (t->test = 0, 1) : -1;
    if (cli_is(a, "--profile")) return cli_flag(a) ? (t->profile = true, 1) : -1;
    if (cli_is(a, "--quiet")) return cli_flag(a) ? (t->quiet = true, 1) : -1;
    if (cli_is(a, "--nesterov")) return cli_flag(a) ? (t->opt.nesterov = 1, 1) : -1;
    if (cli_is(a, "--skip-nonfinite")) return cli_flag(a) ? (t->skip_nonfinite = 1, 1) : -1;
    if (cli_is(a, "--augment")) {
        if (!(v = cli_value(a))) return -1;
        if (nb_augment_parse(v, &t->augment)) {
            cli_error("--augment: %s", nb_last_error());
            return -1;
        }
        t->augment_set = true;
        return 1;
    }
    if (cli_is(a, "--no-decay-norm-bias")) return cli_flag(a) ? (t->no_decay_norm_bias = true, 1) : -1;
    if (cli_is(a, "--warmup"))
        return (v = cli_value(a)) && cli_int("--warmup", v, 0, 1L << 40, &t->warmup) ? 1 : -1;
    if (cli_is(a, "--workers"))
        return (v = cli_value(a)) && cli_int("--workers", v, 0, 256, &t->workers) ? 1 : -1;
    if (cli_is(a, "--mpi-timeout")) {
        if (!(v = cli_value(a)) || !cli_float("--mpi-timeout", v, 1e-3, 1e9, &f)) return -1;
        t->mpi_timeout = f;
        return 1;
    }
    if (cli_is(a, "--mpi-reduce")) {
        static const char *const names[] = {"overlap", "after-backward", "one-block"};
        if (!(v = cli_value(a))) return -1;
        for (int i = 0; i < 3; i++)
            if (!strcmp(v, names[i])) return t->mpi_reduce = (nb_dist_reduce)i, 1;
        cli_error("--mpi-reduce: '%s': expected overlap, after-backward or one-block", v);
        return -1;
    }
    if (cli_is(a, "--mpi-bucket-kb"))
        return (v = cli_value(a)) && cli_int("--mpi-bucket-kb", v, 1, 1L << 30, &t->mpi_bucket_kb)
                   ? 1 : -1;
    if (cli_is(a, "--label-smoothing"))
        return (v = cli_value(a)) && cli_float("--label-smoothing", v, 0.0, 1.0, &t->label_smoothing)
                   ? 1 : -1;
    static const char *const valued[] = {"--data", "--epochs", "--steps", "--batch", "--lr",
                                         "--optimizer", "--momentum", "--weight-decay", "--schedule",
                                         "--clip-norm", "--init", "--save", "--checkpoint", "--resume",
                                         "--checkpoint-every", "--log", "--log-every"};
    int k = -1;
    for (int i = 0; i < (int)(sizeof valued / sizeof *valued); i++)
        if (cli_is(a, valued[i])) k = i;
    if (k < 0) return 0;
    if (!(v = cli_value(a))) return -1;
    switch (k) {
    case 0: t->data = v; return 1;
    case 1: return cli_int("--epochs", v, 1, 1000000, &t->epochs) ? 1 : -1;
    case 2: return cli_int("--steps", v, 1, 1L << 40, &t->steps) ? 1 : -1;
    case 3: return cli_int("--batch", v, 1, 1 << 20, &t->batch) ? 1 : -1;
    case 4:
        if (!cli_float("--lr", v, 0.0, 1e6, &f)) return -1;
        t->opt.lr = f, t->lr_set = true;
        return 1;
    case 5: return parse_optimizer(v, &t->opt.kind);
    case 6:
        if (!cli_float("--momentum", v, 0.0, 1.0, &f)) return -1;
        t->opt.momentum = f, t->momentum_set = true;
        return 1;
    case 7:
        if (!cli_float("--weight-decay", v, 0.0, 1e6, &f)) return -1;
        t->opt.weight_decay = f, t->decay_set = true;
        return 1;
    case 8: t->schedule = v; return 1;
    case 9:
        if (!cli_float("--clip-norm", v, 1e-12, 1e12, &f)) return -1;
        t->opt.clip_norm = f;
        return 1;
    case 10: t->init = v; return 1;
    case 11: t->save = v; return 1;
    case 12: t->checkpoint = v; return 1;
    case 13: t->resume = v; return 1;
    case 14: return cli_int("--checkpoint-every", v, 1, 1L << 40, &t->checkpoint_every) ? 1 : -1;
    case 15: t->log = v; return metrics_log_check_path(v) ? 1 : -1;
    default: return cli_int("--log-every", v, 0, 1L << 40, &t->log_every) ? 1 : -1;
    }
}

/* constant | step:SIZE:GAMMA | cosine | inv:GAMMA:POWER */
static bool parse_schedule(const char *s, nb_optimizer_opts *o) {
    char buf[128];
    snprintf(buf, sizeof buf, "%s", s);
    char *a = strchr(buf, ':'), *b = NULL;
    if (a) {
        *a++ = '\0';
        if ((b = strchr(a, ':'))) *b++ = '\0';
    }
    long size;
    if (!strcmp(buf, "constant") && !a) o->schedule = NB_SCHED_CONSTANT;
    else if (!strcmp(buf, "cosine") && !a) o->schedule = NB_SCHED_COSINE;
    else if (!strcmp(buf, "step") && a && b) {
        o->schedule = NB_SCHED_STEP;
        if (!cli_int("--schedule step SIZE", a, 1, 1L << 40, &size) ||
            !cli_float("--schedule step GAMMA", b, 0.0, 1e6, &o->gamma))
            return false;
        o->step_size = (int)(size > 2147483647L ? 2147483647L : size);
    } else if (!strcmp(buf, "inv") && a && b) {
        o->schedule = NB_SCHED_INV;
        if (!cli_float("--schedule inv GAMMA", a, 0.0, 1e6, &o->gamma) ||
            !cli_float("--schedule inv POWER", b, 0.0, 1e6, &o->power))
            return false;
    } else {
        cli_error("--schedule: '%s': expected constant, step:SIZE:GAMMA, cosine or inv:GAMMA:POWER", s);
        return false;
    }
    return true;
}

/* A --save or --checkpoint path that cannot be written would only fail
 * after the whole run: say so before training. This is a courtesy, not a
 * guarantee (the disk may fill meanwhile); what keeps the previous file
 * intact is that the write itself goes through a temporary and a rename. */
static bool writable_path(const char *opt, const char *path) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash) snprintf(dir, sizeof dir, ".");
    else if (slash == dir) dir[1] = '\0';
    else *slash = '\0';
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        cli_error("%s %s: that is a directory; give a file name", opt, path);
        return false;
    }
    const char *why = NULL;
    if (stat(dir, &st) != 0) why = strerror(errno);
    else if (!S_ISDIR(st.st_mode)) why = "not a directory";
    else if (access(dir, W_OK) != 0) why = strerror(errno);
    if (!why) return true;
    cli_error("%s %s: cannot write to directory %s: %s", opt, path, dir, why);
    return false;
}

/* A write killed before its rename leaves its temporary, PATH.tmp.XXXXXX,
 * beside PATH (which is whole either way). Such leftovers of the files this
 * run will write are cleared first, so that a run killed again and again
 * does not litter its directory. */
static void remove_leftovers(const char *path) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    const char *base = slash ? path + (slash - dir) + 1 : path;
    if (!slash) snprintf(dir, sizeof dir, ".");
    else if (slash == dir) dir[1] = '\0';
    else *slash = '\0';
    DIR *d = opendir(dir);
    if (!d) return;
    size_t n = strlen(base);
    for (struct dirent *e; (e = readdir(d));) {
        const char *name = e->d_name;
        if (strncmp(name, base, n) || strncmp(name + n, ".tmp.", 5) || strlen(name + n + 5) != 6)
            continue;
        char full[8192];
        snprintf(full, sizeof full, "%s/%s", dir, name);
        if (unlink(full) == 0) cli_error("removed %s, left by an interrupted write", full);
    }
    closedir(d);
}

static void on_progress(const nb_progress *p, void *user) {
    train_ui *ui = user;
    cli_progress_update(p, &ui->bar);
    if (ui->logging) metrics_log_progress(&ui->log, p);
}

static void print_epoch(const nb_epoch_report *r, void *user) {
    train_ui *ui = user;
    cli_progress_clear(&ui->bar);
    if (ui->logging) metrics_log_epoch(&ui->log, r);
    printf("epoch %*d/%d  train loss %.4f", r->epochs >= 10 ? 2 : 1, r->epoch, r->epochs, r->train_loss);
    if (!isnan(r->test_loss)) printf("  test loss %.4f  test acc %.2f%%", r->test_loss, 100.0 * r->test_accuracy);
    if (!isnan(r->test_top5)) printf("  top-5 %.2f%%", 100.0 * r->test_top5);
    if (r->skipped) printf("  skipped %ld non-finite step%s", r->skipped, r->skipped == 1 ? "" : "s");
    if (r->bad_images)
        printf("  left out %ld bad image%s", r->bad_images, r->bad_images == 1 ? "" : "s");
    printf("  %.0f img/s  %.1f s\n", r->images_per_s, r->seconds);
    fflush(stdout); /* progress shows as it happens, also through a pipe */
}

/* ---- stopping on a signal ------------------------------------------------- */

/* The signal that asked training to stop, 0 while none has. The handler
 * only records it; nb_train looks between steps, writes a checkpoint and
 * returns NB_ERR_STOPPED. */
static volatile sig_atomic_t stop_signal;

static void on_stop_signal(int sig) { stop_signal = sig; }

static const int stop_signals[2] = {SIGINT, SIGTERM};

/* SA_RESETHAND makes a second signal act at once (the default action ends
 * the program), for a user who will not wait for the step to finish; the
 * checkpoint on disk is whole even then, because it is only ever replaced
 * by a rename. A signal ignored when we started stays ignored: a background
 * job of a non-interactive shell is meant not to see the terminal's
 * Ctrl-C. */
static void catch_stop_signals(struct sigaction old[2]) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESETHAND;
    for (int i = 0; i < 2; i++) {
        sigaction(stop_signals[i], NULL, &old[i]);
        if (old[i].sa_handler != SIG_IGN) sigaction(stop_signals[i], &sa, NULL);
    }
}

static void restore_signals(const struct sigaction old[2]) {
    for (int i = 0; i < 2; i++) sigaction(stop_signals[i], &old[i], NULL);
}

/* Where a stopped run saves itself when no --checkpoint was given: next to
 * the --save file (w.safetensors gives w.ckpt.safetensors), else here under
 * the model's name (lenet5.ckpt.safetensors; nets/small.net gives
 * small.ckpt.safetensors). */
static void default_checkpoint(const train_args *t, char *out, size_t size) {
    static const char ext[] = ".safetensors";
    const char *from = t->save;
    if (!from) {
        const char *slash = strrchr(t->mo.model, '/');
        from = slash ? slash + 1 : t->mo.model;
    }
    size_t n = strlen(from);
    if (t->save && n > strlen(ext) && !strcmp(from + n - strlen(ext), ext)) {
        n -= strlen(ext);
    } else if (!t->save) {
        const char *dot = strrchr(from, '.');
        if (dot && dot != from) n = (size_t)(dot - from);
    }
    snprintf(out, size, "%.*s.ckpt.safetensors", (int)n, from);
}

/* One shell word: as it is when it holds only characters no shell treats
 * specially, else in single quotes (a quote inside written '\''). */
static void print_shell_word(const char *w) {
    static const char plain[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                                "_@%+=:,./-";
    if (*w && strspn(w, plain) == strlen(w)) {
        fputs(w, stderr);
        return;
    }
    fputc('\'', stderr);
    for (; *w; w++) {
        if (*w == '\'') fputs("'\\''", stderr);
        else fputc(*w, stderr);
    }
    fputc('\'', stderr);
}

/* The command that continues the run: this one, with --resume naming the
 * checkpoint in place of any --resume given. */
static void print_resume_command(const train_args *t, const char *checkpoint) {
    fprintf(stderr, "nabla: to resume, run the same command with --resume %s:\n  nabla", checkpoint);
    for (int i = 0; i < t->argc; i++) {
        if (!strcmp(t->argv[i], "--resume")) {
            i++;
            continue;
        }
        if (!strncmp(t->argv[i], "--resume=", 9)) continue;
        fputc(' ', stderr);
        print_shell_word(t->argv[i]);
    }
    fputs(" --resume ", stderr);
    print_shell_word(checkpoint);
    fputc('\n', stderr);
}

static const char *optimizer_name(nb_optimizer_kind k) {
    return k == NB_OPT_SGD ? "sgd" : k == NB_OPT_ADAM ? "adam" : "adamw";
}

/* Load data, build the optimizer and run; the model is ready. */
static int run(train_args *t, nb_model *m) {
    nb_dataset train = {0}, test = {0};
    nb_dataset_info train_info, test_info;
    const char *dir = t->data ? t->data : NB_FASHION_MNIST_DIR;
    int failed = cli_open_data(dir, "train", m, &t->data_opts, false, &train, &train_info);
    if (failed) return failed;
    if (t->test && (failed = cli_open_data(dir, "test", m, &t->data_opts, false, &test, &test_info))) {
        nb_dataset_free(&train);
        nb_dataset_info_free(&train_info);
        return failed;
    }
    if (!t->test) memset(&test_info, 0, sizeof test_info);
    /* The data's class names go into the saved weights, for eval and
     * predict to print. */
    if (train_info.class_names && train_info.classes == nb_model_classes(m))
        nb_model_set_class_names(m, train_info.classes, (const char *const *)train_info.class_names);
    else if (train_info.class_names)
        printf("note: the data has %d classes and the model %d (--classes %d matches them); "
               "the class names are not saved\n", train_info.classes, nb_model_classes(m),
               train_info.classes);
    long per_epoch = (train.count + t->batch - 1) / t->batch;
    if (t->opt.schedule == NB_SCHED_COSINE) {
        /* The cosine anneals over the steps after the warm-up. */
        long total = t->steps ? t->steps : t->epochs * per_epoch;
        t->opt.total_steps = total - t->warmup > 0 ? total - t->warmup : 1;
    }
    size_t n_params = nb_graph_params(nb_model_graph(m), NULL, NULL);
    nb_optimizer *opt = nb_optimizer_new(&t->opt, n_params);
    if (!opt) {
        cli_error("%s", nb_last_error());
        nb_dataset_free(&train);
        nb_dataset_free(&test);
        nb_dataset_info_free(&train_info);
        nb_dataset_info_free(&test_info);
        return EXIT_RUNTIME;
    }
    int excluded = 0;
    if ((t->no_decay_norm_bias && nb_model_no_decay_norm_bias(m, opt, &excluded)) ||
        nb_set_label_smoothing(nb_model_loss(m), t->label_smoothing)) {
        cli_error("%s", nb_last_error());
        nb_optimizer_free(opt);
        nb_dataset_free(&train);
        nb_dataset_free(&test);
        return EXIT_RUNTIME;
    }
    nb_train_opts o = nb_train_defaults();
    o.epochs = (int)t->epochs;
    o.steps = t->steps;
    o.batch = (int)t->batch;
    o.shuffle = t->shuffle;
    o.seed = t->mo.cfg.seed;
    o.test = t->test ? &test : NULL;
    o.checkpoint = t->checkpoint;
    o.checkpoint_every = t->checkpoint_every;
    o.resume = t->resume;
    o.skip_nonfinite = t->skip_nonfinite;
    o.augment = t->augment_set ? &t->augment : NULL;
    o.workers = (int)t->workers;
    o.distributed = t->dist;
    char stop_path[4096];
    default_checkpoint(t, stop_path, sizeof stop_path);
    o.stop = &stop_signal;
    o.stop_checkpoint = stop_path;
    bool writer = nb_dist_rank(t->dist) == 0; /* rank 0 alone writes files */
    if (writer && t->save) remove_leftovers(t->save);
    if (writer) remove_leftovers(t->checkpoint ? t->checkpoint : stop_path);
    o.on_epoch = print_epoch;
    o.on_progress = on_progress;
    train_ui ui;
    memset(&ui, 0, sizeof ui);
    cli_progress_init(&ui.bar, t->quiet);
    o.user = &ui;
    if (writer && t->log &&
        !(ui.logging = metrics_log_open(&ui.log, t->log, t->log_every, t->resume != NULL))) {
        nb_optimizer_free(opt);
        nb_dataset_free(&train);
        nb_dataset_free(&test);
        nb_dataset_info_free(&train_info);
        nb_dataset_info_free(&test_info);
        return EXIT_RUNTIME;
    }
    /* Caught from before the header line: a signal from then on stops the
     * run cleanly (before its first step, if it comes that early). */
    struct sigaction old_handlers[2];
    catch_stop_signals(old_handlers);
    printf("%s: %zu parameters; %s lr %g", nb_model_name(m), n_params, optimizer_name(t->opt.kind),
           (double)t->opt.lr);
    if (t->opt.kind == NB_OPT_SGD && t->opt.momentum > 0) printf(" momentum %g", (double)t->opt.momentum);
    static const char *const schedules[] = {"constant", "step", "cosine", "inv"};
    printf(" %s", schedules[t->opt.schedule]);
    if (t->warmup) printf(" after %ld warm-up steps", t->warmup);
    if (t->opt.weight_decay > 0) printf(" weight decay %g", (double)t->opt.weight_decay);
    if (t->no_decay_norm_bias) printf(" (not on %d bias/norm tensors)", excluded);
    if (t->label_smoothing > 0) printf("; label smoothing %g", (double)t->label_smoothing);
    printf("; batch %ld; ", t->batch);
    if (t->steps) printf("%ld step%s", t->steps, t->steps == 1 ? "" : "s");
    else printf("%ld epoch%s", t->epochs, t->epochs == 1 ? "" : "s");
    printf("; %d training images from %s", train.count, dir);
    if (t->dist) printf("; %d ranks", nb_dist_size(t->dist));
    printf("\n");
    fflush(stdout);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (t->profile) nb_graph_profile(nb_model_graph(m), 1);
    nb_status s = nb_train(m, opt, &train, &o);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    restore_signals(old_handlers);
    cli_progress_clear(&ui.bar); /* a run that stopped mid-epoch leaves its bar */
    bool log_ok = !ui.logging || metrics_log_close(&ui.log);
    if (t->profile) cli_profile_print(nb_model_graph(m), stdout);
    int code = 0;
    if (s == NB_ERR_STOPPED) {
        /* Data-parallel, the ranks stop together when any one is
         * signalled; rank 0 says so, as SIGTERM if the signal was not its
         * own. */
        int sig = stop_signal ? stop_signal : SIGTERM;
        if (writer) {
            cli_error("%s: %s", sig == SIGINT ? "SIGINT" : "SIGTERM", nb_last_error());
            print_resume_command(t, t->checkpoint ? t->checkpoint : stop_path);
        }
        /* The shell's convention for "ended by signal N". */
        code = 128 + sig;
    } else if (s) {
        if (t->dist) cli_error("rank %d of %d: %s", nb_dist_rank(t->dist), nb_dist_size(t->dist),
                               nb_last_error());
        else cli_error("%s", nb_last_error());
        code = s == NB_ERR_SHAPE || s == NB_ERR_ARG ? EXIT_USAGE : EXIT_RUNTIME;
    } else {
        printf("done in %.1f s\n", (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec));
        if (writer && t->save) {
            if (nb_model_save(m, t->save)) {
                cli_error("%s", nb_last_error());
                code = EXIT_RUNTIME;
            } else {
                printf("saved weights to %s\n", t->save);
            }
        }
    }
    if (!log_ok && !code) code = EXIT_RUNTIME;
    nb_optimizer_free(opt);
    nb_dataset_free(&train);
    nb_dataset_free(&test);
    nb_dataset_info_free(&train_info);
    nb_dataset_info_free(&test_info);
    return code;
}

/* SGD learning rates (momentum 0.9, cosine schedule, batch 64, 10 epochs)
 * measured on Fashion-MNIST: lenet5 90.6%, mlp 88.7%, logreg 84.6% test
 * accuracy. AlexNet and network files get LeNet-5's, halved for AlexNet's
 * depth. */
static float default_sgd_lr(const char *model) {
    if (!model) return 0.02f;
    if (!strcmp(model, "mlp")) return 0.2f; /* sigmoid units learn slowly */
    if (!strcmp(model, "logreg")) return 0.05f;
    if (!strcmp(model, "alexnet")) return 0.01f;
    return 0.02f;
}

/* Under mpirun, join the other ranks: rank 0 keeps stdout, the others
 * print only their errors. Without MPI in this build, a job of several
 * processes would have each train alone: refuse it. */
static bool join_ranks(train_args *t) {
    if (!nb_dist_launched()) return true;
    if (!(t->dist = nb_dist_init(NULL, NULL))) {
        cli_error("train: started as one of several processes (mpirun), but %s", nb_last_error());
        return false;
    }
    size_t bucket_bytes = (size_t)(t->mpi_bucket_kb ? t->mpi_bucket_kb : 1024) << 10;
    if ((t->mpi_timeout > 0 && nb_dist_set_timeout(t->dist, t->mpi_timeout)) ||
        nb_dist_set_reduce(t->dist, t->mpi_reduce, bucket_bytes)) {
        cli_error("%s", nb_last_error());
        return false;
    }
    if (nb_dist_rank(t->dist) != 0) {
        if (!freopen("/dev/null", "w", stdout)) return false;
        t->quiet = true;
    }
    return true;
}

/* A failure on one rank ends the whole job (the others may be waiting for
 * it); a run that ended well, or stopped on a signal every rank agreed on,
 * finalises MPI on every rank. */
static int leave_ranks(train_args *t, int code) {
    if (!t->dist) return code;
    fflush(stdout);
    fflush(stderr);
    if (code && code != 128 + SIGINT && code != 128 + SIGTERM) nb_dist_abort(t->dist, code);
    nb_dist_free(t->dist);
    return code;
}

int cmd_train(int argc, char **argv) {
    train_args t;
    memset(&t, 0, sizeof t);
    t.shuffle = t.test = 1;
    t.batch = 64;
    t.log_every = 100;
    t.opt = nb_optimizer_defaults(NB_OPT_SGD);
    cli_args a = {argc, argv, 1, "train", NULL, NULL, help};
    const char *arg;
    while (cli_next(&a, &arg)) {
        if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
            fputs(help, stdout);
            return 0;
        }
        int r = cli_model_option(&a, &t.mo);
        if (r == 0) r = train_option(&a, &t);
        if (r == 0) r = cli_data_option(&a, &t.data_opts);
        if (r < 0) return EXIT_USAGE;
        if (r == 0) return cli_unknown(&a, arg);
    }
    if (t.epochs && t.steps) {
        cli_error("train: give --epochs or --steps, not both");
        return EXIT_USAGE;
    }
    if (!t.epochs && !t.steps) t.epochs = 10;
    if (t.checkpoint_every && !t.checkpoint) {
        cli_error("train: --checkpoint-every needs --checkpoint FILE to write to");
        return EXIT_USAGE;
    }
    t.argc = argc;
    t.argv = argv;
    /* The optimizer's own defaults, then the model's recipe (SGD with
     * momentum 0.9 and cosine annealing), then the options given. */
    nb_optimizer_opts given = t.opt;
    t.opt = nb_optimizer_defaults(given.kind);
    if (given.kind == NB_OPT_SGD) t.opt.lr = default_sgd_lr(t.mo.model), t.opt.momentum = 0.9f;
    t.opt.schedule = NB_SCHED_COSINE;
    if (t.lr_set) t.opt.lr = given.lr;
    if (t.momentum_set) t.opt.momentum = given.momentum;
    if (t.decay_set) t.opt.weight_decay = given.weight_decay;
    t.opt.nesterov = given.nesterov;
    t.opt.clip_norm = given.clip_norm;
    t.opt.warmup_steps = t.warmup;
    if (t.schedule && !parse_schedule(t.schedule, &t.opt)) return EXIT_USAGE;
    /* Check the optimizer's options now, not after loading the data: a
     * throwaway optimizer of one parameter says what is wrong. */
    nb_optimizer_opts probe_opts = t.opt;
    probe_opts.total_steps = 1;
    nb_optimizer *probe = nb_optimizer_new(&probe_opts, 1);
    if (!probe) {
        cli_error("%s", nb_last_error());
        return EXIT_USAGE;
    }
    nb_optimizer_free(probe);
    if ((t.save && !writable_path("--save", t.save)) ||
        (t.checkpoint && !writable_path("--checkpoint", t.checkpoint)) ||
        (t.log && !writable_path("--log", t.log)))
        return EXIT_USAGE;
    if (!join_ranks(&t)) return leave_ranks(&t, EXIT_USAGE);
    int code;
    nb_model *m = cli_open_model(&t.mo, &code);
    if (!m) return leave_ranks(&t, code);
    if (t.init && nb_model_load(m, t.init)) {
        cli_error("--init: %s", nb_last_error());
        nb_model_free(m);
        return leave_ranks(&t, EXIT_RUNTIME);
    }
    code = cli_normalize(m, &t.mo) ? run(&t, m) : EXIT_USAGE;
    nb_model_free(m);
    return leave_ranks(&t, code);
}
