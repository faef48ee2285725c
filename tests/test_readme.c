/* test_readme.c — README.md as a user follows it: every ```sh block runs
 * as written, in order, and the command-line reference lists every option
 * of every command's --help (tests/readme_check.sh does the work). Needs
 * Fashion-MNIST and python3-pil. */
#include "support.h"

static void test_readme_runs_as_written(void **s) {
    (void)s;
    assert_script_passes("tests/readme_check.sh");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_readme_runs_as_written),
    };
    return cmocka_run_group_tests(tests, tmpdir_setup, tmpdir_teardown);
}
