/* test_metrics_log.c — `nabla train --log`: CSV and JSON-lines records every
 * --log-every steps and after each epoch with the documented fields, and a
 * run resumed from a checkpoint that appends to its log without repeating
 * what the interrupted run had already written, giving the same records as
 * an uninterrupted run. Needs Fashion-MNIST. */
#include "support.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* 100 steps an epoch, a constant rate so one epoch and then a second one
 * repeat a two-epoch run exactly. */
#define TRAIN "train --model logreg --batch 600 --schedule constant --threads 1 --log-every 40"

static char *slurp_file(const char *path) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* The log without its timing fields (images/s and wall time, the last two
 * columns), which differ from run to run. */
static void strip_timing(const char *csv, char *out, size_t size) {
    size_t n = 0;
    for (const char *line = csv; *line && n + 1 < size;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        const char *cut = line + len;
        for (int commas = 0; cut > line && commas < 2; cut--)
            if (cut[-1] == ',') commas++;
        n += (size_t)snprintf(out + n, size - n, "%.*s\n", (int)(cut - line), line);
        line += len + (end ? 1 : 0);
    }
}

static void test_csv_records(void **s) {
    (void)s;
    assert_int_equal(run_nabla(TRAIN " --epochs 1 --log %s", tmp_path("a.csv")), 0);
    const char *csv = slurp_file(tmp_path("a.csv"));
    assert_non_null(strstr(csv, "kind,step,epoch,lr,train_loss,test_loss,test_accuracy,test_top5,"
                                "images_per_s,wall_s\n"));
    assert_non_null(strstr(csv, "\nstep,40,0.4,0.05,"));
    assert_non_null(strstr(csv, "\nstep,80,0.8,0.05,"));
    assert_non_null(strstr(csv, "\nepoch,100,1,0.05,"));
    assert_null(strstr(csv, "step,120"));
    /* A step record has no test results: its three test fields are empty. */
    assert_non_null(strstr(strstr(csv, "\nstep,40,0.4,0.05,") + 1, ",,,"));
    /* The epoch's train loss and test results are the ones printed, top-5
     * (10 classes) among them. */
    double train_loss, test_loss, acc, top5;
    const char *e = strstr(csv, "\nepoch,100,1,0.05,");
    assert_int_equal(sscanf(e, "\nepoch,100,1,0.05,%lf,%lf,%lf,%lf,", &train_loss, &test_loss, &acc, &top5), 4);
    assert_true(top5 > acc && top5 <= 1.0);
    char want[160];
    snprintf(want, sizeof want, "train loss %.4f  test loss %.4f  test acc %.2f%%  top-5 %.2f%%", train_loss,
             test_loss, 100 * acc, 100 * top5);
    if (!strstr(out_text, want)) print_error("expected '%s' in:\n%s\n", want, out_text);
    assert_non_null(strstr(out_text, want));
}

static void test_jsonl_records(void **s) {
    (void)s;
    assert_int_equal(run_nabla(TRAIN " --steps 80 --no-test --log %s", tmp_path("a.jsonl")), 0);
    char *text = slurp_file(tmp_path("a.jsonl"));
    int steps = 0, epochs = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        cJSON *o = cJSON_Parse(line);
        assert_non_null(o);
        const char *kind = cJSON_GetObjectItem(o, "kind")->valuestring;
        static const char *const keys[] = {"step", "epoch", "lr", "train_loss", "images_per_s", "wall_s"};
        for (int k = 0; k < 6; k++) assert_true(cJSON_IsNumber(cJSON_GetObjectItem(o, keys[k])));
        static const char *const untested[] = {"test_loss", "test_accuracy", "test_top5"};
        for (int k = 0; k < 3; k++) assert_true(cJSON_IsNull(cJSON_GetObjectItem(o, untested[k]))); /* --no-test */
        if (!strcmp(kind, "step")) steps++;
        else if (!strcmp(kind, "epoch")) epochs++;
        cJSON_Delete(o);
    }
    assert_int_equal(steps, 2);
    assert_int_equal(epochs, 1);
}

