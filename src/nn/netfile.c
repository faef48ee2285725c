/* netfile.c — network files: a text description of a network, one layer
 * per line, turned into calls of the layer functions. The grammar is in
 * nabla.h. Every message starts "source:line: " so a user can go straight
 * to the line.
 *
 * Layers read the previous line's output unless `from=NAME` names an
 * earlier layer (or `input`); `add from=a,b` joins two branches. Names are
 * looked up only among the lines above, so a network file cannot describe a
 * cycle: a name that is not (yet) defined is an error naming it. */
#include "nn/nn.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LINE 1024
#define MAX_TOKENS 32
#define MAX_FILE (1 << 20)

/* The option keys; a layer's syntax is a mask of the ones it takes. */
enum { K_NAME, K_OUT, K_KERNEL, K_STRIDE, K_PAD, K_BIAS, K_P, K_FROM, K_COUNT };
static const char *const key_names[K_COUNT] = {"name", "out", "kernel", "stride", "pad", "bias", "p",
                                               "from"};
#define BIT(k) (1u << (k))

typedef enum { L_LINEAR, L_CONV, L_MAXPOOL, L_AVGPOOL, L_ADAPTIVE, L_RELU, L_SIGMOID, L_TANH,
               L_SOFTMAX, L_FLATTEN, L_DROPOUT, L_BN2D, L_BN1D, L_ADD } layer_id;

typedef struct syntax {
    const char *kind;
    layer_id id;
    unsigned takes, needs;
} syntax;

/* Every layer takes name= and from=. */
#define ANY (BIT(K_NAME) | BIT(K_FROM))
static const syntax layers[] = {
    {"linear", L_LINEAR, ANY | BIT(K_OUT) | BIT(K_BIAS), BIT(K_OUT)},
    {"conv2d", L_CONV, ANY | BIT(K_OUT) | BIT(K_KERNEL) | BIT(K_STRIDE) | BIT(K_PAD) | BIT(K_BIAS),
     BIT(K_OUT) | BIT(K_KERNEL)},
    {"maxpool2d", L_MAXPOOL, ANY | BIT(K_KERNEL) | BIT(K_STRIDE) | BIT(K_PAD), BIT(K_KERNEL)},
    {"avgpool2d", L_AVGPOOL, ANY | BIT(K_KERNEL) | BIT(K_STRIDE) | BIT(K_PAD), BIT(K_KERNEL)},
    {"adaptive_avgpool2d", L_ADAPTIVE, ANY | BIT(K_OUT), BIT(K_OUT)},
    {"relu", L_RELU, ANY, 0},
    {"sigmoid", L_SIGMOID, ANY, 0},
    {"tanh", L_TANH, ANY, 0},
    {"softmax", L_SOFTMAX, ANY, 0},
    {"flatten", L_FLATTEN, ANY, 0},
    {"dropout", L_DROPOUT, ANY | BIT(K_P), 0},
    {"batchnorm2d", L_BN2D, ANY, 0},
    {"batchnorm1d", L_BN1D, ANY, 0},
    {"add", L_ADD, ANY, BIT(K_FROM)},
};

/* One layer line's options, with PyTorch's defaults. */
typedef struct layer_args {
    char name[NB_LAYER_NAME];
    int out, out_h, out_w; /* out: features or channels; out_h x out_w: adaptive pooling */
    int kh, kw, sh, sw, ph, pw;
    int bias;
    float p;
    char from[2][NB_LAYER_NAME]; /* from=a or from=a,b (add only) */
    int n_from;
} layer_args;

/* The names defined so far, with the output each stands for. */
typedef struct named_output {
    char name[NB_LAYER_NAME];
    nb_node *node;
    int line;
} named_output;

typedef struct name_table {
    named_output *items;
    int count, cap;
} name_table;

typedef struct where {
    const char *source;
    int line;
} where;

static nb_status NB_PRINTF(3, 4) line_fail(const where *at, nb_status s, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return nb_fail(s, "%s:%d: %s", at->source, at->line, msg);
}

/* ---- values ------------------------------------------------------------ */

