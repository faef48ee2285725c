/* lecture_composite.c — reverse-mode autodiff on the lecture's composite
 * function
 *
 *     J = cos(sin(x^2) + 3 x^2)
 *
 * The graph is built once and evaluated at several points. The chain rule by
 * hand gives
 *
 *     dJ/dx = -sin(sin(x^2) + 3 x^2) * (2x cos(x^2) + 6x)
 *
 * which is printed next to the gradient that nb_backward computed. */
#include <math.h>
#include <nabla.h>
#include <stdio.h>

int main(void) {
    nb_graph *g = nb_graph_new();
    nb_node *x = nb_input(g, "x", 1, (int[]){1});
    nb_node *x2 = nb_square(g, x); /* used twice: its gradients add up */
    nb_node *J = nb_cos(g, nb_add(g, nb_sin(g, x2), nb_scale(g, x2, 3.0f)));
    nb_requires_grad(x, 1);

    printf("J = cos(sin(x^2) + 3x^2)\n\n%6s %12s %12s %12s\n", "x", "J", "dJ/dx", "by hand");
    const float points[] = {-1.0f, 0.25f, 0.5f, 1.0f, 1.5f};
    for (int i = 0; i < 5; i++) {
        if (!J || nb_feed(x, &points[i], 1) || nb_forward(g, J) || nb_backward(g, J)) {
            fprintf(stderr, "%s\n", nb_last_error());
            nb_graph_free(g);
            return 1;
        }
        double v = points[i], u = sin(v * v) + 3 * v * v;
        double by_hand = -sin(u) * (2 * v * cos(v * v) + 6 * v);
        printf("%6.2f %12.6f %12.6f %12.6f\n", v, nb_value(J)->data[0], nb_grad(x)->data[0], by_hand);
    }
    nb_graph_free(g);
    return 0;
}
