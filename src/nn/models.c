/* models.c — the built-in models, with PyTorch's (and torchvision's) tensor
 * names so their weights move both ways, and nb_model_create, which picks a
 * built-in by name or reads a network file. */
#include "nn/nn.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* Each builder adds its layers to a fresh model and returns the first
 * failure; `s = s ? s : call` keeps that first one. */

static nb_status build_logreg(nb_model *m, const nb_model_config *cfg) {
    nb_status s = nb_model_flatten(m);
    return s ? s : nb_model_linear(m, "fc", cfg->classes, 1);
}

static nb_status build_mlp(nb_model *m, const nb_model_config *cfg) {
    nb_status s = nb_model_flatten(m);
    s = s ? s : nb_model_linear(m, "fc1", cfg->hidden, 1);
    s = s ? s : nb_model_sigmoid(m);
    return s ? s : nb_model_linear(m, "fc2", cfg->classes, 1);
}

static nb_status build_lenet5(nb_model *m, const nb_model_config *cfg) {
    nb_status s = nb_model_conv2d(m, "conv1", 6, 5, 5, 1, 1, 2, 2, 1);
    s = s ? s : nb_model_relu(m);
    s = s ? s : nb_model_maxpool2d(m, 2, 2, 2, 2, 0, 0);
    s = s ? s : nb_model_conv2d(m, "conv2", 16, 5, 5, 1, 1, 0, 0, 1);
    s = s ? s : nb_model_relu(m);
    s = s ? s : nb_model_maxpool2d(m, 2, 2, 2, 2, 0, 0);
    s = s ? s : nb_model_flatten(m); /* (C, H, W) order, as torch's flatten(1) */
    s = s ? s : nb_model_linear(m, "fc1", 120, 1);
    s = s ? s : nb_model_relu(m);
    s = s ? s : nb_model_linear(m, "fc2", 84, 1);
    s = s ? s : nb_model_relu(m);
    return s ? s : nb_model_linear(m, "fc3", cfg->classes, 1);
}

/* torchvision.models.AlexNet: the names carry nn.Sequential's indices
 * inside `features` and `classifier`, counting the parameterless layers. */
static nb_status build_alexnet(nb_model *m, const nb_model_config *cfg) {
    float p = cfg->no_dropout ? 0.0f : 0.5f;
    nb_status s = nb_model_conv2d(m, "features.0", 64, 11, 11, 4, 4, 2, 2, 1);
    s = s ? s : nb_model_relu(m);
    s = s ? s : nb_model_maxpool2d(m, 3, 3, 2, 2, 0, 0);
    s = s ? s : nb_model_conv2d(m, "features.3", 192, 5, 5, 1, 1, 2, 2, 1);
    s = s ? s : nb_model_relu(m);
    s = s ? s : nb_model_maxpool2d(m, 3, 3, 2, 2, 0, 0);
    s = s ? s : nb_model_conv2d(m, "features.6", 384, 3, 3, 1, 1, 1, 1, 1);
    s = s ? s : nb_model_relu(m);
    s = s ? s : nb_model_conv2d(m, "features.8", 256, 3, 3, 1, 1, 1, 1, 1);
    s = s ? s : nb_model_relu(m);
    s = s ? s : nb_model_conv2d(m, "features.10", 256, 3, 3, 1, 1, 1, 1, 1);
    s = s ? s : nb_model_relu(m);
    s = s ? s : nb_model_maxpool2d(m, 3, 3, 2, 2, 0, 0);
    s = s ? s : nb_model_adaptive_avgpool2d(m, 6, 6);
    s = s ? s : nb_model_flatten(m);
    s = s ? s : nb_model_dropout(m, p);
    s = s ? s : nb_model_linear(m, "classifier.1", 4096, 1);
    s = s ? s : nb_model_relu(m);
    s = s ? s : nb_model_dropout(m, p);
    s = s ? s : nb_model_linear(m, "classifier.4", 4096, 1);
    s = s ? s : nb_model_relu(m);
    return s ? s : nb_model_linear(m, "classifier.6", cfg->classes, 1);
}

/* torchvision.models.resnet's BasicBlock: two 3x3 convolutions with batch
 * norm, and the block's input added back (through a 1x1 convolution and
 * batch norm, "downsample.0/.1", where the stride or the width changes). */
