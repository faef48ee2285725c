/*
 * nabla.h — the whole public API of nabla, a C11 library for training and
 * running convolutional networks.
 *
 * A worked example (`make tests` cuts it out of this comment and compiles
 * it as build/tests/header_example): build
 * J = cos(sin(x^2) + 3x^2), evaluate it at x = 0.5 and read dJ/dx.
 *
 *     #include <nabla.h>
 *     #include <stdio.h>
 *
 *     int main(void) {
 *         nb_graph *g = nb_graph_new();
 *         if (!g) { fprintf(stderr, "%s\n", nb_last_error()); return 1; }
 *         int shape[1] = {1};
 *         nb_node *x = nb_input(g, "x", 1, shape);
 *         nb_node *x2 = nb_square(g, x);
 *         nb_node *J = nb_cos(g, nb_add(g, nb_sin(g, x2), nb_scale(g, x2, 3.0f)));
 *         nb_requires_grad(x, 1);
 *         float x0 = 0.5f;
 *         if (!J || nb_feed(x, &x0, 1) || nb_forward(g, J) || nb_backward(g, J)) {
 *             fprintf(stderr, "%s\n", nb_last_error());
 *             nb_graph_free(g);
 *             return 1;
 *         }
 *         printf("J = %f, dJ/dx = %f\n", nb_value(J)->data[0], nb_grad(x)->data[0]);
 *         nb_graph_free(g);
 *         return 0;
 *     }
 *
 * Conventions
 *  - Every public symbol starts with nb_ (types, functions) or NB_ (macros,
 *    enum values).
 *  - A call that can fail returns nb_status (NB_OK is 0) or NULL, and
 *    nb_last_error() then holds one line that names what was wrong. The
 *    library never exits or aborts on a caller's mistake.
 *  - Graph builders accept a NULL input and return NULL: an error made while
 *    building a chain of nodes surfaces once, at the end of the chain, with
 *    the first failure's message kept.
 *  - Tensors are float32, at most 4-D (N, C, H, W), contiguous, row-major.
 *  - Memory belongs to its owner object (a graph, a model, an optimizer, a
 *    dataset); callers never free tensors one by one.
 */
#ifndef NABLA_H
#define NABLA_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The version of this header: MAJOR.MINOR.PATCH. The shared library's
 * soname carries the major number (libnabla.so.0). */
#define NB_VERSION_MAJOR 0
#define NB_VERSION_MINOR 2
#define NB_VERSION_PATCH 0
#define NB_VERSION "0.2.0"
/* One number that orders versions: 0.2.0 is 200. */
#define NB_VERSION_NUMBER (NB_VERSION_MAJOR * 10000 + NB_VERSION_MINOR * 100 + NB_VERSION_PATCH)
#define NB_MAX_DIMS 4

/* The version of the library linked in, "0.2.0" (a static string). Compare it
 * with NB_VERSION to catch a program built against another header. */
const char *nb_version(void);

/* ------------------------------------------------------------------------ */
/* Errors and memory                                                         */
/* ------------------------------------------------------------------------ */

typedef enum nb_status {
    NB_OK = 0,
    NB_ERR_ARG,       /* a bad argument or option value */
    NB_ERR_SHAPE,     /* tensor shapes that do not fit an operator */
    NB_ERR_NOMEM,     /* an allocation failed */
    NB_ERR_IO,        /* a file could not be opened, read or written */
    NB_ERR_FORMAT,    /* a file's contents are malformed */
    NB_ERR_NONFINITE, /* a NaN or infinity appeared in a loss or gradient */
    NB_ERR_STATE,     /* a call made out of order (e.g. backward before forward) */
    NB_ERR_STOPPED    /* nb_train stopped on request (nb_train_opts.stop) before the end */
} nb_status;

/* The message of the most recent failure in the calling thread. */
const char *nb_last_error(void);
/* A short fixed name for a status, e.g. "shape error". */
const char *nb_status_name(nb_status status);

/* Route every allocation the library makes through these functions (all
 * three, or NULL for all three to restore the C library's). Tests use this to
 * inject allocation failures; embedders use it for their own heaps. */
typedef void *(*nb_malloc_fn)(size_t size);
typedef void *(*nb_realloc_fn)(void *ptr, size_t size);
typedef void (*nb_free_fn)(void *ptr);
void nb_set_allocator(nb_malloc_fn m, nb_realloc_fn r, nb_free_fn f);

/* Worker threads for the kernels (OpenMP) started from the calling thread.
 * Results do not depend on it. */
void nb_set_threads(int threads);
int nb_get_threads(void);

/* SIMD targets. Every fast kernel is built once per target of the build's
 * architecture ("avx512", "avx2", "generic" on x86-64; "neon", "generic" on
 * AArch64) and the best one the CPU supports runs, unless the environment
 * variable NABLA_ISA names another when the first kernel runs. Results
 * differ between targets only by rounding; within one target they do not
 * depend on the thread count. */
/* The target that runs now. */
const char *nb_isa_name(void);
/* Run `name`'s kernels from now on (NULL or "auto": the best). NB_ERR_ARG,
 * changing nothing, when the build lacks it or the CPU cannot run it; the
 * message lists what can run. Not thread-safe: call it while no kernel runs. */
nb_status nb_isa_set(const char *name);
/* Whether this build has `name` and this CPU runs it. */
int nb_isa_supported(const char *name);
/* The targets this CPU runs, best first, comma-separated: "avx2, generic". */
const char *nb_isa_targets(void);
/* NB_ERR_ARG, naming the reason, when NABLA_ISA is set to a target that
 * cannot run (the best one runs instead); NB_OK otherwise. */
nb_status nb_isa_check_env(void);
/* The single-thread FP32 FMA peak of the running target in GFLOP/s (an FMA
 * counts 2): the best of short runs over about `seconds` of independent
 * vector FMA chains, as many as the target's registers hold without a
 * spill. The yardstick "% of peak" is quoted against; measure it while the
 * other threads are idle. */
double nb_isa_fma_peak_gflops(double seconds);

/* ------------------------------------------------------------------------ */
/* Tensors and random numbers                                                */
/* ------------------------------------------------------------------------ */

typedef struct nb_tensor {
    int ndim;
    int shape[NB_MAX_DIMS];
    float *data; /* numel floats, row-major; owned by whoever made the tensor */
} nb_tensor;

/* The product of t's dims (1 for ndim 0). */
size_t nb_tensor_numel(const nb_tensor *t);
/* Writes "[2, 3, 4]" into buf (always NUL-terminated); returns buf. */
const char *nb_shape_str(const nb_tensor *t, char *buf, size_t size);

/* A seeded generator (xorshift128+, seeded through splitmix64): the same
 * seed gives the same stream on every platform. */
typedef struct nb_rng {
    uint64_t s[2];
} nb_rng;

/* The generator is a plain value the caller owns (no allocation, nothing to
 * free, no failure); one generator is not for two threads at once. */
void nb_rng_seed(nb_rng *rng, uint64_t seed);
uint32_t nb_rng_u32(nb_rng *rng);                /* 32 uniform bits */
float nb_rng_uniform(nb_rng *rng);               /* in [0, 1) */
float nb_rng_normal(nb_rng *rng);                /* mean 0, std 1 */
uint32_t nb_rng_below(nb_rng *rng, uint32_t n);  /* uniform in [0, n), n > 0 */

/* ------------------------------------------------------------------------ */
/* The computation graph                                                     */
/* ------------------------------------------------------------------------ */

/* A graph is a DAG of nodes built once and evaluated many times. Nodes are
 * inputs (fed before each forward), constants, trainable parameters and
 * operator nodes. Creation order is a topological order. The first dimension
 * of every input is the batch: it may change between evaluations (a last,
 * smaller batch) without rebuilding the graph. */
