/* test_summary.c — `nabla summary`: the layer table and its JSON form, with
 * parameter totals equal to PyTorch's (counted at test time by
 * tests/torch_param_counts.py), multiply-adds per image, and --input. */
#include "support.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Parse the JSON summary; check that the layers add up to the totals. */
static cJSON *summary_json(const char *args, double *params, double *macs) {
    assert_int_equal(run_nabla("summary --json %s", args), 0);
    cJSON *o = cJSON_Parse(out_text);
    assert_non_null(o);
    double p = 0, k = 0;
    const cJSON *layer;
    cJSON_ArrayForEach(layer, cJSON_GetObjectItem(o, "layers")) {
        p += cJSON_GetObjectItem(layer, "params")->valuedouble;
        k += cJSON_GetObjectItem(layer, "mult_adds")->valuedouble;
    }
    *params = cJSON_GetObjectItem(o, "params")->valuedouble;
    *macs = cJSON_GetObjectItem(o, "mult_adds")->valuedouble;
    assert_true(p == *params);
    assert_true(k == *macs);
    return o;
}

static void test_lenet5_table(void **s) {
    (void)s;
    assert_int_equal(run_nabla("summary --model lenet5"), 0);
    expect(out_text, "lenet5: input 1x28x28");
    expect(out_text, "conv1                conv2d             [1, 6, 28, 28]                156          117,600");
    expect(out_text, "fc3                  linear             [1, 10]                       850              840");
    expect(out_text, "total params: 61,706");
    expect(out_text, "total mult-adds per image: 416,520");
    double params, macs;
    cJSON *o = summary_json("--model lenet5", &params, &macs);
    assert_true(params == 61706 && macs == 416520);
    const cJSON *first = cJSON_GetArrayItem(cJSON_GetObjectItem(o, "layers"), 0);
    assert_string_equal(cJSON_GetObjectItem(first, "name")->valuestring, "conv1");
    assert_string_equal(cJSON_GetObjectItem(first, "type")->valuestring, "conv2d");
    cJSON_Delete(o);
}

static void test_alexnet_matches_torchvision(void **s) {
    (void)s;
    double params, macs;
    cJSON *o = summary_json("--model alexnet", &params, &macs);
    cJSON_Delete(o);
    assert_true(params == 61100840);
    FILE *py = popen("/usr/bin/python3 tests/torch_param_counts.py 2>&1", "r");
    assert_non_null(py);
    char text[1024];
    size_t n = fread(text, 1, sizeof text - 1, py);
    text[n] = '\0';
    pclose(py);
    char want[64];
    snprintf(want, sizeof want, "alexnet %.0f\n", params);
    expect(text, want);
    expect(text, "lenet5 61706\n");
    /* 10 classes: only the last layer changes (4096*10 + 10). */
    o = summary_json("--model alexnet --classes 10", &params, &macs);
    cJSON_Delete(o);
    assert_true(params == 61100840 - 4097000 + 40970);
}

static void test_input_option(void **s) {
    (void)s;
    double params, macs, full_macs;
    cJSON *o = summary_json("--model alexnet", &params, &full_macs);
    cJSON_Delete(o);
    /* The adaptive pool makes AlexNet take smaller images: same weights,
     * fewer multiply-adds. */
    o = summary_json("--model alexnet --input 3x64x64", &params, &macs);
    const cJSON *in = cJSON_GetObjectItem(o, "input");
    assert_int_equal(cJSON_GetArrayItem(in, 1)->valueint, 64);
    cJSON_Delete(o);
    assert_true(params == 61100840);
    assert_true(macs < full_macs);
    /* A network file too. */
    assert_int_equal(run_nabla("summary --model examples/lenet5.net --input=1x32x32"), 0);
    expect(out_text, "input 1x32x32");
    /* Mistakes. */
    assert_int_equal(run_nabla("summary --model lenet5 --input 28x28"), 2);
    expect(err_text, "--input: '28x28': expected CxHxW");
    assert_int_not_equal(run_nabla("summary --model lenet5 --input 1x4x4"), 0);
    expect(err_text, "conv2");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lenet5_table),
        cmocka_unit_test(test_alexnet_matches_torchvision),
        cmocka_unit_test(test_input_option),
    };
    return cmocka_run_group_tests(tests, nabla_setup, tmpdir_teardown);
}
