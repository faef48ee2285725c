/* lecture_logreg.c — the gradient of logistic regression, from the graph
 * and by hand.
 *
 * For one example x with label y* in {0, 1} and y = sigmoid(theta^T x), the
 * lecture's objective is the log-likelihood (it is maximised)
 *
 *     J = y* log y + (1 - y*) log(1 - y)
 *
 * and since dy/dz = y (1 - y) for z = theta^T x, the chain rule collapses to
 *
 *     dJ/dtheta = (y* - y) x        dJ/dx = (y* - y) theta
 *
 * The graph below spells J out with elementwise ops and one matmul, and
 * backward reproduces both formulas. x is a row [1, D] (a batch of one), so
 * theta^T x is matmul(x, theta) with theta stored as a row and transposed. */
#include <nabla.h>
#include <stdio.h>

#define D 3

/* 1 - v, as graph nodes. */
static nb_node *one_minus(nb_graph *g, nb_node *v) { return nb_add_scalar(g, nb_neg(g, v), 1.0f); }

int main(void) {
    nb_graph *g = nb_graph_new();
    nb_node *x = nb_input(g, "x", 2, (int[]){1, D});
    nb_node *ystar = nb_input(g, "y*", 2, (int[]){1, 1});
    nb_node *theta = nb_param(g, "theta", 2, (int[]){1, D});
    nb_node *y = nb_sigmoid(g, nb_matmul(g, x, theta, 0, 1));
    nb_node *J = nb_add(g, nb_mul(g, ystar, nb_log(g, y)),
                        nb_mul(g, one_minus(g, ystar), nb_log(g, one_minus(g, y))));
    nb_requires_grad(x, 1);

    const float x0[D] = {1.0f, -2.0f, 0.5f}, theta0[D] = {0.3f, 0.1f, -0.4f};
    float *th = nb_value(theta)->data;
    for (int i = 0; i < D; i++) th[i] = theta0[i];

    for (int label = 1; label >= 0; label--) {
        float ys = (float)label;
        if (!J || nb_feed(x, x0, 1) || nb_feed(ystar, &ys, 1) || nb_forward(g, J) || nb_backward(g, J)) {
            fprintf(stderr, "%s\n", nb_last_error());
            nb_graph_free(g);
            return 1;
        }
        float yv = nb_value(y)->data[0];
        printf("y* = %d: y = %.6f, J = %.6f\n", label, yv, nb_value(J)->data[0]);
        printf("  i  dJ/dtheta_i  (y*-y) x_i   dJ/dx_i  (y*-y) theta_i\n");
        for (int i = 0; i < D; i++)
            printf("  %d  %11.6f  %10.6f  %9.6f  %14.6f\n", i, nb_grad(theta)->data[i], (ys - yv) * x0[i],
                   nb_grad(x)->data[i], (ys - yv) * theta0[i]);
    }
    nb_graph_free(g);
    return 0;
}
