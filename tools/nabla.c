/* nabla.c — the command-line tool: a thin client of nabla.h. Each
 * subcommand lives in its own cmd_*.c file; this one only dispatches. */
#include "cli.h"

#include <stdio.h>
#include <string.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

/* The loader decodes each image into buffers of half a megabyte or more
 * and frees them again. glibc would hand such blocks back to the kernel
 * each time (mmap, or trimming the heap's top) and fault fresh zeroed pages
 * in for the next image, a quarter of a JPEG epoch's time; keeping them in
 * the heap reuses them. A process-wide setting, so the program makes it,
 * not the library. */
static void keep_freed_memory(void) {
#ifdef __GLIBC__
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 256 << 20);
#endif
}

int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_predict(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_summary(int argc, char **argv);
int cmd_plot(int argc, char **argv);

static const char usage[] =
    "usage: nabla <command> [options]\n"
    "\n"
    "commands:\n"
    "  train      train a model (Fashion-MNIST, IDX, CIFAR or an image folder)\n"
    "  eval       loss, accuracy and confusion matrix of saved weights\n"
    "  predict    classify images (PNG, JPEG, PGM)\n"
    "  bench      training and inference speed, and time per layer\n"
    "  summary    each layer's output shape, parameters and multiply-adds\n"
    "  plot       draw the curves of a training log as a PNG\n"
    "\n"
    "  --help     show this help (nabla <command> --help for a command's options)\n"
    "  --version  print the version and the SIMD target that runs\n"
    "  --isa-list print the SIMD targets this CPU runs, best first (NABLA_ISA=T forces one)\n";

int main(int argc, char **argv) {
    keep_freed_memory();
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        fputs(usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? EXIT_USAGE : 0;
    }
    /* A NABLA_ISA the CPU cannot run is refused before anything runs. */
    if (nb_isa_check_env() != NB_OK) {
        cli_error("%s", nb_last_error());
        return EXIT_USAGE;
    }
    if (!strcmp(argv[1], "--isa-list")) { /* one line: the targets this CPU runs, best first */
        for (const char *c = nb_isa_targets(); *c; c++)
            if (*c != ',') putchar(*c);
        putchar('\n');
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("nabla %s\nSIMD target: %s (this CPU runs: %s)\n", NB_VERSION, nb_isa_name(), nb_isa_targets());
        return 0;
    }
    /* Subcommands see their own options from argv[1] on. */
    if (!strcmp(argv[1], "train")) return cmd_train(argc - 1, argv + 1);
    if (!strcmp(argv[1], "eval")) return cmd_eval(argc - 1, argv + 1);
    if (!strcmp(argv[1], "predict")) return cmd_predict(argc - 1, argv + 1);
    if (!strcmp(argv[1], "bench")) return cmd_bench(argc - 1, argv + 1);
    if (!strcmp(argv[1], "summary")) return cmd_summary(argc - 1, argv + 1);
    if (!strcmp(argv[1], "plot")) return cmd_plot(argc - 1, argv + 1);
    static const char *const commands[] = {"train", "eval", "predict", "bench", "summary", "plot"};
    const char *near = cli_nearest(argv[1], commands, 6);
    if (near) cli_error("unknown command '%s'; did you mean %s? (try nabla --help)", argv[1], near);
    else cli_error("unknown command '%s' (try nabla --help)", argv[1]);
    return EXIT_USAGE;
}