typedef struct nb_graph nb_graph;
typedef struct nb_node nb_node;

/* A new, empty graph, owned by the caller; NULL when out of memory. */
nb_graph *nb_graph_new(void);
/* Frees the graph and everything it owns (nodes, values, gradients, the
 * parameter block); NULL is ignored. Pointers into it become invalid. */
void nb_graph_free(nb_graph *g);
/* NB_OK, or the first error met while building the graph. */
nb_status nb_graph_status(const nb_graph *g);

/* Leaves. shape has ndim entries (1..4); the data of a constant is copied. */
nb_node *nb_input(nb_graph *g, const char *name, int ndim, const int *shape);
nb_node *nb_const(nb_graph *g, const char *name, int ndim, const int *shape, const float *values);
/* A trainable parameter, zero-initialised. All parameters of a graph live in
 * one contiguous block with a parallel gradient block (nb_graph_params). */
nb_node *nb_param(nb_graph *g, const char *name, int ndim, const int *shape);

/* A buffer: state an operator updates itself in train mode (batch norm's
 * running statistics), initialised from values (NULL: zeros). It has no
 * gradient, is no parameter and no optimizer touches it; a model saves it
 * with its weights. */
nb_node *nb_buffer(nb_graph *g, const char *name, int ndim, const int *shape, const float *values);

/* Copy `batch` samples into an input node; batch may differ from the batch
 * it was created with. */
/* NB_ERR_ARG for a node that is not an input or a batch < 1; the data is
 * copied, so the caller keeps its buffer. */
nb_status nb_feed(nb_node *input, const float *data, int batch);
/* Ask for the gradient of an input or constant (parameters always get one). */
void nb_requires_grad(nb_node *n, int on);

/* Train mode (the default) keeps gradients and applies dropout; eval mode
 * allocates no gradients and makes dropout the identity. */
void nb_set_training(nb_graph *g, int training);

/* Evaluate `target` and everything it depends on, in topological order.
 * A relu whose input is a conv2d, a batch norm or an add with no other
 * consumer runs in place, as PyTorch's ReLU(inplace=True): the producer
 * writes the relu's output, and its own value then reads the same (the
 * target never changes this). */
nb_status nb_forward(nb_graph *g, nb_node *target);
/* Reverse-mode autodiff from a scalar node: zero all gradients, set
 * dJ/dJ = 1, and visit the nodes in reverse topological order, each adding
 * (dJ/du)(du/dv) into the gradient of each input v that needs one. Call after
 * nb_forward(g, loss). */
nb_status nb_backward(nb_graph *g, nb_node *loss);

/* The value, owned by the graph: valid until the next nb_forward (which may
 * move a buffer that grows) or nb_graph_free. */
const nb_tensor *nb_value(const nb_node *n);
/* The gradient; its data is NULL when the node needs none. */
const nb_tensor *nb_grad(const nb_node *n);
const char *nb_node_name(const nb_node *n);
/* The operator's name ("conv2d"), or "input", "const", "param". */
const char *nb_node_op(const nb_node *n);

/* The parameter block: *data and *grad (either may be NULL) receive the two
 * contiguous buffers; returns their length in floats. */
size_t nb_graph_params(nb_graph *g, float **data, float **grad);
int nb_graph_param_count(const nb_graph *g);
nb_node *nb_graph_param(const nb_graph *g, int i);
/* Completed backward passes. Dropout draws its mask from (seed, step), so
 * restoring the step on resume repeats the run exactly. */
uint64_t nb_graph_step(const nb_graph *g);
void nb_graph_set_step(nb_graph *g, uint64_t step);
/* Bytes of activations, gradients and scratch the graph holds. */
size_t nb_graph_memory(const nb_graph *g);

/* All nodes, in creation (= topological) order, and an operator node's
 * inputs (NULL past the last), for tools that walk a graph. */
int nb_graph_node_count(const nb_graph *g);
nb_node *nb_graph_node(const nb_graph *g, int i);
nb_node *nb_node_input(const nb_node *n, int i);

/* Per-node profiling. While on, nb_forward and nb_backward add the wall
 * time of each node's forward and backward to its counters; turning it on
 * zeroes them. Off (the default), the only cost is one branch per node. */
typedef struct nb_node_profile {
    double forward_s, backward_s; /* seconds, summed over calls */
    long forward_calls, backward_calls;
} nb_node_profile;

/* Turn profiling on (zeroing every node's counters) or off. */
void nb_graph_profile(nb_graph *g, int on);
/* A node's counters, by value (all zero for a node never profiled). */
nb_node_profile nb_node_profile_of(const nb_node *n);

/* ------------------------------------------------------------------------ */
/* Operators                                                                 */
/* ------------------------------------------------------------------------ */

/* Every builder below returns a new node owned by g (freed with it), or
 * NULL after the message: NB_ERR_SHAPE naming the operator and both shapes,
 * NB_ERR_ARG for a bad attribute or a NULL input, NB_ERR_NOMEM. The graph
 * keeps its first error (nb_graph_status) and refuses further nodes, so a
 * chain of builders is checked once, at its end. Values are computed by
 * nb_forward, not here. */

/* Elementwise binary: b has a's shape, or is a vector of a.shape[1] entries
 * (one per feature or channel) broadcast along the batch and spatial axes. */
nb_node *nb_add(nb_graph *g, nb_node *a, nb_node *b);
nb_node *nb_sub(nb_graph *g, nb_node *a, nb_node *b);
nb_node *nb_mul(nb_graph *g, nb_node *a, nb_node *b);
nb_node *nb_div(nb_graph *g, nb_node *a, nb_node *b);

/* Elementwise unary. */
nb_node *nb_neg(nb_graph *g, nb_node *a);
nb_node *nb_scale(nb_graph *g, nb_node *a, float c);      /* c * a */
nb_node *nb_add_scalar(nb_graph *g, nb_node *a, float c); /* a + c */
nb_node *nb_square(nb_graph *g, nb_node *a);
nb_node *nb_pow(nb_graph *g, nb_node *a, float p); /* a^p */
nb_node *nb_exp(nb_graph *g, nb_node *a);
nb_node *nb_log(nb_graph *g, nb_node *a);
nb_node *nb_sqrt(nb_graph *g, nb_node *a);
nb_node *nb_sin(nb_graph *g, nb_node *a);
nb_node *nb_cos(nb_graph *g, nb_node *a);
nb_node *nb_tanh(nb_graph *g, nb_node *a);
nb_node *nb_sigmoid(nb_graph *g, nb_node *a);
nb_node *nb_relu(nb_graph *g, nb_node *a); /* subgradient 0 at 0 */

/* 2-D matrix product op(a) op(b), op = transpose when trans_* is nonzero. */
nb_node *nb_matmul(nb_graph *g, nb_node *a, nb_node *b, int trans_a, int trans_b);
/* y = x W^T + b. x is [N, ...] and is read as [N, in]; W is [out, in] as in
 * PyTorch; b is [out] or NULL. y is [N, out]. */
nb_node *nb_linear(nb_graph *g, nb_node *x, nb_node *w, nb_node *b);

/* Reductions. The _all forms give a 1-element tensor of shape [1]; the axis
 * forms remove that axis (a 1-D input gives shape [1]). */
nb_node *nb_sum_all(nb_graph *g, nb_node *a);
nb_node *nb_mean_all(nb_graph *g, nb_node *a);
nb_node *nb_sum(nb_graph *g, nb_node *a, int axis);
nb_node *nb_mean(nb_graph *g, nb_node *a, int axis);

/* Views that share the input's memory. In nb_reshape, shape[0] == -1 means
 * "the input's batch", so the view follows batch changes. nb_flatten gives
 * [N, C*H*W]. */
