/* metrics_log.h — `nabla train --log FILE`: training metrics as CSV or JSON
 * lines, one record every --log-every steps and one per epoch. */
#ifndef NABLA_METRICS_LOG_H
#define NABLA_METRICS_LOG_H

#include "nabla.h"

#include <stdbool.h>
#include <stdio.h>

typedef struct metrics_log {
    FILE *f;
    const char *path;
    bool jsonl;         /* else CSV */
    long every;         /* a "step" record every this many steps; 0: epochs only */
    bool settled;       /* the file's old records are reconciled with this run */
    double t0;          /* monotonic seconds when the log was opened */
    double wall_offset; /* wall_s of the last record kept from a resumed run */
    long last_step;     /* the last "step" record: its step, epoch and loss sum */
    int last_epoch;
    double last_loss_sum;
    size_t last_samples;
    bool failed;        /* a write failed (reported once) */
    struct metrics_record *old; /* a resumed run's records found in the file */
    long *old_offsets;  /* where each starts */
    size_t old_count;
} metrics_log;

/* The format follows the extension: .csv or .jsonl (false after a usage
 * message for any other). */
bool metrics_log_check_path(const char *path);
/* Open for a new run (the file is replaced) or, with resuming, for a run that
 * continues the one logged there: records the interrupted run wrote after
 * the checkpoint it resumes from are dropped as the run redoes them, so no
 * record appears twice. false after a message. */
bool metrics_log_open(metrics_log *log, const char *path, long every, bool resuming);
/* An nb_progress_fn's work and an nb_epoch_fn's. */
void metrics_log_progress(metrics_log *log, const nb_progress *p);
void metrics_log_epoch(metrics_log *log, const nb_epoch_report *r);
/* false if any write failed (the message was printed). */
bool metrics_log_close(metrics_log *log);

/* The records of a log file, for `nabla plot`. */
typedef struct metrics_record {
    bool epoch_record; /* else a step record */
    long step;
    double epoch, lr, train_loss, test_loss, test_accuracy, test_top5, images_per_s, wall_s; /* NaN: none */
} metrics_record;

/* Read every record of a .csv or .jsonl log written by --log into a new
 * array (free() it) and its length into *count; false after a message. */
bool metrics_log_read(const char *path, metrics_record **records, size_t *count);

#endif
