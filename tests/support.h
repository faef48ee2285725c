/* support.h — what the tests share: cmocka, random tensors, and a gradient
 * check assertion that also refuses vacuous (all-zero) gradients. */
#ifndef NB_TEST_SUPPORT_H
#define NB_TEST_SUPPORT_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "nabla.h"

/* Fill with uniform values in [lo, hi) from a fixed-seed stream. */
void fill_uniform(float *x, size_t n, float lo, float hi, nb_rng *rng);
/* Fill away from the kink at 0: |x| in [0.1, 1), random sign. */
void fill_away_from_zero(float *x, size_t n, nb_rng *rng);
/* A random shape of ndim dims, each in [lo, hi]. */
void random_shape(int *shape, int ndim, int lo, int hi, nb_rng *rng);

/* An input node fed with random values (fill = uniform in [lo, hi)). */
nb_node *random_input(nb_graph *g, const char *name, int ndim, const int *shape, float lo, float hi,
                      nb_rng *rng);
/* A parameter initialised uniformly in [lo, hi). */
nb_node *random_param(nb_graph *g, const char *name, int ndim, const int *shape, float lo, float hi,
                      nb_rng *rng);

/* J = sum(y * R) with R a fixed random constant: a scalar loss whose
 * gradient reaches every element of y with a different weight. */
nb_node *random_projection_loss(nb_graph *g, nb_node *y, nb_rng *rng);

/* Run nb_gradcheck and assert max relative error <= tol and a nonzero
 * gradient; on failure prints where the worst error was. */
void assert_gradcheck(nb_graph *g, nb_node *loss, double eps, double tol);

/* Assert a status is NB_OK, printing nb_last_error() if not. */
#define assert_ok(expr)                                                        \
    do {                                                                       \
        nb_status s_ = (expr);                                                 \
        if (s_ != NB_OK) print_error("%s: %s\n", #expr, nb_last_error());      \
        assert_int_equal(s_, NB_OK);                                           \
    } while (0)

#endif
