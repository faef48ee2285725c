/* nn.h — what the network-level files (model, built-in models, network
 * files, training, checkpoints) share: the model and layer structs and the
 * helpers that turn a model into named tensors and metadata. */
#ifndef NB_NN_H
#define NB_NN_H

#include "core/internal.h"

/* A layer name plus ".weight" must fit a node name (64 bytes). */
#define NB_LAYER_NAME 48

/* One layer as added; only linear and conv2d layers own parameters. */
typedef struct nb_layer {
    const char *kind;          /* "conv2d", as a network file spells it */
    char name[NB_LAYER_NAME];  /* parameter prefix */
    nb_node *weight, *bias;    /* NULL when the layer has none */
    nb_node *running_mean, *running_var; /* batch norm's buffers; out is its node */
    char batches_name[NB_LAYER_NAME + 24]; /* "<name>.num_batches_tracked" */
    int fan_in;                /* in_features, or C*KH*KW: sets the init bound */
    nb_node *out;
} nb_layer;

struct nb_model {
    char name[64];
    nb_graph *g;
    nb_node *input, *head;               /* head: the last layer's output */
    nb_node *labels, *logits, *probs, *loss;
    int in_ndim, in_shape[3];
    nb_layer *layers;
    int n_layers, layers_cap;
    uint64_t seed;
    bool finished;
    nb_status status;                    /* first build error; the model is dead after one */
    int norm_channels;                   /* 0: plain x/255 */
    float mean[NB_MAX_CHANNELS], std[NB_MAX_CHANNELS];
    char **class_names;                  /* n_class_names (0 or the class count) */
    int n_class_names;
};

/* Class names in weights metadata (class_names.c): up to cap entries
 * written into meta (-1 when they need more), and read back. */
int nb_model_class_meta(const nb_model *m, nb_meta *meta, int cap);
nb_status nb_model_apply_class_meta(nb_model *m, const nb_meta *meta, int count, const char *path);
void nb_model_free_class_names(nb_model *m);

/* The parameters as named tensors (views of the parameter block), then
 * the buffers (batch norm's running_mean, running_var and, as I64, its
 * num_batches_tracked, held in the node), with
 * `extra` zeroed slots after them for a checkpoint's optimizer state.
 * Free with nb_free. */
nb_named_tensor *nb_model_tensors(const nb_model *m, int extra, int *count);
/* Metadata describing the model (name, normalisation); returns the count. */
int nb_model_meta(const nb_model *m, nb_meta *meta, int cap);
/* Apply metadata read back from `path` (the normalisation); unknown keys are
 * ignored. */
nb_status nb_model_apply_meta(nb_model *m, const nb_meta *meta, int count, const char *path);
/* Change the seed the dropout masks are drawn from (a resumed run takes the
 * seed of the run it continues). */
void nb_model_set_seed(nb_model *m, uint64_t seed);
/* NB_OK when the model is finished and has no build error. */
nb_status nb_model_check_ready(const nb_model *m, const char *who);

/* NB_OK when every element of `block`, a buffer laid out like the parameter
 * block (the parameters, their gradients, an optimizer's buffer), is
 * finite. Otherwise NB_ERR_NONFINITE naming the first parameter holding a
 * NaN or infinity and the element: "<what>fc.weight is not finite (element
 * 3 is nan)". One summing pass; the scan for the culprit only on failure. */
nb_status nb_model_check_finite(const nb_model *m, const float *block, const char *what);

/* Where a training run stands; what a checkpoint keeps beside the weights
 * and the optimizer state. */
typedef struct nb_train_state {
    int epoch;            /* completed epochs */
    long batch_in_epoch;  /* batches done in the current epoch; all of them
                             (the epoch's batch count) while its evaluation
                             and report are still to come */
    long step;            /* training steps done in all, skipped ones included */
    nb_rng epoch_rng;     /* the shuffle generator as the current epoch began */
    int batch;            /* batch size: batch_in_epoch means nothing without it */
    int shuffle;
    /* The current epoch so far, so that its report comes out the same
     * whether or not the run was resumed in the middle of it. */
    double loss_sum;      /* sum over trained batches of mean loss x batch size */
    long samples;         /* samples trained on */
    long skipped;         /* steps skipped for non-finite values */
    long bad_images;      /* bad images left out (skip_bad_images) */
} nb_train_state;

nb_status nb_checkpoint_save(const char *path, const nb_model *m, nb_optimizer *opt,
                             const nb_train_state *st);
/* Restores weights, optimizer buffers and steps, the graph's step and *st.
 * A file that is no checkpoint, or whose metadata is malformed, is refused
 * before any tensor is read; a failure after that may leave them loaded. */
nb_status nb_checkpoint_load(const char *path, nb_model *m, nb_optimizer *opt, nb_train_state *st);

/* Data-parallel training (distributed.c); with a NULL nb_dist or one rank
 * each does nothing. Collective, each under the watchdog's timeout: every
 * rank must call them in the same order. */
/* NB_ERR_ARG naming the ranks whose data set's count or image size differs
 * from rank 0's. */
nb_status nb_dist_check_data(nb_dist *d, const nb_dataset *data, const char *what);
/* Sum n doubles over the ranks, in place. */
nb_status nb_dist_sum(nb_dist *d, double *v, int n, const char *what);
/* Rank 0's batch norm running statistics to every rank. */
nb_status nb_dist_broadcast_buffers(nb_dist *d, nb_graph *g);
/* Around one nb_backward (or, on a rank with no samples this step, around
 * nothing, with the gradients zeroed): begin hooks the gradient reduction
 * into backward, the gradients to be scaled by `weight` (this rank's share
 * of the global batch); end starts what is left and waits for all, leaving
 * the global batch's gradient on every rank. */
void nb_dist_begin_backward(nb_dist *d, nb_graph *g, double weight);
nb_status nb_dist_end_backward(nb_dist *d, nb_graph *g);

#endif