static bool parse_int(const char *s, long lo, long hi, int *out) {
    if (!isdigit((unsigned char)s[0])) return false;
    errno = 0;
    char *end;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < lo || v > hi) return false;
    *out = (int)v;
    return true;
}

/* "N" or "HxW". */
static bool parse_pair(const char *s, long lo, int *h, int *w) {
    char buf[64];
    snprintf(buf, sizeof buf, "%s", s);
    char *x = strchr(buf, 'x');
    if (!x) {
        if (!parse_int(buf, lo, 1 << 20, h)) return false;
        *w = *h;
        return true;
    }
    *x = '\0';
    return parse_int(buf, lo, 1 << 20, h) && parse_int(x + 1, lo, 1 << 20, w);
}

static bool valid_name(const char *s) {
    if (!s[0] || strlen(s) >= NB_LAYER_NAME) return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr("_.-", *s)) return false;
    return true;
}

static nb_status parse_option(const where *at, const syntax *L, const char *key, const char *value,
                              layer_args *a) {
    bool ok = true;
    const char *expect = "";
    if (!strcmp(key, "name")) {
        ok = valid_name(value);
        if (ok) snprintf(a->name, sizeof a->name, "%s", value);
        expect = "1 to 47 letters, digits, '_', '.' or '-'";
    } else if (!strcmp(key, "out") && L->id == L_ADAPTIVE) {
        ok = parse_pair(value, 1, &a->out_h, &a->out_w);
        expect = "a positive integer or HxW";
    } else if (!strcmp(key, "out")) {
        ok = parse_int(value, 1, 1 << 24, &a->out);
        expect = "a positive integer";
    } else if (!strcmp(key, "kernel")) {
        ok = parse_pair(value, 1, &a->kh, &a->kw);
        expect = "a positive integer or HxW";
    } else if (!strcmp(key, "stride")) {
        ok = parse_pair(value, 1, &a->sh, &a->sw);
        expect = "a positive integer or HxW";
    } else if (!strcmp(key, "pad")) {
        ok = parse_pair(value, 0, &a->ph, &a->pw);
        expect = "a non-negative integer or HxW";
    } else if (!strcmp(key, "bias")) {
        ok = !strcmp(value, "0") || !strcmp(value, "1");
        a->bias = value[0] == '1';
        expect = "0 or 1";
    } else if (!strcmp(key, "from")) {
        char buf[2 * NB_LAYER_NAME + 2];
        snprintf(buf, sizeof buf, "%s", value);
        char *comma = strchr(buf, ',');
        if (comma) *comma = '\0';
        a->n_from = comma ? 2 : 1;
        ok = strlen(value) < sizeof buf && valid_name(buf) && (!comma || valid_name(comma + 1)) &&
             (!comma || L->id == L_ADD) && (!comma || !strchr(comma + 1, ','));
        if (ok) {
            /* valid_name held them to fewer than NB_LAYER_NAME bytes. */
            memcpy(a->from[0], buf, strlen(buf) + 1);
            if (comma) memcpy(a->from[1], comma + 1, strlen(comma + 1) + 1);
        }
        expect = L->id == L_ADD ? "one layer name, or two separated by a comma (from=a,b)"
                                : "the name of one earlier layer, or 'input'";
    } else if (!strcmp(key, "p")) {
        char *end;
        a->p = strtof(value, &end);
        ok = end != value && !*end && a->p >= 0.0f && a->p < 1.0f;
        expect = "a probability, 0 <= p < 1";
    }
    if (!ok) return line_fail(at, NB_ERR_FORMAT, "%s: %s=%s: expected %s", L->kind, key, value, expect);
    return NB_OK;
}

/* ---- lines ------------------------------------------------------------- */

static nb_status unknown_option(const where *at, const syntax *L, const char *key) {
    char takes[128] = "";
    for (int k = 0; k < K_COUNT; k++)
        if (L->takes & BIT(k)) {
            size_t used = strlen(takes);
            snprintf(takes + used, sizeof takes - used, "%s%s", used ? ", " : "", key_names[k]);
        }
    if (!L->takes) return line_fail(at, NB_ERR_FORMAT, "%s: unknown option '%s' (%s takes no options)", L->kind, key, L->kind);
    return line_fail(at, NB_ERR_FORMAT, "%s: unknown option '%s' (expected %s)", L->kind, key, takes);
}

