/* test_tutorial.c — docs/tutorial.md as a reader follows it: every program
 * in it compiles against the library and runs (the graph example printing
 * exactly what the tutorial shows), and every command runs
 * (tests/tutorial_check.sh does the work). Needs Fashion-MNIST. */
#include "support.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>

static void test_tutorial_runs_as_written(void **s) {
    (void)s;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "sh tests/tutorial_check.sh %s >%s/log 2>&1", tmpdir, tmpdir);
    int status = system(cmd);
    if (!WIFEXITED(status) || WEXITSTATUS(status)) {
        char log[16384] = "";
        FILE *f = fopen(tmp_path("log"), "r");
        if (f) {
            log[fread(log, 1, sizeof log - 1, f)] = '\0';
            fclose(f);
        }
        print_error("tests/tutorial_check.sh failed:\n%s\n", log);
    }
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tutorial_runs_as_written),
    };
    return cmocka_run_group_tests(tests, tmpdir_setup, tmpdir_teardown);
}