nb_node *nb_reshape(nb_graph *g, nb_node *a, int ndim, const int *shape);
nb_node *nb_flatten(nb_graph *g, nb_node *a);

/* Along axis 1 of a 2-D [N, classes] tensor; stable for large logits. */
nb_node *nb_softmax(nb_graph *g, nb_node *a);
nb_node *nb_log_softmax(nb_graph *g, nb_node *a);

/* Losses give a scalar of shape [1]. labels holds class indices 0..C-1 as
 * floats, shape [N]. */
nb_node *nb_softmax_cross_entropy(nb_graph *g, nb_node *logits, nb_node *labels); /* mean over N */
/* Label smoothing for a nb_softmax_cross_entropy node, as
 * F.cross_entropy(label_smoothing=s): the target becomes (1 - s) onehot + s/C.
 * 0 (the default) is the plain loss. */
nb_status nb_set_label_smoothing(nb_node *loss, float smoothing);
/* Binary cross-entropy, mean over all elements, targets in [0, 1]. */
nb_node *nb_bce(nb_graph *g, nb_node *probs, nb_node *targets);
nb_node *nb_bce_with_logits(nb_graph *g, nb_node *logits, nb_node *targets);
typedef enum nb_reduction { NB_REDUCE_SUM = 0, NB_REDUCE_MEAN = 1 } nb_reduction;
/* J = 1/2 sum (y - t)^2, or that sum divided by the number of elements. */
nb_node *nb_squared_error(nb_graph *g, nb_node *y, nb_node *target, nb_reduction reduction);

/* Convolution with PyTorch's semantics: x is [N, C, H, W], w is
 * [O, C, KH, KW], b is [O] or NULL; zero padding; y is [N, O, OH, OW] with
 * OH = floor((H + 2*pad_h - KH) / stride_h) + 1. */
nb_node *nb_conv2d(nb_graph *g, nb_node *x, nb_node *w, nb_node *b, int stride_h, int stride_w,
                   int pad_h, int pad_w);
/* Max pooling: the gradient goes to the first maximum of each window.
 * Padding is -infinity (never chosen); pad <= kernel/2 as in PyTorch. */
nb_node *nb_maxpool2d(nb_graph *g, nb_node *x, int kernel_h, int kernel_w, int stride_h,
                      int stride_w, int pad_h, int pad_w);
/* Average pooling; zero padding counts in the divisor (PyTorch's default). */
nb_node *nb_avgpool2d(nb_graph *g, nb_node *x, int kernel_h, int kernel_w, int stride_h,
                      int stride_w, int pad_h, int pad_w);
/* Adaptive average pooling to out_h x out_w, with PyTorch's window bounds. */
nb_node *nb_adaptive_avgpool2d(nb_graph *g, nb_node *x, int out_h, int out_w);
/* Inverted dropout: in train mode zero each element with probability p and
 * scale the rest by 1/(1-p); identity in eval mode. Seeded, so repeatable. */
nb_node *nb_dropout(nb_graph *g, nb_node *x, float p, uint64_t seed);

/* Batch normalisation, as torch.nn.BatchNorm2d / BatchNorm1d. x is
 * [N, C, H, W] (2d) or [N, C] / [N, C, L] (1d); weight, bias (parameters)
 * and running_mean, running_var (buffers, nb_buffer) are [C]. Train mode
 * normalises each channel by its batch mean and biased variance, then
 * updates running_mean and running_var (with the unbiased variance) by
 * momentum (PyTorch: 0.1) and counts the batch; eval mode normalises by the
 * running statistics. eps: PyTorch's 1e-5. */
nb_node *nb_batchnorm2d(nb_graph *g, nb_node *x, nb_node *weight, nb_node *bias,
                        nb_node *running_mean, nb_node *running_var, float momentum, float eps);
nb_node *nb_batchnorm1d(nb_graph *g, nb_node *x, nb_node *weight, nb_node *bias,
                        nb_node *running_mean, nb_node *running_var, float momentum, float eps);
/* A batch norm node's count of train-mode forwards (num_batches_tracked). */
int64_t nb_batchnorm_batches(const nb_node *bn);
void nb_batchnorm_set_batches(nb_node *bn, int64_t batches);

/* ------------------------------------------------------------------------ */
/* Files: IDX data, datasets, images, safetensors                            */
/* ------------------------------------------------------------------------ */

/* Readers validate everything before use (magic, dimensions, sizes against
 * the file's length, overflow) and fail with one line that names the file,
 * what was wrong and where. Writers write a temporary file in the same
 * directory (PATH.tmp.XXXXXX, six random characters), fsync it, rename it
 * into place and fsync the directory, so a failed or interrupted write
 * leaves the previous file intact. A failed write removes its temporary; a
 * process killed mid-write leaves it behind, for `nabla train` to clear. */

/* An IDX file of unsigned bytes (type 0x08), gzipped or plain. */
typedef struct nb_idx {
    int ndim;
    int dims[NB_MAX_DIMS];
    uint8_t *data; /* product of dims bytes */
} nb_idx;

/* Fills *out, whose data the caller then owns (nb_idx_free); on failure
 * (NB_ERR_IO, NB_ERR_FORMAT, NB_ERR_NOMEM) *out is left empty. */
nb_status nb_idx_read(const char *path, nb_idx *out);
/* Frees idx->data and empties *idx; an empty one is ignored. */
void nb_idx_free(nb_idx *idx);

/* Where a data set's images come from when they are not held at the
 * sample size: image files read and decoded as each sample is needed, or
 * images held in memory at another size. Private to the library. */
typedef struct nb_image_source nb_image_source;

/* A data set: count samples, each channels x height x width bytes when it
 * comes out (the model's input size), and a class index each. IDX data is
 * held as those bytes (a 60,000-image set is 47 MB, not 188). An image
 * folder is not: `source` lists its files, and each sample is decoded and
 * transformed when a batch needs it (nb_dataset_sample), so a folder of any
 * size trains in bounded memory; `images` is then NULL. */
typedef struct nb_dataset {
    int count, channels, height, width;
    uint8_t *images;  /* count x channels x height x width, or NULL with a source */
    int32_t *labels;  /* count class indices */
    nb_image_source *source;
} nb_dataset;

/* The default data directory: Debian's dataset-fashion-mnist package. */
#define NB_FASHION_MNIST_DIR "/usr/share/datasets/fashion-mnist"

/* Load split "train" or "t10k" from a directory holding the four standard
 * MNIST file names (each plain or .gz): {split}-images-idx3-ubyte,
 * {split}-labels-idx1-ubyte. The images are [count, height, width] (one
 * channel) or, for colour, 4-D [count, channels, height, width] under the
 * same file name. Checks that the counts agree and labels are below 10. */
/* *out is the caller's to free with nb_dataset_free; on failure it is left
 * empty and the message names the file. */
nb_status nb_dataset_load_mnist(const char *dir, const char *split, nb_dataset *out);
/* Frees the images and labels and empties *d; an empty one is ignored. */
void nb_dataset_free(nb_dataset *d);

/* Fill a batch: samples order[first .. first+count-1] (order NULL means
 * file order) as floats x/255, then (x - mean[c]) / std[c] when mean and
 * std are not NULL; labels as floats. x holds count*C*H*W floats. Samples
 * from files are decoded here, on all threads (NB_ERR_IO or NB_ERR_FORMAT
 * naming the file; a bad image is an error here even when the data set
 * skips bad images, since the batch has no slot to leave out). An index
 * past the end is NB_ERR_ARG. */
nb_status nb_dataset_batch(const nb_dataset *d, const uint32_t *order, size_t first, int count,
                           const float *mean, const float *std, float *x, float *labels);

/* Fisher-Yates shuffle of order[0..n-1] (filled with 0..n-1 first when
 * reset is nonzero). */
