/* test_netfile.c — network files: examples/lenet5.net is the built-in
 * lenet5 (names, shapes, init, outputs), the syntax's defaults and sizes,
 * and every error naming the file and line. */
#include "support.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void assert_error_has(const char *needle) {
    if (!strstr(nb_last_error(), needle))
        print_error("error '%s' lacks '%s'\n", nb_last_error(), needle);
    assert_non_null(strstr(nb_last_error(), needle));
}

static void test_lenet5_file_is_the_builtin(void **s) {
    (void)s;
    nb_model_config cfg = {.seed = 3};
    nb_model *file = nb_model_parse_file("examples/lenet5.net", &cfg);
    if (!file) print_error("%s\n", nb_last_error());
    assert_non_null(file);
    nb_model *builtin = nb_model_create("lenet5", &cfg);
    assert_non_null(builtin);
    assert_string_equal(nb_model_name(file), "lenet5");
    nb_graph *gf = nb_model_graph(file), *gb = nb_model_graph(builtin);
    assert_int_equal(nb_graph_param_count(gf), nb_graph_param_count(gb));
    for (int i = 0; i < nb_graph_param_count(gb); i++) {
        const nb_node *a = nb_graph_param(gf, i), *b = nb_graph_param(gb, i);
        char sa[64], sb[64];
        assert_string_equal(nb_node_name(a), nb_node_name(b));
        assert_string_equal(nb_shape_str(nb_value(a), sa, sizeof sa), nb_shape_str(nb_value(b), sb, sizeof sb));
    }
    /* Same seed, same initial weights, same outputs. */
    float *pf, *pb;
    size_t n = nb_graph_params(gf, &pf, NULL);
    assert_int_equal(n, nb_graph_params(gb, &pb, NULL));
    assert_memory_equal(pf, pb, n * sizeof(float));
    nb_rng rng;
    nb_rng_seed(&rng, 11);
    float x[2 * 784];
    fill_uniform(x, 2 * 784, 0, 1, &rng);
    float out[20];
    const nb_tensor *p = nb_model_predict(file, x, 2);
    assert_non_null(p);
    memcpy(out, p->data, sizeof out);
    p = nb_model_predict(builtin, x, 2);
    assert_non_null(p);
    assert_memory_equal(out, p->data, sizeof out);
    nb_model_free(file);
    nb_model_free(builtin);
}

static void test_defaults_comments_and_positional_names(void **s) {
    (void)s;
    static const char text[] =
        "# a two-layer perceptron on flat input\n"
        "\n"
        "input 784      # features\n"
        "linear out=32  # hidden\n"
        "\ttanh\r\n"
        "linear out=10\n"
        "softmax";
    nb_model *m = nb_model_parse(text, "dir/mlp.net", NULL);
    if (!m) print_error("%s\n", nb_last_error());
    assert_non_null(m);
    assert_string_equal(nb_model_name(m), "mlp");
    nb_graph *g = nb_model_graph(m);
    assert_int_equal(nb_graph_param_count(g), 4);
    /* Unnamed layers take their position, as nn.Sequential's state_dict. */
    assert_string_equal(nb_node_name(nb_graph_param(g, 0)), "0.weight");
    assert_string_equal(nb_node_name(nb_graph_param(g, 2)), "2.weight");
    assert_int_equal(nb_value(nb_graph_param(g, 2))->shape[1], 32);
    int shape[3];
    assert_int_equal(nb_model_input_shape(m, shape), 1);
    assert_int_equal(shape[0], 784);
    assert_int_equal(nb_model_classes(m), 10);
    nb_model_free(m);
}

static void test_sizes_strides_and_pools(void **s) {
    (void)s;
    static const char text[] =
        "input 3 10 12\n"
        "conv2d name=c out=4 kernel=3x5 stride=1x2 pad=1x0 bias=0\n" /* -> 4 x 10 x 4 */
        "avgpool2d kernel=2\n"                                      /* stride 2: 4 x 5 x 2 */
        "maxpool2d kernel=3 stride=1 pad=1\n"                       /* 4 x 5 x 2 */
        "adaptive_avgpool2d out=2x3\n"                              /* 4 x 2 x 3 */
        "dropout\n"
        "sigmoid\n"
        "flatten\n"
        "linear name=fc out=5\n";
    nb_model_config cfg = {.classes = 5, .seed = 1};
    nb_model *m = nb_model_parse(text, "sizes.net", &cfg);
    if (!m) print_error("%s\n", nb_last_error());
    assert_non_null(m);
    nb_graph *g = nb_model_graph(m);
    assert_int_equal(nb_graph_param_count(g), 3); /* no conv bias */
    const nb_tensor *w = nb_value(nb_graph_param(g, 0));
    assert_int_equal(w->shape[2], 3);
    assert_int_equal(w->shape[3], 5);
    assert_int_equal(nb_value(nb_graph_param(g, 1))->shape[1], 24);
    nb_model_free(m);
}