static nb_status parse_args(const where *at, const syntax *L, char **tok, int n, layer_args *a) {
    memset(a, 0, sizeof *a);
    a->sh = a->sw = 1;
    a->bias = 1;
    a->p = 0.5f;
    if (L->id == L_MAXPOOL || L->id == L_AVGPOOL) a->sh = a->sw = 0; /* = kernel */
    unsigned seen = 0;
    for (int i = 1; i < n; i++) {
        char *eq = strchr(tok[i], '=');
        if (!eq || eq == tok[i])
            return line_fail(at, NB_ERR_FORMAT, "%s: '%s' is not an option of the form key=value",
                             L->kind, tok[i]);
        *eq = '\0';
        int k = 0;
        while (k < K_COUNT && strcmp(tok[i], key_names[k])) k++;
        if (k == K_COUNT || !(L->takes & BIT(k))) return unknown_option(at, L, tok[i]);
        if (seen & BIT(k)) return line_fail(at, NB_ERR_FORMAT, "%s: option '%s' given twice", L->kind, tok[i]);
        seen |= BIT(k);
        nb_status s = parse_option(at, L, tok[i], eq + 1, a);
        if (s) return s;
    }
    for (int k = 0; k < K_COUNT; k++)
        if ((L->needs & BIT(k)) && !(seen & BIT(k)))
            return line_fail(at, NB_ERR_FORMAT, "%s: missing option '%s'", L->kind, key_names[k]);
    return NB_OK;
}

static nb_node *find_name(const name_table *names, const nb_model *m, const char *name) {
    if (!strcmp(name, "input")) return nb_model_input(m);
    for (int i = 0; i < names->count; i++)
        if (!strcmp(names->items[i].name, name)) return names->items[i].node;
    return NULL;
}

static nb_status unknown_name(const where *at, const syntax *L, const char *name) {
    return line_fail(at, NB_ERR_FORMAT, "%s: from=%s: no layer above this line is named '%s' (a "
                     "layer takes input only from the input or from layers above it, so the "
                     "network has no cycles)", L->kind, name, name);
}

/* Point the model at from= (if given); for add, also find the branch to add. */
static nb_status resolve_from(const where *at, nb_model *m, const syntax *L, const layer_args *a,
                              const name_table *names, nb_node **other) {
    nb_node *src[2] = {NULL, NULL};
    for (int k = 0; k < a->n_from; k++)
        if (!(src[k] = find_name(names, m, a->from[k]))) return unknown_name(at, L, a->from[k]);
    if (L->id != L_ADD) return a->n_from ? nb_model_set_head(m, src[0]) : NB_OK;
    /* add from=a: the previous line's output + a; add from=a,b: a + b. */
    if (a->n_from == 2) {
        nb_status s = nb_model_set_head(m, src[0]);
        if (s) return s;
        *other = src[1];
    } else {
        *other = src[0];
    }
    return NB_OK;
}

static nb_status add_layer(nb_model *m, const syntax *L, const layer_args *a, int no_dropout,
                           nb_node *other) {
    switch (L->id) {
    case L_BN2D: return nb_model_batchnorm2d(m, a->name);
    case L_BN1D: return nb_model_batchnorm1d(m, a->name);
    case L_ADD: return nb_model_add(m, a->name, other);
    case L_LINEAR: return nb_model_linear(m, a->name, a->out, a->bias);
    case L_CONV: return nb_model_conv2d(m, a->name, a->out, a->kh, a->kw, a->sh, a->sw, a->ph, a->pw, a->bias);
    case L_MAXPOOL: return nb_model_maxpool2d(m, a->kh, a->kw, a->sh, a->sw, a->ph, a->pw);
    case L_AVGPOOL: return nb_model_avgpool2d(m, a->kh, a->kw, a->sh, a->sw, a->ph, a->pw);
    case L_ADAPTIVE: return nb_model_adaptive_avgpool2d(m, a->out_h, a->out_w);
    case L_RELU: return nb_model_relu(m);
    case L_SIGMOID: return nb_model_sigmoid(m);
    case L_TANH: return nb_model_tanh(m);
    case L_SOFTMAX: return nb_model_softmax(m);
    case L_FLATTEN: return nb_model_flatten(m);
    case L_DROPOUT: return nb_model_dropout(m, no_dropout ? 0.0f : a->p);
    }
    return NB_ERR_ARG;
}

