/* metrics_log.c — the --log file. Both formats hold the same fields:
 *
 *   kind,step,epoch,lr,train_loss,test_loss,test_accuracy,test_top5,images_per_s,wall_s
 *   step,100,0.1067,0.0199,1.2034,,,,5120,2.41
 *   epoch,938,1,0.0195,0.6132,0.4511,0.8342,0.9921,5088,14.2
 *
 * or one JSON object a line with those keys (null where CSV leaves a field
 * empty). test_top5 is empty with 5 classes or fewer. A CSV file is read
 * by its header's column names, so logs of older versions (without
 * test_top5) still plot. A step record's train loss is the mean over the
 * steps since the previous step record of its epoch, and its epoch is
 * fractional (the share of the epoch done); an epoch record's are the
 * epoch's mean and number. Each record is flushed as it is written, so a
 * killed run loses none. */
#include "metrics_log.h"
#include "cli.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char csv_header[] =
    "kind,step,epoch,lr,train_loss,test_loss,test_accuracy,test_top5,images_per_s,wall_s\n";

/* The number fields after kind and step, in the order this version writes
 * them. */
#define RECORD_FIELDS 8
static const char *const field_names[RECORD_FIELDS] = {
    "epoch", "lr", "train_loss", "test_loss", "test_accuracy", "test_top5", "images_per_s", "wall_s"};

static double *record_field(metrics_record *r, int k) {
    double *fields[RECORD_FIELDS] = {&r->epoch, &r->lr, &r->train_loss, &r->test_loss,
                                     &r->test_accuracy, &r->test_top5, &r->images_per_s, &r->wall_s};
    return fields[k];
}

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n > k && !strcmp(s + n - k, suffix);
}

bool metrics_log_check_path(const char *path) {
    if (ends_with(path, ".csv") || ends_with(path, ".jsonl")) return true;
    cli_error("--log %s: the format follows the extension: give a .csv or .jsonl file", path);
    return false;
}

/* ---- reading --------------------------------------------------------------- */