/* Each bad file gives its error on the right line with the right words. */
static void test_errors_name_file_and_line(void **s) {
    (void)s;
    static const struct { const char *text, *message; } cases[] = {
        {"input 1 28 28\nconv2d name=c out=6 kernal=5\n", "net.txt:2: conv2d: unknown option 'kernal'"},
        {"input 1 28 28\nconv out=6\n", "net.txt:2: unknown layer 'conv'"},
        {"# comment\n\nrelu\n", "net.txt:3: relu before the 'input' line"},
        {"input 1 28\n", "net.txt:1: input: expected 'input C H W' or 'input FEATURES', got 2 values"},
        {"input 1 x 28\n", "net.txt:1: input: 'x' is not a positive integer"},
        {"input 1 28 28\nconv2d kernel=5\n", "net.txt:2: conv2d: missing option 'out'"},
        {"input 1 28 28\nconv2d out=6 kernel=five\n", "net.txt:2: conv2d: kernel=five: expected a positive integer or HxW"},
        {"input 1 28 28\nconv2d out=6 kernel=5 kernel=3\n", "net.txt:2: conv2d: option 'kernel' given twice"},
        {"input 1 28 28\nconv2d out=-6 kernel=5\n", "net.txt:2: conv2d: out=-6: expected a positive integer"},
        {"input 1 28 28\nflatten\nconv2d out=6 kernel=5\n", "net.txt:3: "},
        {"input 1 28 28\nflatten\nconv2d out=6 kernel=5\n", "[N, C, H, W]"},
        {"input 1 4 4\nconv2d out=6 kernel=5\n", "net.txt:2: "},
        {"", "net.txt: no 'input' line"},
        {"# only a comment\n", "net.txt: no 'input' line"},
        {"input 1 28 28\nconv2d out=6 kernel=5\n", "net.txt: model 'net': the network's output is [1, 6, 24, 24]"},
        {"input 784\nlinear out=10 bias=2\n", "net.txt:2: linear: bias=2: expected 0 or 1"},
        {"input 784\nrelu x=1\n", "net.txt:2: relu: unknown option 'x' (expected name, from)"},
        /* Graphs: names only from lines above (no cycles), shapes that add. */
        {"input 1 8 8\nconv2d out=4 kernel=3 pad=1 from=later\nrelu name=later\n",
         "net.txt:2: conv2d: from=later: no layer above this line is named 'later'"},
        {"input 1 8 8\nconv2d name=a out=4 kernel=3 pad=1\nadd from=a,b\n",
         "net.txt:3: add: from=b: no layer above this line is named 'b'"},
        {"input 1 8 8\nconv2d name=a out=4 kernel=3 pad=1\nconv2d name=b out=8 kernel=3 stride=2\n"
         "add from=a,b\n", "net.txt:4: model 'net': layer 2 (add 2): cannot add [N, 4, 8, 8] and [N, 8, 3, 3]"},
        {"input 1 8 8\nrelu name=r\nrelu name=r\n", "net.txt:3: relu: name=r is already used on line 2"},
        {"input 1 8 8\nrelu name=input\n", "net.txt:2: relu: name=input: 'input' is the network's input"},
        {"input 1 8 8\nadd\n", "net.txt:2: add: missing option 'from'"},
        {"input 1 8 8\nrelu from=a,b\n", "net.txt:2: relu: from=a,b: expected the name of one earlier layer"},
        {"input 784\nbatchnorm2d\n", "net.txt:2: model 'net': layer 0 (batchnorm2d 0): input is [1, 784], expected [N, C, H, W]"},
        {"input 784\ninput 784\n", "net.txt:2: a second 'input' line"},
        {"input 784\nlinear name=a out=5\nlinear name=a out=3\n", "net.txt:3: "},
        {"input 784\nlinear name=a out=5\nlinear name=a out=3\n", "'a.weight' is already used"},
        {"input 784\nlinear out=10 junk\n", "net.txt:2: linear: 'junk' is not an option of the form key=value"},
        {"input 784\ndropout p=1.5\nlinear out=10\n", "net.txt:2: dropout: p=1.5: expected a probability"},
        {"input 784\nlinear name=a\"b out=10\n", "net.txt:2: linear: name=a\"b: expected"},
        {"input 784\nmaxpool2d kernel=2\n", "net.txt:2: "},
        {"input 784\nlinear out=5\nlinear out=10\n\n\n", NULL}, /* fine */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        nb_model *m = nb_model_parse(cases[i].text, "net.txt", NULL);
        if (!cases[i].message) {
            assert_non_null(m);
            nb_model_free(m);
            continue;
        }
        if (m) print_error("case %zu parsed but should fail with '%s'\n", i, cases[i].message);
        assert_null(m);
        assert_error_has(cases[i].message);
    }
}

static void test_classes_option_must_agree(void **s) {
    (void)s;
    nb_model_config cfg = {.classes = 7};
    assert_null(nb_model_parse("input 784\nlinear out=10\n", "net.txt", &cfg));
    assert_error_has("net.txt: the network has 10 classes");
    assert_error_has("but 7 were asked for");
}

static void test_files(void **s) {
    (void)s;
    assert_null(nb_model_parse_file("/no/such/file.net", NULL));
    assert_error_has("/no/such/file.net");
    /* Through nb_model_create an unknown name is also shown as a model name. */
    assert_null(nb_model_create("/no/such/file.net", NULL));
    assert_error_has("unknown model '/no/such/file.net'");
    /* A binary file is not a network file. */
    char path[] = "/tmp/nabla-netfile-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "wb");
    fwrite("input 784\n\0\x01", 1, 12, f);
    fclose(f);
    assert_null(nb_model_parse_file(path, NULL));
    assert_error_has("NUL byte");
    remove(path);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lenet5_file_is_the_builtin),
        cmocka_unit_test(test_defaults_comments_and_positional_names),
        cmocka_unit_test(test_sizes_strides_and_pools),
        cmocka_unit_test(test_errors_name_file_and_line),
        cmocka_unit_test(test_classes_option_must_agree),
        cmocka_unit_test(test_files),
    };
    return cmocka_run_group_tests_name("netfile", tests, NULL, NULL);
}
