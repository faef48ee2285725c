/* test_progress.c — the live progress bar of `nabla train` and `nabla eval`
 * in a pseudo-terminal: redrawn in place with its step count, speed, loss
 * and time left, coloured unless NO_COLOR is set; and the plain per-epoch
 * lines, free of control characters, when stderr is not a terminal or with
 * --quiet. Needs Fashion-MNIST and script(1). */
#include "support.h"

#include <stdio.h>
#include <string.h>

static void expect_not(const char *text, const char *needle) {
    if (strstr(text, needle)) print_error("did not expect '%s' in:\n%s\n", needle, text);
    assert_null(strstr(text, needle));
}

#define TRAIN "train --model logreg --steps 30 --batch 200 --threads 1"

static void test_bar_on_a_terminal(void **s) {
    (void)s;
    assert_int_equal(run_nabla_tty(NULL, TRAIN " --save %s", tmp_path("w.safetensors")), 0);
    expect(out_text, "\repoch 1/1 [\033[32m");     /* redrawn in place, coloured */
    expect(out_text, "] 30/30 ");                  /* the last step always shows */
    expect(out_text, " img/s  loss ");
    expect(out_text, " left\033[K");               /* time left while running */
    expect(out_text, "\rtest [");                  /* the test-set evaluation has one too */
    expect(out_text, "\r\033[Kepoch 1/1  train loss "); /* erased before the epoch's line */
    /* nabla eval over a data set shows one as well. */
    assert_int_equal(run_nabla_tty(NULL, "eval --model logreg --weights %s --batch 500",
                                   tmp_path("w.safetensors")), 0);
    expect(out_text, "\reval [\033[32m");
    expect(out_text, "] 20/20 ");
    expect(out_text, "accuracy");
}

static void test_no_color(void **s) {
    (void)s;
    assert_int_equal(run_nabla_tty("NO_COLOR=1", TRAIN " --no-test"), 0);
    expect(out_text, "\repoch 1/1 [");
    expect_not(out_text, "\033[32m");
    expect_not(out_text, "\033[0m");
}

static void test_quiet_and_plain(void **s) {
    (void)s;
    assert_int_equal(run_nabla_tty(NULL, TRAIN " --no-test --quiet"), 0);
    expect(out_text, "epoch 1/1  train loss ");
    expect_not(out_text, "\033[");
    expect_not(out_text, "] 30/30");
    /* stderr to a file: the same plain line on stdout, nothing on stderr. */
    assert_int_equal(run_nabla(TRAIN), 0);
    expect(out_text, "epoch 1/1  train loss ");
    expect(out_text, "test acc");
    expect_not(out_text, "\r");
    expect_not(err_text, "\r");
    expect_not(err_text, "\033[");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bar_on_a_terminal),
        cmocka_unit_test(test_no_color),
        cmocka_unit_test(test_quiet_and_plain),
    };
    return cmocka_run_group_tests(tests, nabla_setup, tmpdir_teardown);
}
