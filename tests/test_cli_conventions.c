/* test_cli_conventions.c — GNU-style conventions of the `nabla` command: a
 * mistyped subcommand or option is answered with the nearest one, values
 * go as "--opt value" or "--opt=value", --version, and the exit codes (0
 * success, 1 failure, 2 usage) with messages on stderr, results on stdout. */
#include "support.h"

#include <string.h>

static void test_did_you_mean(void **s) {
    (void)s;
    assert_int_equal(run_nabla("trian --model lenet5"), 2);
    expect(err_text, "unknown command 'trian'; did you mean train?");
    assert_int_equal(run_nabla("sumary --model lenet5"), 2);
    expect(err_text, "did you mean summary?");
    assert_int_equal(run_nabla("train --model lenet5 --epoch 3"), 2);
    expect(err_text, "unknown option '--epoch'; did you mean --epochs?");
    assert_int_equal(run_nabla("eval --model lenet5 --weight w.safetensors"), 2);
    expect(err_text, "did you mean --weights?");
    assert_int_equal(run_nabla("summary --model lenet5 --jsn"), 2);
    expect(err_text, "did you mean --json?");
    /* Nothing near: no guess. */
    assert_int_equal(run_nabla("train --model lenet5 --frobnicate 1"), 2);
    assert_null(strstr(err_text, "did you mean"));
    assert_int_equal(run_nabla("fly"), 2);
    assert_null(strstr(err_text, "did you mean"));
}

static void test_values_both_ways_and_streams(void **s) {
    (void)s;
    assert_int_equal(run_nabla("summary --model=lenet5 --input=1x28x28"), 0);
    expect(out_text, "total params: 61,706");
    assert_string_equal(err_text, "");
    assert_int_equal(run_nabla("summary --model lenet5 --input 1x28x28"), 0);
    expect(out_text, "total params: 61,706");
    assert_int_equal(run_nabla("--version"), 0);
    expect(out_text, "nabla " NB_VERSION "\n");
    /* A failure while running is 1, with its message on stderr only. */
    assert_int_equal(run_nabla("plot %s --out %s", tmp_path("missing.csv"), tmp_path("p.png")), 1);
    assert_string_equal(out_text, "");
    expect(err_text, "nabla: ");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_did_you_mean),
        cmocka_unit_test(test_values_both_ways_and_streams),
    };
    return cmocka_run_group_tests(tests, nabla_setup, tmpdir_teardown);
}