static void test_resume_appends_without_duplicates(void **s) {
    (void)s;
    /* The run as it should be: two epochs in one go. */
    assert_int_equal(run_nabla(TRAIN " --epochs 2 --log %s", tmp_path("full.csv")), 0);
    static char full[1 << 15], resumed[1 << 15];
    strip_timing(slurp_file(tmp_path("full.csv")), full, sizeof full);
    /* One epoch with a checkpoint, then the second resumed from it. */
    assert_int_equal(run_nabla(TRAIN " --epochs 1 --checkpoint %s --log %s", tmp_path("c1.safetensors"),
                               tmp_path("r.csv")), 0);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "cp %s %s", tmp_path("c1.safetensors"), tmp_path("c2.safetensors"));
    assert_int_equal(system(cmd), 0);
    assert_int_equal(run_nabla(TRAIN " --epochs 2 --resume %s --log %s", tmp_path("c1.safetensors"),
                               tmp_path("r.csv")), 0);
    strip_timing(slurp_file(tmp_path("r.csv")), resumed, sizeof resumed);
    assert_string_equal(resumed, full);
    /* As if the second run had been killed after logging its records but
     * before its checkpoint: resuming from the first epoch's checkpoint
     * again redoes them, and the log still holds each record once. */
    assert_int_equal(run_nabla(TRAIN " --epochs 2 --resume %s --log %s", tmp_path("c2.safetensors"),
                               tmp_path("r.csv")), 0);
    strip_timing(slurp_file(tmp_path("r.csv")), resumed, sizeof resumed);
    assert_string_equal(resumed, full);
}

/* JSON lines with a test set: each epoch record carries test_top5, and a
 * resumed run reads the file back and continues it. */
static void test_jsonl_top5_resumed(void **s) {
    (void)s;
    assert_int_equal(run_nabla(TRAIN " --epochs 1 --checkpoint %s --log %s", tmp_path("t.safetensors"),
                               tmp_path("t.jsonl")), 0);
    assert_int_equal(run_nabla(TRAIN " --epochs 2 --resume %s --log %s", tmp_path("t.safetensors"),
                               tmp_path("t.jsonl")), 0);
    char *text = slurp_file(tmp_path("t.jsonl"));
    int epochs = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        cJSON *o = cJSON_Parse(line);
        assert_non_null(o);
        const cJSON *top5 = cJSON_GetObjectItem(o, "test_top5");
        assert_non_null(top5);
        if (!strcmp(cJSON_GetObjectItem(o, "kind")->valuestring, "epoch")) {
            epochs++;
            assert_true(cJSON_IsNumber(top5));
            assert_true(top5->valuedouble > cJSON_GetObjectItem(o, "test_accuracy")->valuedouble);
        } else {
            assert_true(cJSON_IsNull(top5));
        }
        cJSON_Delete(o);
    }
    assert_int_equal(epochs, 2);
}

/* A CSV log of an older version, without the test_top5 column, is read by
 * its header: it still plots, and a resumed run will not append records
 * of another layout to it. */
static void test_old_csv_layout(void **s) {
    (void)s;
    FILE *f = fopen(tmp_path("old.csv"), "w");
    assert_non_null(f);
    fputs("kind,step,epoch,lr,train_loss,test_loss,test_accuracy,images_per_s,wall_s\n"
          "epoch,100,1,0.05,0.61,0.55,0.81,5000,2.0\n"
          "epoch,200,2,0.05,0.50,0.49,0.83,5000,4.0\n", f);
    fclose(f);
    assert_int_equal(run_nabla("plot %s --out %s", tmp_path("old.csv"), tmp_path("old.png")), 0);
    assert_int_equal(run_nabla(TRAIN " --epochs 1 --checkpoint %s", tmp_path("o.safetensors")), 0);
    assert_int_equal(run_nabla(TRAIN " --epochs 2 --resume %s --log %s", tmp_path("o.safetensors"),
                               tmp_path("old.csv")), 1);
    assert_non_null(strstr(err_text, "older version's (no test_top5)"));
}

static void test_bad_log_option(void **s) {
    (void)s;
    assert_int_equal(run_nabla(TRAIN " --epochs 1 --log %s", tmp_path("m.txt")), 2);
    assert_non_null(strstr(err_text, "give a .csv or .jsonl file"));
    assert_int_equal(run_nabla(TRAIN " --epochs 1 --log /nonexistent/m.csv"), 2);
    assert_non_null(strstr(err_text, "--log /nonexistent/m.csv: cannot write"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_csv_records),
        cmocka_unit_test(test_jsonl_records),
        cmocka_unit_test(test_resume_appends_without_duplicates),
        cmocka_unit_test(test_jsonl_top5_resumed),
        cmocka_unit_test(test_old_csv_layout),
        cmocka_unit_test(test_bad_log_option),
    };
    return cmocka_run_group_tests(tests, nabla_setup, tmpdir_teardown);
}
