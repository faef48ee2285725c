/* lecture_mlp.c — backpropagation through a network with one hidden layer,
 * from the graph and by hand.
 *
 * The lecture's network, without biases (as in its derivation):
 *
 *     h = sigmoid(alpha x)       alpha is [H, D]
 *     y = sigmoid(beta^T h)      beta is [H], stored as a row [1, H]
 *
 * and two losses for a target y*:
 *
 *     squared:        J = 1/2 (y - y*)^2                   dJ/dy = y - y*
 *     cross-entropy:  J = -(y* log y + (1 - y*) log(1 - y))  dJ/dy = (y - y*) / (y (1 - y))
 *
 * With g_b = dJ/dy y (1 - y), the gradient at the output unit's input
 * b = beta^T h (for cross-entropy it is just y - y*), the chain rule gives
 *
 *     dJ/dbeta_j    = g_b h_j
 *     dJ/dalpha_jk  = g_b beta_j h_j (1 - h_j) x_k
 *
 * Both layers are nb_linear without a bias: alpha x for a row x is
 * x alpha^T. */
#include <nabla.h>
#include <stdio.h>
#include <string.h>

#define D 3
#define H 4

static int fail(nb_graph *g) {
    fprintf(stderr, "%s\n", nb_last_error());
    nb_graph_free(g);
    return 1;
}

int main(void) {
    nb_graph *g = nb_graph_new();
    nb_node *x = nb_input(g, "x", 2, (int[]){1, D});
    nb_node *ystar = nb_input(g, "y*", 2, (int[]){1, 1});
    nb_node *alpha = nb_param(g, "alpha", 2, (int[]){H, D});
    nb_node *beta = nb_param(g, "beta", 2, (int[]){1, H});
    nb_node *h = nb_sigmoid(g, nb_linear(g, x, alpha, NULL));
    nb_node *y = nb_sigmoid(g, nb_linear(g, h, beta, NULL));
    nb_node *loss[2] = {nb_squared_error(g, y, ystar, NB_REDUCE_SUM), nb_bce(g, y, ystar)};
    const char *loss_name[2] = {"squared", "cross-entropy"};

    const float x0[D] = {0.5f, -1.0f, 2.0f}, ys = 1.0f;
    const float alpha0[H * D] = {0.2f, -0.3f, 0.1f, 0.4f, 0.1f, -0.2f,
                                 -0.5f, 0.3f, 0.2f, 0.1f, 0.1f, 0.1f};
    const float beta0[H] = {0.7f, -0.4f, 0.3f, 0.5f};
    if (!loss[0] || !loss[1] || nb_feed(x, x0, 1) || nb_feed(ystar, &ys, 1)) return fail(g);
    memcpy(nb_value(alpha)->data, alpha0, sizeof alpha0);
    memcpy(nb_value(beta)->data, beta0, sizeof beta0);

    for (int l = 0; l < 2; l++) {
        if (nb_forward(g, loss[l]) || nb_backward(g, loss[l])) return fail(g);
        const float *hv = nb_value(h)->data, *dbeta = nb_grad(beta)->data, *dalpha = nb_grad(alpha)->data;
        float yv = nb_value(y)->data[0];
        float dJdy = l == 0 ? yv - ys : (yv - ys) / (yv * (1 - yv));
        float gb = dJdy * yv * (1 - yv);
        printf("%s loss, y* = %.0f: y = %.6f, J = %.6f\n", loss_name[l], ys, yv, nb_value(loss[l])->data[0]);
        printf("  j  %10s %10s  %30s  %30s\n", "dJ/dbeta_j", "by hand", "dJ/dalpha_jk, k = 0..2", "by hand");
        for (int j = 0; j < H; j++) {
            printf("  %d  %10.6f %10.6f  ", j, dbeta[j], gb * hv[j]);
            for (int k = 0; k < D; k++) printf(" %9.6f", dalpha[j * D + k]);
            printf("  ");
            for (int k = 0; k < D; k++) printf(" %9.6f", gb * beta0[j] * hv[j] * (1 - hv[j]) * x0[k]);
            printf("\n");
        }
    }
    nb_graph_free(g);
    return 0;
}
