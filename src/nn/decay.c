/* decay.c — which parameters take weight decay: modern recipes leave out
 * batch norm's affine parameters and every bias, whose scale the loss does
 * not penalise through the weights' norm. */
#include "nn/nn.h"

nb_status nb_model_no_decay_norm_bias(const nb_model *m, nb_optimizer *opt, int *count) {
    nb_status s = nb_model_check_ready(m, "nb_model_no_decay_norm_bias");
    if (s) return s;
    int excluded = 0;
    for (int i = 0; i < m->n_layers; i++) {
        const nb_layer *L = &m->layers[i];
        nb_node *params[2] = {L->running_mean ? L->weight : NULL, L->bias};
        for (int k = 0; k < 2; k++) {
            nb_node *p = params[k];
            if (!p) continue;
            size_t n = nb_tensor_numel(&p->value);
            if ((s = nb_optimizer_no_decay(opt, p->param_offset, p->param_offset + n)))
                return nb_fail_prefix(s, "model '%s': %s: ", m->name, p->name);
            excluded++;
        }
    }
    if (count) *count = excluded;
    return NB_OK;
}