void nb_shuffle(uint32_t *order, size_t n, int reset, nb_rng *rng);

/* Read a PNG (8- or 16-bit; gray, gray+alpha, RGB, RGBA or palette) or a
 * binary/ASCII PGM into chw as floats x/255, channels first. channels is 1
 * (RGB converted by ITU-R BT.601 luma) or 3 (gray replicated). The image must
 * be exactly height x width, else NB_ERR_SHAPE naming both sizes. */
nb_status nb_image_load(const char *path, int channels, int height, int width, float *chw);

/* ------------------------------------------------------------------------ */
/* Datasets of image files: image folders, CIFAR, JPEG, eval transform       */
/* ------------------------------------------------------------------------ */

/* Images larger than this many pixels are refused before their pixels are
 * allocated (decompression bombs); Pillow's MAX_IMAGE_PIXELS. */
#define NB_IMAGE_MAX_PIXELS 89478485L

/* An 8-bit image as decoded: height x width x channels bytes, interleaved
 * (channels 1: gray, 3: RGB). Free with nb_image_free. */
typedef struct nb_image {
    int width, height, channels;
    uint8_t *pixels;
} nb_image;

/* Decode a PNG, JPEG (baseline or progressive, gray or colour) or PGM of
 * any size. The format comes from the first bytes, not the name. Alpha is
 * dropped and 16-bit samples keep their high byte, as Pillow's
 * convert("RGB") does. max_pixels 0 means NB_IMAGE_MAX_PIXELS. */
nb_status nb_image_decode(const char *path, long max_pixels, nb_image *out);
void nb_image_free(nb_image *im);

/* Resize to width x height with Pillow's antialiased bilinear filter
 * (Image.resize(..., BILINEAR), torchvision's default), bit for bit. */
nb_status nb_image_resize(const nb_image *in, int width, int height, nb_image *out);

/* torchvision's eval transform into chw (channels x height x width bytes):
 * convert to `channels` (1: Pillow's convert("L") luma, 3: gray
 * replicated), resize the shorter side to `resize` (0: round(max(height,
 * width) / 0.875), as Resize(256) before CenterCrop(224)), then crop the
 * centre. An image already height x width passes through untouched. */
nb_status nb_image_eval_transform(const nb_image *in, int channels, int height, int width,
                                  int resize, uint8_t *chw);

/* How nb_dataset_open finds and prepares a data set. */
typedef enum nb_dataset_kind {
    NB_DATA_MNIST,    /* {split}-images-idx3-ubyte[.gz] and labels */
    NB_DATA_FOLDER,   /* torchvision ImageFolder: train/CLASS/FILE, val/ or test/ */
    NB_DATA_CIFAR10,  /* data_batch_1..5.bin, test_batch.bin */
    NB_DATA_CIFAR100  /* train.bin, test.bin */
} nb_dataset_kind;

typedef struct nb_dataset_opts {
    /* The model's input: folder and CIFAR images are converted and put
     * through the eval transform to it (IDX data is left as it is). A
     * folder needs it; 0 leaves CIFAR at 3x32x32. */
    int channels, height, width;
    int resize;          /* nb_image_eval_transform's shorter side; 0: default */
    int coarse_labels;   /* CIFAR-100: the 20 coarse labels, not the 100 fine */
    int skip_bad_images; /* a corrupt image in a folder is left out of its
                            batch and counted, not fatal (nb_loader) */
    long max_pixels;     /* per image; 0: NB_IMAGE_MAX_PIXELS */
    /* > 0: keep up to this many bytes of decoded folder images in memory,
     * so that later epochs skip reading and decoding them (the samples are
     * the same bits either way). 0: decode each time. */
    size_t cache_bytes;
} nb_dataset_opts;

typedef struct nb_dataset_info {
    nb_dataset_kind kind;
    char layout[160];  /* what was found, for printing: "image folder (train/, val/)" */
    long ignored;      /* folder files that are not .jpg/.jpeg/.png/.pgm */
    int classes;       /* the label count */
    char **class_names; /* classes names (folders, CIFAR), or NULL */
} nb_dataset_info;

/* Load split "train" or "test" of the data set in dir, whichever layout it
 * has (MNIST's "test" is t10k; a folder's is val/ or else test/). When no
 * layout matches, the error lists everything that was looked for. Labels
 * are class indices; info (may be NULL) says what was found, the class
 * count and, for folders and CIFAR, the class names (a folder's classes
 * are its sorted train/ folder names). Free info with nb_dataset_info_free.
 * IDX and CIFAR files are read whole; an image folder is only listed here,
 * and its images are read as batches need them (a bad one is reported
 * then, naming its path). CIFAR images for a model of another size stay
 * 32x32 in memory and are transformed sample by sample. */
nb_status nb_dataset_open(const char *dir, const char *split, const nb_dataset_opts *opts,
                          nb_dataset *out, nb_dataset_info *info);
void nb_dataset_info_free(nb_dataset_info *info);

/* Training augmentation with torchvision's sampling, applied in this order
 * to each training image (at the model's input size) as its batch is
 * filled. Each image's draws come from (seed, epoch, image index) alone. */
typedef struct nb_augment {
    int rrc;      /* RandomResizedCrop back to the same size: scale 0.08-1,
                     ratio 3/4-4/3, 10 tries, then the centre-crop fallback */
    int crop_pad; /* > 0: RandomCrop(size, padding=crop_pad), zero padding */
    int flip;     /* RandomHorizontalFlip(p=0.5) */
} nb_augment;

/* "rrc,flip,crop:4" (any subset, any order) into *out. */
nb_status nb_augment_parse(const char *list, nb_augment *out);
/* Augment one C x H x W image of bytes into out (the same size). */
nb_status nb_augment_image(const nb_augment *a, uint64_t seed, int epoch, uint32_t index, int C,
                           int H, int W, const uint8_t *chw, uint8_t *out);

/* Sample `index` of d as channels x height x width bytes into chw. Held
 * bytes are copied (augmented when a is not NULL). An image from a file, or
 * held at another size, goes through torchvision's pipeline: with a->rrc,
 * RandomResizedCrop drawn on the image as decoded and resized to the
 * sample size; otherwise the eval transform (nb_image_eval_transform);
 * then crop:P and flip. The draws come from (seed, epoch, index) alone.
 * Thread-safe: any number of threads may read one data set at once. */
nb_status nb_dataset_sample(const nb_dataset *d, uint32_t index, const nb_augment *a,
                            uint64_t seed, int epoch, uint8_t *chw);

/* ---- a prefetching loader ------------------------------------------------ */

/* An epoch's batches, made ahead of the training step on worker threads
 * (like torch.utils.data.DataLoader with num_workers): each worker fills a
 * whole batch (decode, transform, augment, normalise) into one of a fixed
 * ring of batch buffers, so memory is bounded by the ring whatever the data
 * set's size, and batches come out in order. A batch's contents depend
 * only on the data, the order, the seed and the epoch, never on the
 * workers or their timing. */
typedef struct nb_loader nb_loader;

typedef struct nb_loader_opts {
    int batch;                /* samples per batch (the last of an epoch may be short) */
    int workers;              /* threads filling batches ahead; 0: each batch is filled
                                 when asked for, on the calling thread's OpenMP team */
    int prefetch;             /* batch buffers in the ring; 0: workers + 2 */
    const nb_augment *augment; /* NULL: none */
    uint64_t seed;            /* the augmentation's draws */
    const float *mean, *std;  /* per channel normalisation, or NULL: x/255 */
    /* Data-parallel shards: this process takes part `shard` of `shards`
     * (0 and 0 or 1: all) of every batch's samples, contiguous and as even
     * as can be, so together the shards make the same batch. */
    int shard, shards;
} nb_loader_opts;