static double json_number(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static bool parse_json_record(const char *line, metrics_record *r) {
    cJSON *o = cJSON_Parse(line);
    const cJSON *kind = cJSON_GetObjectItemCaseSensitive(o, "kind");
    bool ok = cJSON_IsString(kind) && (!strcmp(kind->valuestring, "step") ||
                                       !strcmp(kind->valuestring, "epoch"));
    if (ok) {
        r->epoch_record = !strcmp(kind->valuestring, "epoch");
        double step = json_number(o, "step");
        ok = isfinite(step);
        r->step = ok ? (long)step : 0;
        for (int k = 0; k < RECORD_FIELDS; k++) *record_field(r, k) = json_number(o, field_names[k]);
    }
    cJSON_Delete(o);
    return ok;
}

/* One CSV field: a number, or NaN when empty. */
static double csv_number(const char **p) {
    const char *s = *p;
    char *end;
    double v = NAN;
    if (*s != ',' && *s != '\n' && *s) {
        errno = 0;
        v = strtod(s, &end);
        if (end == s || errno) v = NAN;
        s = end;
    }
    while (*s && *s != ',' && *s != '\n') s++;
    if (*s == ',') s++;
    *p = s;
    return v;
}

/* Which record field each CSV column after kind and step holds (-1: one
 * this version does not know), from the header's names. */
#define MAX_COLUMNS 32
typedef struct csv_columns {
    int n;
    int field[MAX_COLUMNS];
} csv_columns;

static void default_columns(csv_columns *c) {
    c->n = RECORD_FIELDS;
    for (int k = 0; k < RECORD_FIELDS; k++) c->field[k] = k;
}

/* A header line ("kind,step,..."): its columns into *c; false if line is
 * not one. */
static bool parse_csv_header(const char *line, csv_columns *c) {
    if (strncmp(line, "kind,step,", 10)) return false;
    c->n = 0;
    for (const char *p = line + 10; *p && *p != '\n' && c->n < MAX_COLUMNS;) {
        size_t len = strcspn(p, ",\r\n");
        int field = -1;
        for (int k = 0; k < RECORD_FIELDS; k++)
            if (strlen(field_names[k]) == len && !strncmp(p, field_names[k], len)) field = k;
        c->field[c->n++] = field;
        p += len;
        if (*p == ',') p++;
        else break;
    }
    return true;
}

static bool parse_csv_record(const char *line, const csv_columns *c, metrics_record *r) {
    if (!strncmp(line, "step,", 5)) r->epoch_record = false, line += 5;
    else if (!strncmp(line, "epoch,", 6)) r->epoch_record = true, line += 6;
    else return false;
    double step = csv_number(&line);
    if (!isfinite(step)) return false;
    r->step = (long)step;
    for (int k = 0; k < RECORD_FIELDS; k++) *record_field(r, k) = NAN;
    for (int i = 0; i < c->n; i++) {
        double v = csv_number(&line);
        if (c->field[i] >= 0) *record_field(r, c->field[i]) = v;
    }
    return true;
}

/* Every record and where it starts; lines that are not records (the CSV
 * header, blank lines) are skipped. *current (may be NULL) says whether a
 * CSV file's header is this version's, so records appended to it line up. */
static bool read_records(const char *path, FILE *f, metrics_record **out, long **offsets,
                         size_t *count, bool *current) {
    bool jsonl = ends_with(path, ".jsonl");
    csv_columns columns;
    default_columns(&columns);
    if (current) *current = true;
    size_t n = 0, cap = 0;
    metrics_record *recs = NULL;
    long *offs = NULL;
    char *line = NULL;
    size_t line_cap = 0;
    long at = ftell(f);
    for (ssize_t len; (len = getline(&line, &line_cap, f)) > 0; at += len) {
        metrics_record r;
        if (!jsonl && parse_csv_header(line, &columns)) {
            if (current) *current = !strcmp(line, csv_header);
            continue;
        }
        if (!(jsonl ? parse_json_record(line, &r) : parse_csv_record(line, &columns, &r))) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 256;
            metrics_record *nr = realloc(recs, cap * sizeof *recs);
            long *no = offsets ? realloc(offs, cap * sizeof *offs) : NULL;
            if (nr) recs = nr;
            if (no) offs = no;
            if (!nr || (offsets && !no)) {
                cli_error("%s: out of memory reading the log", path);
                free(recs), free(offs), free(line);
                return false;
            }
        }
        recs[n] = r;
        if (offsets) offs[n] = at;
        n++;
    }
    free(line);
    *out = recs;
    if (offsets) *offsets = offs;
    *count = n;
    return true;
}

bool metrics_log_read(const char *path, metrics_record **records, size_t *count) {
    if (!metrics_log_check_path(path)) return false;
    FILE *f = fopen(path, "r");
    if (!f) {
        cli_error("%s: %s", path, strerror(errno));
        return false;
    }
    bool ok = read_records(path, f, records, NULL, count, NULL);
    fclose(f);
    return ok;
}

/* ---- writing --------------------------------------------------------------- */

bool metrics_log_open(metrics_log *log, const char *path, long every, bool resuming) {
    memset(log, 0, sizeof *log);
    log->path = path;
    log->jsonl = ends_with(path, ".jsonl");
    log->every = every;
    log->t0 = now_seconds();
    log->f = resuming ? fopen(path, "r+") : NULL;
    if (log->f) {
        bool current;
        if (!read_records(path, log->f, &log->old, &log->old_offsets, &log->old_count, &current)) {
            fclose(log->f);
            return false;
        }
        if (!current) {
            cli_error("--log %s: its columns are an older version's (no test_top5): give the "
                      "resumed run a new log file", path);
            metrics_log_close(log);
            return false;
        }
    } else {
        log->f = fopen(path, "w+"); /* a resumed run without a log starts one */
        log->settled = !resuming;
    }
    if (!log->f) {
        cli_error("--log %s: %s", path, strerror(errno));
        return false;
    }
    return true;
}