static nb_status basic_block(nb_model *m, const char *prefix, int in_planes, int planes, int stride) {
    char name[NB_LAYER_NAME];
    nb_node *x = nb_model_head(m);
#define NAMED(suffix) (snprintf(name, sizeof name, "%s.%s", prefix, suffix), name)
    nb_status s = nb_model_conv2d(m, NAMED("conv1"), planes, 3, 3, stride, stride, 1, 1, 0);
    s = s ? s : nb_model_batchnorm2d(m, NAMED("bn1"));
    s = s ? s : nb_model_relu(m);
    s = s ? s : nb_model_conv2d(m, NAMED("conv2"), planes, 3, 3, 1, 1, 1, 1, 0);
    s = s ? s : nb_model_batchnorm2d(m, NAMED("bn2"));
    if (s) return s;
    nb_node *shortcut = x;
    if (stride != 1 || in_planes != planes) {
        nb_node *main_path = nb_model_head(m);
        s = nb_model_set_head(m, x);
        s = s ? s : nb_model_conv2d(m, NAMED("downsample.0"), planes, 1, 1, stride, stride, 0, 0, 0);
        s = s ? s : nb_model_batchnorm2d(m, NAMED("downsample.1"));
        shortcut = nb_model_head(m);
        s = s ? s : nb_model_set_head(m, main_path);
    }
#undef NAMED
    s = s ? s : nb_model_add(m, NULL, shortcut);
    return s ? s : nb_model_relu(m);
}

/* torchvision.models.resnet18: conv1 7x7/2, bn1, relu, maxpool 3/2, layer1
 * to layer4 of two BasicBlocks (64, 128, 256, 512 channels; stride 2 from
 * layer2 on), global average pool, fc. */
static nb_status build_resnet18(nb_model *m, const nb_model_config *cfg) {
    nb_status s = nb_model_conv2d(m, "conv1", 64, 7, 7, 2, 2, 3, 3, 0);
    s = s ? s : nb_model_batchnorm2d(m, "bn1");
    s = s ? s : nb_model_relu(m);
    s = s ? s : nb_model_maxpool2d(m, 3, 3, 2, 2, 1, 1);
    int in_planes = 64;
    for (int stage = 0; stage < 4 && !s; stage++) {
        int planes = 64 << stage;
        for (int b = 0; b < 2 && !s; b++) {
            char prefix[32];
            snprintf(prefix, sizeof prefix, "layer%d.%d", stage + 1, b);
            s = basic_block(m, prefix, in_planes, planes, stage > 0 && b == 0 ? 2 : 1);
            in_planes = planes;
        }
    }
    s = s ? s : nb_model_adaptive_avgpool2d(m, 1, 1);
    s = s ? s : nb_model_flatten(m);
    return s ? s : nb_model_linear(m, "fc", cfg->classes, 1);
}

typedef struct builtin {
    const char *name;
    int ndim, shape[3];
    int default_classes;
    nb_status (*build)(nb_model *m, const nb_model_config *cfg);
} builtin;

static const builtin builtins[] = {
    {"logreg", 3, {1, 28, 28}, 10, build_logreg},
    {"mlp", 3, {1, 28, 28}, 10, build_mlp},
    {"lenet5", 3, {1, 28, 28}, 10, build_lenet5},
    {"alexnet", 3, {3, 224, 224}, 1000, build_alexnet},
    {"resnet18", 3, {3, 224, 224}, 1000, build_resnet18},
};

nb_model *nb_model_create(const char *name_or_path, const nb_model_config *cfg) {
    nb_model_config c = {0};
    if (cfg) c = *cfg;
    if (!name_or_path || !name_or_path[0]) {
        nb_fail(NB_ERR_ARG, "no model given: expected logreg, mlp, lenet5, alexnet, resnet18 or a network file");
        return NULL;
    }
    if (c.classes < 0 || c.hidden < 0) {
        nb_fail(NB_ERR_ARG, "model '%s': %s %d, expected > 0", name_or_path,
                c.classes < 0 ? "classes" : "hidden width", c.classes < 0 ? c.classes : c.hidden);
        return NULL;
    }
    const builtin *b = NULL;
    for (size_t i = 0; i < sizeof builtins / sizeof *builtins; i++)
        if (!strcmp(name_or_path, builtins[i].name)) b = &builtins[i];
    if (!b) {
        /* Not a built-in: a network file, and a missing one is most likely
         * a misspelt model name, so say both. */
        FILE *f = fopen(name_or_path, "r");
        if (!f) {
            nb_fail(NB_ERR_ARG, "unknown model '%s': expected logreg, mlp, lenet5, alexnet, resnet18 "
                    "or a network file (%s: %s)", name_or_path, name_or_path, strerror(errno));
            return NULL;
        }
        fclose(f);
        return nb_model_parse_file(name_or_path, &c);
    }
    if (!c.classes) c.classes = b->default_classes;
    if (!c.hidden) c.hidden = 128;
    nb_model *m = nb_model_new(b->name, b->ndim, c.input[0] ? c.input : b->shape, c.seed);
    if (!m) return NULL;
    if (b->build(m, &c) || nb_model_finish(m)) {
        nb_model_free(m);
        return NULL;
    }
    return m;
}