/* "input C H W" or "input FEATURES": creates the model. */
static nb_status parse_input(const where *at, char **tok, int n, const char *name,
                             const nb_model_config *cfg, nb_model **out) {
    int shape[3];
    if (n != 2 && n != 4)
        return line_fail(at, NB_ERR_FORMAT, "input: expected 'input C H W' or 'input FEATURES', "
                         "got %d values", n - 1);
    for (int i = 1; i < n; i++)
        if (!parse_int(tok[i], 1, 1 << 20, &shape[i - 1]))
            return line_fail(at, NB_ERR_FORMAT, "input: '%s' is not a positive integer", tok[i]);
    if (cfg->input[0]) /* the caller's sample shape in place of the file's */
        n = 4, memcpy(shape, cfg->input, sizeof shape);
    *out = nb_model_new(name, n - 1, shape, cfg->seed);
    return *out ? NB_OK : nb_fail_prefix(NB_ERR_NOMEM, "%s:%d: ", at->source, at->line);
}

/* Split on blanks after cutting the comment; returns the token count or -1. */
static int tokenize(char *line, char **tok) {
    char *hash = strchr(line, '#');
    if (hash) *hash = '\0';
    int n = 0;
    for (char *p = line; *p;) {
        while (*p && isspace((unsigned char)*p)) *p++ = '\0';
        if (!*p) break;
        if (n == MAX_TOKENS) return -1;
        tok[n++] = p;
        while (*p && !isspace((unsigned char)*p)) p++;
    }
    return n;
}

/* The model's name: the file name without directory and extension. */
static void model_name(const char *source, char *name, size_t size) {
    const char *base = strrchr(source, '/');
    base = base ? base + 1 : source;
    snprintf(name, size, "%s", base);
    char *dot = strrchr(name, '.');
    if (dot && dot != name) *dot = '\0';
}

static nb_status remember_name(const where *at, const syntax *L, name_table *names,
                               const char *name, nb_node *node) {
    if (!name[0]) return NB_OK;
    if (!strcmp(name, "input"))
        return line_fail(at, NB_ERR_FORMAT, "%s: name=input: 'input' is the network's input", L->kind);
    for (int i = 0; i < names->count; i++)
        if (!strcmp(names->items[i].name, name))
            return line_fail(at, NB_ERR_FORMAT, "%s: name=%s is already used on line %d", L->kind,
                             name, names->items[i].line);
    if (names->count == names->cap) {
        int cap = names->cap ? 2 * names->cap : 16;
        named_output *p = nb_realloc(names->items, (size_t)cap * sizeof *p, "network file names");
        if (!p) return nb_fail_prefix(NB_ERR_NOMEM, "%s:%d: ", at->source, at->line);
        names->items = p;
        names->cap = cap;
    }
    named_output *e = &names->items[names->count++];
    snprintf(e->name, sizeof e->name, "%s", name);
    e->node = node;
    e->line = at->line;
    return NB_OK;
}