typedef struct nb_batch {
    const float *x;   /* count x C x H x W, normalised */
    const float *y;   /* count labels, as floats */
    int count;        /* samples here (fewer than asked when bad images were left out) */
    int global_count; /* samples of the whole batch over every shard, before any left out */
    long index;       /* the batch's index in the epoch */
    long bad;         /* images left out of it (the data set's skip_bad_images) */
} nb_batch;

/* A loader over d (which must outlive it). Starts o->workers threads. */
nb_status nb_loader_new(const nb_dataset *d, const nb_loader_opts *o, nb_loader **out);
/* Begin an epoch over the n samples order[0..n-1] (NULL: 0..n-1; the array
 * must stay unchanged until the next start), from batch first_batch (to
 * resume part-way). Batches of a previous epoch still queued are dropped. */
nb_status nb_loader_start(nb_loader *l, const uint32_t *order, size_t n, int epoch,
                          long first_batch);
/* The epoch's next batch into *out, waiting for it when the workers are
 * behind; the buffers stay valid until the next call. At the end of the
 * epoch *out is NULL. A worker's failure (a bad image, out of memory)
 * comes back here, on the batch it belongs to, with its message. */
nb_status nb_loader_next(nb_loader *l, const nb_batch **out);
/* Stops the workers (a batch being filled is finished first) and frees. */
void nb_loader_free(nb_loader *l);

/* The ten Fashion-MNIST class names, in label order. */
extern const char *const nb_fashion_mnist_classes[10];

typedef struct nb_named_tensor {
    const char *name;
    nb_tensor tensor; /* shape to expect or write; data to fill or write */
    /* Non-NULL: an I64 tensor of tensor's shape (batch norm's
     * num_batches_tracked), written from and read into these integers;
     * tensor.data is then unused. */
    int64_t *i64;
} nb_named_tensor;

/* A metadata entry of a safetensors header ("__metadata__", string->string). */
typedef struct nb_meta {
    char key[64];
    char value[256];
} nb_meta;

/* Write n bytes of data to path atomically, as every file nabla writes is:
 * to a temporary file beside it, fsynced, then renamed over path. The
 * caller keeps data. On failure (NB_ERR_IO naming the path and the reason,
 * NB_ERR_ARG, NB_ERR_NOMEM) the previous file at path is untouched and no
 * temporary file is left. */
nb_status nb_file_write_atomic(const char *path, const void *data, size_t n);

/* Write F32 tensors (I64 for those with i64), little-endian, with optional
 * metadata, atomically. */
nb_status nb_safetensors_save(const char *path, const nb_named_tensor *tensors, int count,
                              const nb_meta *meta, int meta_count);
/* Read the tensors named in `tensors` (their shapes are what is expected,
 * their data buffers are filled). Every name, shape and dtype is checked and
 * all mismatches are reported at once; F32 is read as is, F64/F16/BF16 are
 * converted; a tensor with i64 must be I64 in the file. Tensors in the file that are not asked for are an error unless
 * allow_extra. Up to meta_cap metadata entries go to meta (may be NULL) and
 * their number to *meta_count (may be NULL). On failure no buffer is
 * changed. */
nb_status nb_safetensors_load(const char *path, const nb_named_tensor *tensors, int count,
                              int allow_extra, nb_meta *meta, int meta_cap, int *meta_count);

/* ------------------------------------------------------------------------ */
/* Optimizers and learning-rate schedules                                    */
/* ------------------------------------------------------------------------ */

/* Update rules are torch.optim's, step for step, so a run can be compared
 * with PyTorch's. They act on the flat parameter and gradient blocks. */
typedef enum nb_optimizer_kind { NB_OPT_SGD, NB_OPT_ADAM, NB_OPT_ADAMW } nb_optimizer_kind;

typedef enum nb_schedule_kind {
    NB_SCHED_CONSTANT, /* lr */
    NB_SCHED_STEP,     /* lr * gamma^floor(step / step_size) */
    NB_SCHED_COSINE,   /* min_lr + (lr - min_lr) (1 + cos(pi step / total_steps)) / 2 */
    NB_SCHED_INV       /* Caffe's inv: lr * (1 + gamma step)^-power */
} nb_schedule_kind;

typedef struct nb_optimizer_opts {
    nb_optimizer_kind kind;
    float lr;
    float momentum;     /* SGD; dampening is 0 */
    int nesterov;       /* SGD, needs momentum > 0 */
    float weight_decay; /* SGD, Adam: L2 added to the gradient; AdamW: decoupled */
    float beta1, beta2, eps; /* Adam, AdamW */
    float clip_norm;    /* > 0: scale gradients so their global L2 norm is at most this */
    nb_schedule_kind schedule;
    int step_size;      /* STEP: steps between decays */
    float gamma;        /* STEP, INV */
    float power;        /* INV */
    long total_steps;   /* COSINE: steps to anneal over */
    float min_lr;       /* COSINE */
    /* > 0: linear warm-up over this many steps before the schedule: step k
     * < warmup_steps uses lr (1/W + (1 - 1/W) k/W), W = warmup_steps
     * (torch's LinearLR(start_factor=1/W, total_iters=W)); step k >= W uses
     * the schedule at step k - W (SequentialLR with milestones=[W]), so a
     * cosine's total_steps counts the steps after the warm-up. */
    long warmup_steps;
} nb_optimizer_opts;

typedef struct nb_optimizer nb_optimizer;

/* torch.optim's defaults for the kind: lr 0.01 (SGD) or 0.001 (Adam, AdamW),
 * betas (0.9, 0.999), eps 1e-8, AdamW weight decay 0.01, constant schedule. */
nb_optimizer_opts nb_optimizer_defaults(nb_optimizer_kind kind);
/* An optimizer for a parameter block of n_params floats, owned by the
 * caller (nb_optimizer_free). Checks the options: a negative lr, nesterov
 * without momentum, ... give NULL with a message naming the option (also
 * NULL when out of memory). */
nb_optimizer *nb_optimizer_new(const nb_optimizer_opts *opts, size_t n_params);
/* Frees the optimizer and its state; NULL is ignored. */
void nb_optimizer_free(nb_optimizer *opt);
/* One update of params from grads, both n_params floats the caller owns
 * (grads may be scaled in place by clipping). Uses the schedule's lr for the
 * current step, then advances it. NB_ERR_ARG for NULL buffers. */
nb_status nb_optimizer_step(nb_optimizer *opt, float *params, float *grads);
/* The learning rate the next step will use, and the steps taken so far. */
float nb_optimizer_lr(const nb_optimizer *opt);
uint64_t nb_optimizer_steps(const nb_optimizer *opt);
/* The optimizer's state for checkpoints: up to two buffers of n_params
 * floats (momentum; or Adam's first and second moments), NULL where unused,
 * owned by the optimizer and writable (a resumed run fills them), and the
 * step count. Setting the step restores a resumed run. */
void nb_optimizer_state(nb_optimizer *opt, float **buf0, float **buf1);
void nb_optimizer_set_steps(nb_optimizer *opt, uint64_t steps);
/* Exclude params[begin, end) from weight decay (torch: a parameter group
 * with weight_decay 0). May be called for several ranges. */
nb_status nb_optimizer_no_decay(nb_optimizer *opt, size_t begin, size_t end);

/* ------------------------------------------------------------------------ */
/* Networks, models and training                                             */
/* ------------------------------------------------------------------------ */

/* A model is a sequential network over one graph: an input node of shape
 * [N, C, H, W] (or [N, features]), the layers in the order they are added,
 * and a head that nb_model_finish adds: labels [N] (class indices as floats),
 * logits [N, classes], probabilities (the softmax of the logits) and the loss
 * nb_softmax_cross_entropy(logits, labels), the mean over the batch.
 *
 * A network may end with a softmax layer: then the logits are that softmax's
 * input, the loss is still the cross-entropy of those logits (never a second
 * softmax), and the softmax's output is the probabilities.
 *
 * Every trainable parameter is a graph parameter named as PyTorch names it
 * ("conv1.weight", "features.0.bias"), so weights move both ways as
 * safetensors, and all of them sit in the graph's one parameter block
 * (nb_graph_params), in the order the layers were added. The batch may change
 * from call to call (a last, smaller batch) without rebuilding. */
