/* nabla.c — the command-line tool: a thin client of nabla.h. */
#include "nabla.h"

#include <stdio.h>
#include <string.h>

static const char usage[] =
    "usage: nabla <command> [options]\n"
    "\n"
    "commands:\n"
    "  --help       show this help\n"
    "  --version    print the version\n";

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        fputs(usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("nabla %s\n", NB_VERSION);
        return 0;
    }
    fprintf(stderr, "nabla: unknown command '%s' (try nabla --help)\n", argv[1]);
    return 2;
}