static nb_status parse_line(const where *at, char *line, const nb_model_config *cfg,
                            const char *name, nb_model **m, name_table *names) {
    char *tok[MAX_TOKENS];
    int n = tokenize(line, tok);
    if (n < 0) return line_fail(at, NB_ERR_FORMAT, "more than %d words on one line", MAX_TOKENS);
    if (n == 0) return NB_OK;
    if (!strcmp(tok[0], "input")) {
        if (*m) return line_fail(at, NB_ERR_FORMAT, "a second 'input' line (give the input once, first)");
        return parse_input(at, tok, n, name, cfg, m);
    }
    const syntax *L = NULL;
    for (size_t i = 0; i < sizeof layers / sizeof *layers; i++)
        if (!strcmp(tok[0], layers[i].kind)) L = &layers[i];
    if (!L)
        return line_fail(at, NB_ERR_FORMAT, "unknown layer '%s' (expected input, linear, conv2d, "
                         "maxpool2d, avgpool2d, adaptive_avgpool2d, relu, sigmoid, tanh, softmax, "
                         "flatten, dropout, batchnorm2d, batchnorm1d or add)", tok[0]);
    if (!*m)
        return line_fail(at, NB_ERR_FORMAT, "%s before the 'input' line (the first line must be "
                         "'input C H W' or 'input FEATURES')", L->kind);
    layer_args a;
    nb_node *other = NULL;
    nb_status s = parse_args(at, L, tok, n, &a);
    if (s) return s;
    if ((s = resolve_from(at, *m, L, &a, names, &other))) return s;
    if ((s = add_layer(*m, L, &a, cfg->no_dropout, other)))
        return nb_fail_prefix(s, "%s:%d: ", at->source, at->line);
    return remember_name(at, L, names, a.name, nb_model_head(*m));
}

nb_model *nb_model_parse(const char *text, const char *source, const nb_model_config *cfg) {
    nb_model_config c = {0};
    if (cfg) c = *cfg;
    if (!source) source = "<network>";
    if (!text) {
        nb_fail(NB_ERR_ARG, "%s: NULL text", source);
        return NULL;
    }
    char name[64];
    model_name(source, name, sizeof name);
    nb_model *m = NULL;
    nb_status s = NB_OK;
    where at = {source, 0};
    name_table names = {NULL, 0, 0};
    for (const char *p = text; *p && !s;) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        at.line++;
        char line[MAX_LINE];
        if (len >= sizeof line) {
            s = line_fail(&at, NB_ERR_FORMAT, "line longer than %d characters", MAX_LINE - 1);
            break;
        }
        memcpy(line, p, len);
        line[len] = '\0';
        s = parse_line(&at, line, &c, name, &m, &names);
        p += len + (eol != NULL);
    }
    nb_free(names.items);
    if (!s && !m)
        s = nb_fail(NB_ERR_FORMAT, "%s: no 'input' line: a network file starts with 'input C H W' "
                    "or 'input FEATURES'", source);
    if (!s && (s = nb_model_finish(m))) nb_fail_prefix(s, "%s: ", source);
    if (!s && c.classes && nb_model_classes(m) != c.classes)
        s = nb_fail(NB_ERR_ARG, "%s: the network has %d classes (its last layer's output), but %d "
                    "were asked for", source, nb_model_classes(m), c.classes);
    if (s) {
        nb_model_free(m);
        return NULL;
    }
    return m;
}

nb_model *nb_model_parse_file(const char *path, const nb_model_config *cfg) {
    if (!path) {
        nb_fail(NB_ERR_ARG, "nb_model_parse_file: NULL path");
        return NULL;
    }
    FILE *f = fopen(path, "rb");
    if (!f) {
        nb_fail(NB_ERR_IO, "cannot open network file %s: %s", path, strerror(errno));
        return NULL;
    }
    char *text = nb_alloc(MAX_FILE + 1, "network file");
    size_t n = text ? fread(text, 1, MAX_FILE + 1, f) : 0;
    int failed = ferror(f);
    fclose(f);
    nb_model *m = NULL;
    if (!text) return NULL;
    if (failed) nb_fail(NB_ERR_IO, "%s: read error", path);
    else if (n > MAX_FILE) nb_fail(NB_ERR_FORMAT, "%s: larger than %d bytes: not a network file", path, MAX_FILE);
    else if (memchr(text, '\0', n)) nb_fail(NB_ERR_FORMAT, "%s: contains a NUL byte: not a text network file", path);
    else {
        text[n] = '\0';
        m = nb_model_parse(text, path, cfg);
    }
    nb_free(text);
    return m;
}