typedef struct nb_model nb_model;

/* sample_shape is one sample: {C, H, W} (ndim 3) or {features} (ndim 1).
 * seed drives the parameter init (nb_model_finish) and the dropout masks.
 * name is what messages call the model (may be NULL). */
nb_model *nb_model_new(const char *name, int ndim, const int *sample_shape, uint64_t seed);
/* Frees the model with its graph; NULL is ignored. */
void nb_model_free(nb_model *m);

/* Layers, appended before nb_model_finish. `name` prefixes the layer's
 * parameters ("fc1" gives fc1.weight and fc1.bias); NULL or "" names them
 * by the layer's position counting from 0, as nn.Sequential does
 * ("3.weight"). Pooling strides of 0 mean "the kernel size", as in PyTorch.
 * A failure (a shape that does not fit, a duplicate name) names the layer
 * and leaves the model unusable: free it. */
nb_status nb_model_linear(nb_model *m, const char *name, int out_features, int bias);
nb_status nb_model_conv2d(nb_model *m, const char *name, int out_channels, int kernel_h,
                          int kernel_w, int stride_h, int stride_w, int pad_h, int pad_w, int bias);
nb_status nb_model_maxpool2d(nb_model *m, int kernel_h, int kernel_w, int stride_h, int stride_w,
                             int pad_h, int pad_w);
nb_status nb_model_avgpool2d(nb_model *m, int kernel_h, int kernel_w, int stride_h, int stride_w,
                             int pad_h, int pad_w);
nb_status nb_model_adaptive_avgpool2d(nb_model *m, int out_h, int out_w);
nb_status nb_model_relu(nb_model *m);
nb_status nb_model_sigmoid(nb_model *m);
nb_status nb_model_tanh(nb_model *m);
nb_status nb_model_softmax(nb_model *m);
nb_status nb_model_flatten(nb_model *m);
/* p = 0 adds an identity layer (it keeps its place in the numbering). */
nb_status nb_model_dropout(nb_model *m, float p);
/* Batch normalisation as torch.nn.BatchNorm2d(C) (after a [N, C, H, W]
 * layer) or BatchNorm1d(C) (after a [N, C] one): parameters name.weight and
 * name.bias, buffers name.running_mean, name.running_var and
 * name.num_batches_tracked (I64), saved and loaded with the weights and
 * carried by checkpoints; the optimizer never sees the buffers. Training
 * steps run in train mode (batch statistics, buffers updated), evaluation
 * and prediction in eval mode (running statistics), as dropout switches. */
nb_status nb_model_batchnorm2d(nb_model *m, const char *name);
nb_status nb_model_batchnorm1d(nb_model *m, const char *name);
/* Branches (residual networks). Each layer reads the head, the output of
 * the layer added last; nb_model_set_head points it at the input or any
 * earlier layer's output instead (nb_model_head tells which node is the head
 * now), and nb_model_add adds a layer whose output is head + other, two
 * outputs of equal shape (else NB_ERR_SHAPE naming both). A block:
 *     nb_node *x = nb_model_head(m);
 *     conv2d, batchnorm2d, relu, conv2d, batchnorm2d;
 *     nb_model_add(m, NULL, x); nb_model_relu(m); */
nb_node *nb_model_head(const nb_model *m);
nb_status nb_model_set_head(nb_model *m, nb_node *node);
nb_status nb_model_add(nb_model *m, const char *name, nb_node *other);
/* Exclude every bias and every batch norm weight and bias from weight decay
 * in opt (made for this model's parameter block): torch's two parameter
 * groups, the second with weight_decay 0. Returns how many parameter tensors
 * were excluded in *count (may be NULL). */
nb_status nb_model_no_decay_norm_bias(const nb_model *m, nb_optimizer *opt, int *count);

/* Add the head, check that the network's output is [N, classes], and
 * initialise the parameters with nb_model_init(m, seed). */
nb_status nb_model_finish(nb_model *m);
/* PyTorch's default init: for each linear and conv2d layer in order, the
 * weight and then the bias uniform in [-1/sqrt(fan_in), 1/sqrt(fan_in)),
 * fan_in = in_features or C*KH*KW, from an nb_rng seeded with seed. */
void nb_model_init(nb_model *m, uint64_t seed);

/* Options of the built-in models; all-zero means the defaults. */
typedef struct nb_model_config {
    int classes;    /* output classes; 0: the model's default (10; alexnet, resnet18 1000) */
    int hidden;     /* mlp's hidden width; 0: 128 */
    int no_dropout; /* build dropout layers with p = 0: eval-mode dropout with
                       gradients kept, to compare a training step with a
                       reference run in eval mode */
    uint64_t seed;  /* parameter init and dropout masks */
    int input[3];   /* {C, H, W}: build for this sample shape instead of the
                       model's own (a network file's input line); all zero:
                       the model's. A shape the layers cannot take fails as
                       any shape error does, naming the layer. */
} nb_model_config;

/* A finished, initialised model: one of the built-ins, or the path of a
 * network file (anything that is not a built-in name). cfg may be NULL.
 * The caller owns it (nb_model_free); NULL on failure, with the message
 * (an unknown name, a file that cannot be read or parsed, a shape the
 * layers cannot take, NB_ERR_NOMEM).
 *   logreg   1x28x28 -> flatten -> fc (784 -> classes)
 *   mlp      1x28x28 -> flatten -> fc1 (784 -> hidden) -> sigmoid -> fc2
 *   lenet5   1x28x28 -> conv1 6@5x5 pad 2 -> relu -> maxpool 2 -> conv2 16@5x5
 *            -> relu -> maxpool 2 -> flatten -> fc1 400->120 -> relu
 *            -> fc2 120->84 -> relu -> fc3 84->classes
 *   alexnet  torchvision's AlexNet on 3x224x224, names features.0 ...
 *            classifier.6
 *   resnet18 torchvision's ResNet-18 on 3x224x224, names conv1, bn1,
 *            layer1.0.conv1 ... layer2.0.downsample.1 ... fc */
nb_model *nb_model_create(const char *name_or_path, const nb_model_config *cfg);

/* Network files: text, one layer per line, '#' starts a comment, options
 * are key=value. The first line is the input, one sample's shape:
 *     input 1 28 28                 # C H W, or a feature count: input 784
 *     conv2d name=conv1 out=6 kernel=5 pad=2   # stride=1 bias=1 by default
 *     relu                          # also: sigmoid, tanh, softmax, flatten
 *     maxpool2d kernel=2 stride=2   # avgpool2d alike; stride defaults to kernel, pad to 0
 *     adaptive_avgpool2d out=6      # out=HxW for a non-square output
 *     dropout p=0.5
 *     linear name=fc1 out=120       # bias=0 for none
 *     batchnorm2d name=bn1          # batchnorm1d after linear
 *     add from=a,b                  # a + b; "add from=a": the previous line's output + a
 * Sizes take N or HxW (kernel=3x5). name= is optional (default: the layer's
 * position, from 0) and allowed on every layer; from=NAME (every layer)
 * reads that earlier named layer's output, or the input (from=input),
 * instead of the previous line's. Names resolve only among the lines above,
 * so there are no cycles; an unknown name, a name given twice, or an add of
 * two shapes that differ is an error naming the line (and both shapes). cfg->classes, when set, must equal the network's
 * output; cfg->hidden is ignored. Every error names the source and line:
 * "net.txt:4: conv2d: unknown option 'kernal'". */
