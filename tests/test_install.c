/* test_install.c — `make install` and `make uninstall` into temporary
 * directories, and a program built against the installed library with
 * pkg-config, dynamically and statically (tests/install_check.sh does the
 * work; this wraps it as a cmocka case so the suite counts it). */
#include "support.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>

static void test_install_and_link_both_ways(void **s) {
    (void)s;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "sh tests/install_check.sh %s >%s/log 2>&1", tmpdir, tmpdir);
    int status = system(cmd);
    if (!WIFEXITED(status) || WEXITSTATUS(status)) {
        char log[8192] = "";
        FILE *f = fopen(tmp_path("log"), "r");
        if (f) {
            log[fread(log, 1, sizeof log - 1, f)] = '\0';
            fclose(f);
        }
        print_error("tests/install_check.sh failed:\n%s\n", log);
    }
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_install_and_link_both_ways),
    };
    return cmocka_run_group_tests(tests, tmpdir_setup, tmpdir_teardown);
}
