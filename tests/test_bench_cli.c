/* test_bench_cli.c — the measuring commands: `nabla bench` (its table and
 * its --json object, with the figures bench/compare.py reads) and
 * `nabla train --profile`. Runs $BUILD/nabla (BUILD defaults to "build")
 * from the repository root; the train run needs Fashion-MNIST. Checks what
 * is printed, never how fast. */
#include "support.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static double number(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v)) print_error("no number '%s'\n", key);
    assert_true(cJSON_IsNumber(v));
    return v->valuedouble;
}

static void test_bench_table(void **s) {
    (void)s;
    assert_int_equal(run_nabla("bench --model lenet5 --batch 16 --steps 2 --rounds 1 --peak 100"), 0);
    expect(out_text, "training:");
    expect(out_text, "inference:");
    expect(out_text, "allocations per steady-state step: 0 training, 0 inference");
    expect(out_text, "conv1");
    expect(out_text, "relu@conv1");
    expect(out_text, "maxpool2d@conv2");
    expect(out_text, "fc3");
}

/* --steps N times exactly N steps a round, even N = 1. */
static void test_bench_exact_steps(void **s) {
    (void)s;
    assert_int_equal(run_nabla("bench --model logreg --batch 4 --steps 1 --rounds 1 --no-layers --json"), 0);
    cJSON *o = cJSON_Parse(out_text);
    assert_non_null(o);
    assert_int_equal((int)number(o, "steps"), 1);
    cJSON_Delete(o);
    assert_int_equal(run_nabla("bench --model logreg --batch 4 --steps 1 --rounds 1 --no-layers"), 0);
    expect(out_text, "1 thread, 1 step per round");
}

static void test_bench_json(void **s) {
    (void)s;
    assert_int_equal(run_nabla("bench --model lenet5 --batch 16 --threads 2 --steps 2 --rounds 1 --json"), 0);
    cJSON *o = cJSON_Parse(out_text);
    if (!o) print_error("not JSON:\n%s\n", out_text);
    assert_non_null(o);
    assert_true(number(o, "train_images_per_s") > 0);
    assert_true(number(o, "infer_images_per_s") > 0);
    assert_true(number(o, "fwdbwd_images_per_s") > 0);
    assert_true(number(o, "fma_peak_gflops") > 0);
    assert_int_equal((int)number(o, "threads"), 2);
    assert_int_equal((int)number(o, "batch"), 16);
    assert_int_equal((int)number(o, "allocs_per_train_step"), 0);
    const cJSON *layers = cJSON_GetObjectItemCaseSensitive(o, "layers");
    assert_true(cJSON_IsArray(layers));
    int convs = 0;
    const cJSON *l;
    cJSON_ArrayForEach(l, layers) {
        const cJSON *op = cJSON_GetObjectItemCaseSensitive(l, "op");
        assert_true(cJSON_IsString(op));
        if (!strcmp(op->valuestring, "conv2d")) {
            convs++;
            assert_true(number(l, "fwd_gflops") > 0);
            assert_true(number(l, "bwd_ms") > 0);
            assert_true(number(l, "infer_peak_pct") > 0);
        }
    }
    assert_int_equal(convs, 2);
    cJSON_Delete(o);
}

static void test_bench_errors(void **s) {
    (void)s;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "%s bench --batch 0 >/dev/null 2>%s/err", nabla_path, tmpdir);
    int status = system(cmd);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 2);
    snprintf(cmd, sizeof cmd, "%s bench --model nosuchmodel >/dev/null 2>%s/err", nabla_path, tmpdir);
    status = system(cmd);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 2);
}

static void test_train_profile(void **s) {
    (void)s;
    if (access(NB_FASHION_MNIST_DIR, R_OK)) {
        print_message("no %s: skipped\n", NB_FASHION_MNIST_DIR);
        skip();
    }
    assert_int_equal(run_nabla("train --model lenet5 --steps 3 --no-test --profile"), 0);
    expect(out_text, "profile: ");
    expect(out_text, "operator");
    expect(out_text, "conv2d");
    expect(out_text, "maxpool2d@conv1");
    expect(out_text, "fwd calls");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bench_table),
        cmocka_unit_test(test_bench_exact_steps),
        cmocka_unit_test(test_bench_json),
        cmocka_unit_test(test_bench_errors),
        cmocka_unit_test(test_train_profile),
    };
    return cmocka_run_group_tests(tests, nabla_setup, tmpdir_teardown);
}