/* Both return a finished model the caller owns (nb_model_free), or NULL
 * after the message; source names the text in messages. */
nb_model *nb_model_parse(const char *text, const char *source, const nb_model_config *cfg);
nb_model *nb_model_parse_file(const char *path, const nb_model_config *cfg);

/* The model's graph, name and head nodes, owned by the model and valid
 * until nb_model_free. The head nodes (labels, logits, probabilities,
 * loss) are NULL before nb_model_finish. */
nb_graph *nb_model_graph(const nb_model *m);
const char *nb_model_name(const nb_model *m);
nb_node *nb_model_input(const nb_model *m);
nb_node *nb_model_labels(const nb_model *m);
nb_node *nb_model_logits(const nb_model *m);
nb_node *nb_model_probs(const nb_model *m);
nb_node *nb_model_loss(const nb_model *m);
/* One sample's shape into shape[0..2]; returns its ndim (1 or 3). */
int nb_model_input_shape(const nb_model *m, int *shape);
int nb_model_classes(const nb_model *m);

/* Input normalisation, saved with the weights and used by nb_train,
 * nb_evaluate and callers of nb_model_normalization: pixels become x/255,
 * then (x - mean[c]) / std[c]. channels is the model input's channel count
 * (1 for a features input); 0 removes it (plain x/255). */
nb_status nb_model_set_normalization(nb_model *m, int channels, const float *mean,
                                     const float *std);
/* The channel count (0: none) and the two arrays, which stay the model's. */
int nb_model_normalization(const nb_model *m, const float **mean, const float **std);

/* Weights as safetensors under the parameters' names, with the model's name,
 * normalisation and class names in the metadata, written atomically (a
 * failed write, NB_ERR_IO, leaves the previous file). Loading checks every
 * name and shape and reports all mismatches in one message (NB_ERR_FORMAT;
 * NB_ERR_IO for a file that cannot be read), changing nothing in m then;
 * extra tensors are an error, except in a checkpoint written by nb_train,
 * whose weights load with its optimizer state left aside. */
nb_status nb_model_save(const nb_model *m, const char *path);
nb_status nb_model_load(nb_model *m, const char *path);

/* A model's class names, one per class in label order (n 0 clears them).
 * The names are copied. NB_ERR_ARG, changing nothing, when n is not the
 * class count or a name is empty, over 200 bytes or holds a line break.
 * nb_model_save writes them into the weights' metadata and nb_model_load
 * reads them back; nb_model_class_name is NULL when there are none (or k is
 * out of range), else a string the model owns. */
nb_status nb_model_set_class_names(nb_model *m, int n, const char *const *names);
const char *nb_model_class_name(const nb_model *m, int k);

/* One step in train mode: feed x (batch samples) and labels (batch class
 * indices as floats, checked to be below the class count), forward,
 * backward, and one optimizer step. opt must have been made for this
 * model's parameter count (nb_graph_params of nb_model_graph). *loss (may be
 * NULL) gets the batch's mean loss. A NaN or infinite loss or gradient is
 * NB_ERR_NONFINITE with no update; the message names the first parameter
 * whose gradient is not finite and the element ("the gradient of
 * conv1.weight is not finite (element 12 is nan)"). */
nb_status nb_model_train_step(nb_model *m, nb_optimizer *opt, const float *x,
                              const float *labels, int batch, float *loss);
/* Eval mode: logits of a batch (read them through nb_model_logits) and, when
 * labels is not NULL, its mean loss into *loss (may be NULL). */
nb_status nb_model_eval_batch(nb_model *m, const float *x, const float *labels, int batch,
                              float *loss);
/* Eval mode: class probabilities [batch, classes], valid until the next call;
 * NULL on failure. */
const nb_tensor *nb_model_predict(nb_model *m, const float *x, int batch);

/* What nb_train reports after each epoch (a run that stops after a number
 * of steps reports its last epoch even when it ends part-way). */
typedef struct nb_epoch_report {
    int epoch;            /* from 1 */
    int epochs;           /* planned epochs (with steps, the epochs they span) */
    long step;            /* training steps done so far, in all */
    size_t samples;       /* samples trained on in this epoch */
    double train_loss;    /* mean over this epoch's batches, weighted by batch size */
    double test_loss;     /* NaN without a test set */
    double test_accuracy; /* in [0, 1]; NaN without a test set */
    double test_top5;     /* the label among the 5 highest logits, in [0, 1]; NaN
                             without a test set or with 5 classes or fewer */
    double seconds;       /* training time of this epoch, evaluation excluded */
    double images_per_s;  /* samples / seconds */
    float lr;             /* the learning rate the next step will use */
    long skipped;         /* steps skipped for a non-finite loss or gradient
                             (skip_nonfinite); their samples are not counted */
    long bad_images;      /* bad images left out of this epoch's batches
                             (nb_dataset_opts.skip_bad_images) */
} nb_epoch_report;

typedef void (*nb_epoch_fn)(const nb_epoch_report *report, void *user);

/* Progress within a phase, reported after every training step and every
 * evaluation batch, for a live display or a metrics log. The library prints
 * nothing itself; a callback that draws should throttle its own redraws. */
typedef enum nb_phase { NB_PHASE_TRAIN, NB_PHASE_EVAL } nb_phase;

typedef struct nb_progress {
    nb_phase phase;
    int epoch, epochs;     /* epoch from 1 and the planned epochs; 0, 0 for a lone evaluation */
    long done, total;      /* batches done in this epoch (or evaluation) and its batch count */
    long step;             /* training steps done in all (an evaluation: the run's step) */
    size_t samples;        /* samples done in this epoch (or evaluation) */
    double loss;           /* mean loss of those samples; NaN before the first */
    double images_per_s;   /* speed since this phase began, or resumed */
    double seconds;        /* time since then */
    double seconds_left;   /* estimated time to the phase's end at that speed; NaN unknown */
    float lr;              /* the learning rate the next step will use (training) */
} nb_progress;

typedef void (*nb_progress_fn)(const nb_progress *progress, void *user);

/* Data-parallel training over MPI (a build with Open MPI: make MPI=1, or
 * found by pkg-config). Every rank (process) holds the whole model; each
 * takes its contiguous shard of every global batch, its gradients are
 * summed over the ranks (weighted by its share of the batch, so the result
 * is the mean over the global batch), and every rank applies the same
 * optimizer step, so the weights stay identical. nabla.h does not include
 * mpi.h: a communicator comes in as a pointer to an MPI_Comm. */
typedef struct nb_dist nb_dist;

/* 1 when this library was built with MPI. */
int nb_dist_available(void);
/* 1 when the environment says this process is one of several a launcher
 * (mpirun, srun) started: then training alone would repeat work. */
int nb_dist_launched(void);
/* Initialise MPI (MPI_Init_thread, asking for MPI_THREAD_MULTIPLE) unless it
 * already is, and train over MPI_COMM_WORLD; nb_dist_free then finalises.
 * argc and argv may be NULL. NULL on failure, and always without MPI (the
 * message says how to get it). */
nb_dist *nb_dist_init(int *argc, char ***argv);
/* Train over a duplicate of *(MPI_Comm *)mpi_comm; MPI stays the caller's. */
nb_dist *nb_dist_from_comm(const void *mpi_comm);
void nb_dist_free(nb_dist *d);
/* This process's rank and the number of ranks; NULL: 0 and 1. */
int nb_dist_rank(const nb_dist *d);
int nb_dist_size(const nb_dist *d);
/* This rank's contiguous share [*first, *first + *n) of count positions. */
void nb_dist_shard(const nb_dist *d, long count, long *first, long *n);
/* A rank that waits longer than this in one collective (a rank died or
 * hangs) prints a message naming itself and ends the whole job with
 * MPI_Abort: the one correct end of an MPI job whose runtime has failed.
 * Default 300 seconds. */
