/* cli.h — what the subcommands of `nabla` share: option values, messages,
 * and opening a model with the common options. Every message goes to stderr
 * as "nabla: ..."; a usage mistake exits 2, a failure while running 1. */
#ifndef NABLA_CLI_H
#define NABLA_CLI_H

#include "nabla.h"

#include <stdbool.h>
#include <stdio.h>

#define EXIT_USAGE 2
#define EXIT_RUNTIME 1

/* Print "nabla: <message>" to stderr. */
void cli_error(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

/* Walks argv. An option is "--name value" or "--name=value"; anything not
 * starting with "--" is a positional argument. */
typedef struct cli_args {
    int argc;
    char **argv;
    int i;             /* next argument */
    const char *cmd;   /* "train", for messages */
    const char *name;  /* current option, "--batch" */
    const char *value; /* its "=value" part, or NULL */
    const char *help;  /* the command's --help text: an unknown option is
                          matched against the options it lists; may be NULL */
} cli_args;

/* Next argument: true with *arg set; an option's name is in a->name. */
bool cli_next(cli_args *a, const char **arg);
bool cli_is(const cli_args *a, const char *name);
/* The current option's value (from "=value" or the next argument); NULL
 * after printing a message when there is none. */
const char *cli_value(cli_args *a);
/* A flag given a value ("--nesterov=1") is a usage error. */
bool cli_flag(cli_args *a);
/* Report the current option as unknown (exit code follows from it). */
int cli_unknown(const cli_args *a, const char *arg);

/* The candidate nearest to word by edit distance, if it is near enough to
 * be a slip ("--epoch" for "--epochs"); NULL otherwise. */
const char *cli_nearest(const char *word, const char *const *candidates, int n);

/* Parsers: false after printing "nabla: --batch: 'x' is not ..." */
bool cli_int(const char *opt, const char *s, long lo, long hi, long *out);
bool cli_float(const char *opt, const char *s, double lo, double hi, float *out);
bool cli_u64(const char *opt, const char *s, uint64_t *out);

/* The options every command that opens a model takes. */
typedef struct cli_model_opts {
    const char *model;
    nb_model_config cfg;
    const char *normalize; /* --normalize text, or NULL */
    int threads;
} cli_model_opts;

/* Handle --model, --hidden, --classes, --seed, --normalize, --threads when
 * the current option is one of them: 1 handled, 0 not one of them, -1 a bad
 * value (message printed). */
int cli_model_option(cli_args *a, cli_model_opts *o);
/* Create the model (and apply --threads). On failure prints the message and
 * sets *code to the exit code. */
nb_model *cli_open_model(const cli_model_opts *o, int *code);
/* Apply --normalize, if given; call it after loading weights, whose saved
 * normalisation it overrides. false after printing a message (usage). */
bool cli_normalize(nb_model *m, const cli_model_opts *o);
/* Exit code for a library failure: bad arguments are usage errors. */
int cli_status_code(nb_status s);

/* "--json" output helpers. */
void cli_json_string(const char *s);

/* ---- profiles (profile.c) ------------------------------------------------- */

/* Operations of one forward of node n at its current shapes: 2 per
 * multiply-add for conv2d, linear and matmul; one per input element for the
 * rest, which are memory-bound. *backward (may be NULL) gets the backward's,
 * counting only the gradients the graph computes. */
double cli_node_flops(const nb_node *n, double *backward);
/* A short name for a node: the layer of its weights ("conv1"), else its
 * operator and the nearest such layer upstream ("relu@conv1"). */
void cli_node_label(const nb_graph *g, const nb_node *n, char *out, size_t size);
/* Time per operator and per node, from nb_graph_profile's counters. */
void cli_profile_print(nb_graph *g, FILE *out);

#endif
