/* eval_pictures.h — `nabla eval --confusion FILE.png --errors FILE.png`:
 * the confusion matrix as a labelled heat map, and a grid of misclassified
 * images with their true and predicted classes. */
#ifndef NABLA_EVAL_PICTURES_H
#define NABLA_EVAL_PICTURES_H

#include "nabla.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct eval_pictures {
    const char *confusion; /* PNG paths, or NULL */
    const char *errors;
} eval_pictures;

/* A .png path, or false after a usage message naming the option. */
bool eval_picture_path(const char *option, const char *path);
/* Draw what was asked for, from the evaluation's confusion counts (classes x
 * classes, row = true class) and, for --errors, the data set run through
 * the model again. Classes are labelled by cli_class_name (the weights'
 * names, else those nb_dataset_open found in info), else by number. title
 * names the model and data. false after a message. */
bool eval_pictures_draw(const eval_pictures *p, nb_model *m, const nb_dataset *d,
                        const nb_dataset_info *info, const size_t *confusion, const char *title);

#endif
