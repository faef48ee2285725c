/* test_cli_modern.c — the command line of batch-normalised and residual
 * networks as the README shows it: `nabla train` with --warmup,
 * --label-smoothing and --no-decay-norm-bias on examples/fashion_bn.net and
 * examples/resnet20.net (a few steps), `nabla eval` of the saved weights
 * (eval mode: running statistics), the built-in resnet18 in `nabla bench`,
 * and the usage errors of the new options. Needs Fashion-MNIST. */
#include "support.h"

#include <stdio.h>
#include <string.h>

static void test_train_and_eval_batchnorm_network(void **s) {
    (void)s;
    const char *w = tmp_path("fashion_bn.safetensors");
    int rc = run_nabla("train --model examples/fashion_bn.net --steps 6 --batch 16 --no-test "
                       "--lr 0.05 --weight-decay 5e-4 --no-decay-norm-bias --label-smoothing 0.1 "
                       "--warmup 3 --save %s", w);
    if (rc) print_error("%s\n", err_text);
    assert_int_equal(rc, 0);
    expect(out_text, "cosine after 3 warm-up steps weight decay 0.0005 (not on 11 bias/norm tensors)");
    expect(out_text, "label smoothing 0.1");
    /* The buffers came with the weights: eval loads them all, none missing. */
    rc = run_nabla("eval --model examples/fashion_bn.net --weights %s --json", w);
    if (rc) print_error("%s\n", err_text);
    assert_int_equal(rc, 0);
    expect(out_text, "\"accuracy\":");
}

static void test_train_resnet20_file(void **s) {
    (void)s;
    int rc = run_nabla("train --model examples/resnet20.net --steps 2 --batch 8 --no-test");
    if (rc) print_error("%s\n", err_text);
    assert_int_equal(rc, 0);
    expect(out_text, "resnet20: ");
}

static void test_bench_resnet18(void **s) {
    (void)s;
    int rc = run_nabla("bench --model resnet18 --batch 2 --steps 1 --rounds 1 --peak 10 --no-layers");
    if (rc) print_error("%s\n", err_text);
    assert_int_equal(rc, 0);
}

static void test_usage_errors(void **s) {
    (void)s;
    assert_int_equal(run_nabla("train --model lenet5 --label-smoothing 1.5"), 2);
    expect(err_text, "--label-smoothing");
    assert_int_equal(run_nabla("train --model lenet5 --warmup -3"), 2);
    expect(err_text, "--warmup");
    assert_int_equal(run_nabla("train --model lenet5 --no-decay-norm-bias=1"), 2);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_train_and_eval_batchnorm_network),
        cmocka_unit_test(test_train_resnet20_file),
        cmocka_unit_test(test_bench_resnet18),
        cmocka_unit_test(test_usage_errors),
    };
    return cmocka_run_group_tests_name("cli_modern", tests, nabla_setup, tmpdir_teardown);
}