nb_status nb_dist_set_timeout(nb_dist *d, double seconds);
/* How the gradients are summed: NB_DIST_OVERLAP (the default) in buckets of
 * about bucket_bytes (default 1 MiB) from the last parameters to the first,
 * each a nonblocking allreduce started while backward is still running, as
 * soon as its gradients are final; NB_DIST_AFTER_BACKWARD the same buckets
 * started after backward (the same sums, bit for bit); NB_DIST_ONE_BLOCK one
 * allreduce of the whole block after backward. */
typedef enum nb_dist_reduce {
    NB_DIST_OVERLAP,
    NB_DIST_AFTER_BACKWARD,
    NB_DIST_ONE_BLOCK
} nb_dist_reduce;
nb_status nb_dist_set_reduce(nb_dist *d, nb_dist_reduce how, size_t bucket_bytes);
/* Collective: NB_ERR_STATE naming the ranks whose parameters differ from
 * rank 0's (a hash of every bit). nb_train checks at its start, every
 * NB_DIST_CHECK_EVERY steps and at its end; `when` goes in the message. */
#define NB_DIST_CHECK_EVERY 100
nb_status nb_dist_check_weights(nb_dist *d, nb_model *m, const char *when);
/* End every rank of the job (MPI_Abort) after a failure on this one, so
 * that none waits for it; nothing with one rank or NULL. */
void nb_dist_abort(nb_dist *d, int code);

typedef struct nb_train_opts {
    int epochs;             /* train this many epochs in all (when steps is 0) */
    long steps;             /* > 0: stop after this many steps in all, even mid-epoch */
    int batch;              /* the last batch of an epoch may be smaller: it is used */
    int shuffle;            /* reshuffle the order each epoch (nb_shuffle); 0: file order */
    uint64_t seed;          /* the shuffle's generator */
    const nb_dataset *test; /* evaluated after each epoch, or NULL */
    int eval_batch;         /* batch for that evaluation; 0: automatic */
    /* A checkpoint written after every epoch (after its report), at the end
     * of the run and when it stops on request: weights, optimizer state
     * ("__optim.buf0", "__optim.buf1"), and in the metadata the epoch, the
     * batch within it, the step, the optimizer's and the graph's steps, the
     * shuffle generator and the epoch's loss so far, so a run resumed from it
     * repeats the uninterrupted run exactly, epoch reports included. It is
     * replaced atomically (temporary file, fsync, rename), and never with
     * non-finite weights: that write fails with NB_ERR_NONFINITE and the
     * previous checkpoint stays. NULL: none. */
    const char *checkpoint;
    /* > 0: write the checkpoint every this many steps (and at the end of the
     * run) instead of after every epoch. */
    long checkpoint_every;
    /* Continue from such a checkpoint (same model, optimizer kind and batch). */
    const char *resume;
    /* Checked before each step and before each evaluation: once *stop is
     * nonzero, nb_train writes the checkpoint (to stop_checkpoint when
     * checkpoint is NULL) and returns NB_ERR_STOPPED, its message naming the
     * step and the file. A signal handler that sets a flag can stop a run
     * cleanly this way; the library installs no handlers. NULL: never. */
    volatile const sig_atomic_t *stop;
    const char *stop_checkpoint;
    /* Nonzero: a step whose loss or gradient is not finite is skipped (no
     * update) and counted in the epoch's report, instead of failing with
     * NB_ERR_NONFINITE. */
    int skip_nonfinite;
    nb_epoch_fn on_epoch;   /* may be NULL */
    void *user;
    /* Training images augmented as they are batched (NULL: none); the
     * draws use `seed`, the epoch and the image's index. */
    const nb_augment *augment;
    /* Called after every step and after every batch of the test-set
     * evaluation, with user as its second argument; may be NULL. */
    nb_progress_fn on_progress;
    /* Threads that decode, augment and normalise batches ahead of the
     * step (nb_loader_opts.workers); 0: each batch is made when needed,
     * on the OpenMP threads. The result is the same bits either way. */
    int workers;
    /* Train data-parallel over these ranks (NULL: this process alone). batch
     * stays the global batch; every rank must call nb_train with the same
     * data, model and options. The callbacks run on every rank with global
     * figures; only rank 0 writes checkpoints. The test set is evaluated
     * in shards, with rank 0's batch norm statistics. */
    nb_dist *distributed;
} nb_train_opts;

/* 10 epochs, batch 64, shuffled with seed 0, nothing else. */
nb_train_opts nb_train_defaults(void);

/* Train on `train`, checking first that its images have the model's input
 * size and its labels are below the model's class count, and that the
 * weights to start from are finite. Weights that are not finite at the end
 * (an update that overflowed) are NB_ERR_NONFINITE. The model, optimizer,
 * data and opts stay the caller's; nb_train keeps no pointer to them after
 * it returns. Other failures: NB_ERR_ARG (bad opts), NB_ERR_SHAPE (data that
 * does not fit the model), NB_ERR_IO / NB_ERR_FORMAT (checkpoint or resume
 * file), NB_ERR_NONFINITE (a step, unless skip_nonfinite), NB_ERR_STOPPED,
 * NB_ERR_NOMEM; the message names the epoch and step where it happened. */
nb_status nb_train(nb_model *m, nb_optimizer *opt, const nb_dataset *train,
                   const nb_train_opts *opts);

typedef struct nb_eval_result {
    double loss;     /* mean cross-entropy */
    double accuracy; /* correct / n */
    size_t n, correct;
    double top5;        /* top5_correct / n: the label among the 5 highest logits */
    size_t top5_correct;
} nb_eval_result;

/* Evaluate in eval mode with the model's normalisation, in batches of
 * `batch` (0: about 16 MB of input at a time, at most 1000). confusion (may
 * be NULL) is the caller's array of classes x classes counts, overwritten:
 * row = true class, column = predicted class. NB_ERR_SHAPE when the data
 * does not fit the model (named both), NB_ERR_ARG for a bad batch or an
 * unfinished model, NB_ERR_NOMEM; *result is filled only on success. The
 * model's graph is left in eval mode. */
nb_status nb_evaluate(nb_model *m, const nb_dataset *d, int batch, nb_eval_result *result,
                      size_t *confusion);
/* nb_evaluate, calling fn(progress, user) after each batch (fn may be NULL). */
nb_status nb_evaluate_progress(nb_model *m, const nb_dataset *d, int batch, nb_eval_result *result,
                               size_t *confusion, nb_progress_fn fn, void *user);

/* ------------------------------------------------------------------------ */
/* Gradient check                                                            */
/* ------------------------------------------------------------------------ */

typedef struct nb_gradcheck_result {
    double max_rel_error; /* worst |analytic - numeric| / max(|analytic|, |numeric|, 0.01) */
    const nb_node *worst_node;
    size_t worst_index;     /* element of worst_node where it occurred */
    double worst_analytic, worst_numeric;
    size_t checked;         /* number of elements compared */
    double max_abs_grad;    /* largest |analytic| seen: 0 means a vacuous check */
} nb_gradcheck_result;

/* Compare the analytic gradient of scalar `loss` with respect to every
 * parameter and every input marked nb_requires_grad against central finite
 * differences with step eps. Inputs must already be fed. Leaves the graph
 * evaluated at the unperturbed point, with its gradients. Fails as
 * nb_forward and nb_backward do, and NB_ERR_ARG for eps <= 0 or a NULL
 * result; result's node pointer belongs to g. */
nb_status nb_gradcheck(nb_graph *g, nb_node *loss, double eps, nb_gradcheck_result *result);

#ifdef __cplusplus
}
#endif
#endif /* NABLA_H */