static void write_failed(metrics_log *log) {
    if (!log->failed) cli_error("--log %s: write failed: %s", log->path, strerror(errno));
    log->failed = true;
}

/* Records go in step order, and at one step the step record comes before
 * the epoch record. The first record a resumed run writes is the first
 * thing it redoes: cut the file where the old run reached that point, and
 * carry its wall clock on. */
static void settle(metrics_log *log, const metrics_record *first) {
    log->settled = true;
    size_t keep = 0;
    while (keep < log->old_count) {
        const metrics_record *e = &log->old[keep];
        if (e->step > first->step || (e->step == first->step && e->epoch_record >= first->epoch_record))
            break;
        keep++;
    }
    if (keep && isfinite(log->old[keep - 1].wall_s)) log->wall_offset = log->old[keep - 1].wall_s;
    if (keep < log->old_count) {
        fflush(log->f);
        if (ftruncate(fileno(log->f), log->old_offsets[keep]) != 0) write_failed(log);
    }
    fseek(log->f, 0, SEEK_END);
    free(log->old), free(log->old_offsets);
    log->old = NULL, log->old_offsets = NULL, log->old_count = 0;
}

static void put_number(metrics_log *log, const char *key, double v) {
    if (log->jsonl) {
        fprintf(log->f, ",\"%s\":", key);
        if (isfinite(v)) fprintf(log->f, "%.6g", v);
        else fputs("null", log->f);
    } else {
        fputc(',', log->f);
        if (isfinite(v)) fprintf(log->f, "%.6g", v);
    }
}

static void write_record(metrics_log *log, const metrics_record *r) {
    if (!log->f || log->failed) return;
    if (!log->settled) settle(log, r);
    if (!log->jsonl && ftell(log->f) == 0) fputs(csv_header, log->f);
    const char *kind = r->epoch_record ? "epoch" : "step";
    if (log->jsonl) fprintf(log->f, "{\"kind\":\"%s\",\"step\":%ld", kind, r->step);
    else fprintf(log->f, "%s,%ld", kind, r->step);
    metrics_record fields = *r;
    for (int k = 0; k < RECORD_FIELDS; k++) put_number(log, field_names[k], *record_field(&fields, k));
    fputs(log->jsonl ? "}\n" : "\n", log->f);
    if (fflush(log->f) != 0 || ferror(log->f)) write_failed(log);
}

void metrics_log_progress(metrics_log *log, const nb_progress *p) {
    if (p->phase != NB_PHASE_TRAIN || log->every <= 0 || p->step % log->every) return;
    if (p->epoch != log->last_epoch) {
        log->last_epoch = p->epoch;
        log->last_loss_sum = 0.0;
        log->last_samples = 0;
    }
    double loss_sum = isnan(p->loss) ? 0.0 : p->loss * (double)p->samples;
    size_t n = p->samples - log->last_samples;
    metrics_record r = {false, p->step, (p->epoch - 1) + (double)p->done / (double)p->total,
                        p->lr, n ? (loss_sum - log->last_loss_sum) / (double)n : NAN, NAN, NAN,
                        NAN, p->images_per_s, log->wall_offset + now_seconds() - log->t0};
    log->last_loss_sum = loss_sum;
    log->last_samples = p->samples;
    write_record(log, &r);
}

void metrics_log_epoch(metrics_log *log, const nb_epoch_report *e) {
    metrics_record r = {true, e->step, e->epoch, e->lr, e->train_loss, e->test_loss,
                        e->test_accuracy, e->test_top5, e->images_per_s, 0.0};
    r.wall_s = log->wall_offset + now_seconds() - log->t0;
    write_record(log, &r);
}

bool metrics_log_close(metrics_log *log) {
    if (log->f && fclose(log->f) != 0) write_failed(log);
    log->f = NULL;
    free(log->old), free(log->old_offsets);
    log->old = NULL, log->old_offsets = NULL;
    return !log->failed;
}
