/* installed.c — the smallest program against an installed nabla: it checks
 * that the header it was compiled with matches the library it runs with,
 * then takes one gradient. Build it either way (see the README's "Install"):
 *
 *     cc -o installed examples/installed.c $(pkg-config --cflags --libs nabla)
 *     cc -o installed examples/installed.c \
 *         $(pkg-config --cflags --libs --static nabla | sed 's/-lnabla/-l:libnabla.a/')
 */
#include <nabla.h>
#include <stdio.h>
#include <string.h>

int main(void) {
    if (strcmp(nb_version(), NB_VERSION)) {
        fprintf(stderr, "compiled against nabla.h %s but running with libnabla %s\n", NB_VERSION,
                nb_version());
        return 1;
    }
    /* d(x^3)/dx at x = 2 is 12. */
    nb_graph *g = nb_graph_new();
    nb_node *x = nb_input(g, "x", 1, (int[]){1});
    nb_node *y = nb_pow(g, x, 3.0f);
    nb_requires_grad(x, 1);
    float x0 = 2.0f;
    if (!y || nb_feed(x, &x0, 1) || nb_forward(g, y) || nb_backward(g, y)) {
        fprintf(stderr, "%s\n", nb_last_error());
        nb_graph_free(g);
        return 1;
    }
    printf("nabla %s: d(x^3)/dx at 2 = %g\n", nb_version(), (double)nb_grad(x)->data[0]);
    nb_graph_free(g);
    return 0;
}
