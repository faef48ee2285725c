/* test_tutorial.c — docs/tutorial.md as a reader follows it: every program
 * in it compiles against the library and runs (the graph example printing
 * exactly what the tutorial shows), and every command runs
 * (tests/tutorial_check.sh does the work). Needs Fashion-MNIST. */
#include "support.h"

static void test_tutorial_runs_as_written(void **s) {
    (void)s;
    assert_script_passes("tests/tutorial_check.sh");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tutorial_runs_as_written),
    };
    return cmocka_run_group_tests(tests, tmpdir_setup, tmpdir_teardown);
}
