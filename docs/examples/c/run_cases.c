/* run_cases.c - run the kernel of attention.c on every case of a `kqv export`, and write the outputs `kqv judge` reads.
 *
 *   cc -O2 -std=c99 -o run_cases run_cases.c attention.c npy.c -lm
 *   kqv export cases --profile quick --dtypes float64,float32 --masked-rows zeros --no-mask-batch
 *   ./run_cases cases results
 *   kqv judge cases results
 *
 * It reads cases/cases.tsv, one call a line (tab-separated): id, dtype, the files of query, key, value
 * and attn_mask ('-': none), is_causal (0 or 1), scale ('-': 1/sqrt(E)) and the further options
 * ('-': none; this kernel takes none, so it skips such a case and the judge reports it missing).
 * query is (..., L, E), key (..., S, E), value (..., S, Ev) with the same batch dims; the mask is
 * (L, S), shared by the batch, or has the batch dims too; a bool mask keeps the keys marked 1, a float
 * one is added to the scores. The output (..., L, Ev) goes to results/<id>.npy in the case's dtype.
 * The kernel computes in double whatever the dtype; yours computes as it does, and the judge allows
 * each dtype the error its rounding explains.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attention.h"
#include "npy.h"

enum { ID, DTYPE, QUERY, KEY, VALUE, MASK, IS_CAUSAL, SCALE, FURTHER, COLUMNS };

/* The elements of a float32 or float64 array as doubles (a new buffer). */
static double *as_double(const npy_array *array) {
    double *copy = malloc(sizeof(double) * array->size);
    for (long n = 0; n < array->size; n++)
        copy[n] = strcmp(array->descr, "<f4") == 0 ? ((const float *)array->data)[n] : ((const double *)array->data)[n];
    return copy;
}

static int read_input(const char *directory, const char *file, npy_array *array) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", directory, file);
    return npy_read(path, array);
}

/* Run one case (the fields of its line); 0 when its output is written. */
static int run_case(const char *directory, const char *results, char **field) {
    const char *id = field[ID];
    if (strcmp(field[FURTHER], "-") != 0 || (strcmp(field[DTYPE], "float32") && strcmp(field[DTYPE], "float64"))) {
        fprintf(stderr, "%s: %s with options %s: not supported here, skipped\n", id, field[DTYPE], field[FURTHER]);
        return -1;
    }
    npy_array q = {0}, k = {0}, v = {0}, mask = {0};
    int has_mask = strcmp(field[MASK], "-") != 0;
    if (read_input(directory, field[QUERY], &q) || read_input(directory, field[KEY], &k)
        || read_input(directory, field[VALUE], &v) || (has_mask && read_input(directory, field[MASK], &mask)))
        return -1;
    long L = q.shape[q.ndim - 2], E = q.shape[q.ndim - 1], S = k.shape[k.ndim - 2], Ev = v.shape[v.ndim - 1];
    long B = q.size / (L * E);  /* the batch entries, all batch dims together (every size is at least 1) */
    if (k.size != B * S * E || v.size != B * S * Ev || (has_mask && mask.size != L * S && mask.size != B * L * S)) {
        fprintf(stderr, "%s: the batch dims of key, value or attn_mask differ from the query's: not supported\n", id);
        return -1;
    }
    long mask_step = has_mask && mask.size == B * L * S ? L * S : 0;  /* 0: one (L, S) mask for every entry */
    double *query = as_double(&q), *key = as_double(&k), *value = as_double(&v);
    double *bias = has_mask && strcmp(mask.descr, "|b1") != 0 ? as_double(&mask) : NULL;
    const unsigned char *keep = has_mask && !bias ? mask.data : NULL;
    double scale = strcmp(field[SCALE], "-") != 0 ? strtod(field[SCALE], NULL) : 1.0 / sqrt((double)E);
    double *out = malloc(sizeof(double) * B * L * Ev), *scores = malloc(sizeof(double) * S);
    for (long b = 0; b < B; b++)
        attention(query + b * L * E, key + b * S * E, value + b * S * Ev, keep ? keep + b * mask_step : NULL,
                  bias ? bias + b * mask_step : NULL, atoi(field[IS_CAUSAL]), scale, L, S, E, Ev, out + b * L * Ev,
                  scores);
    long shape[NPY_MAX_DIMS];
    memcpy(shape, q.shape, sizeof shape);
    shape[q.ndim - 1] = Ev;  /* (..., L, Ev) */
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.npy", results, id);
    int status;
    if (strcmp(q.descr, "<f4") == 0) {  /* the output in the query's dtype */
        float *single = malloc(sizeof(float) * B * L * Ev);
        for (long n = 0; n < B * L * Ev; n++) single[n] = (float)out[n];
        status = npy_write(path, "<f4", q.ndim, shape, single);
        free(single);
    } else {
        status = npy_write(path, "<f8", q.ndim, shape, out);
    }
    free(query), free(key), free(value), free(bias), free(out), free(scores);
    npy_free(&q), npy_free(&k), npy_free(&v);
    if (has_mask) npy_free(&mask);
    return status;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s DIR RESULTS (DIR written by kqv export; RESULTS an existing folder)\n", argv[0]);
        return 2;
    }
    char path[4096], line[8192];
    snprintf(path, sizeof path, "%s/cases.tsv", argv[1]);
    FILE *index = fopen(path, "r");
    if (!index) {
        fprintf(stderr, "%s: cannot open (is %s a folder kqv export wrote?)\n", path, argv[1]);
        return 2;
    }
    int written = 0, skipped = 0;
    while (fgets(line, sizeof line, index)) {
        if (line[0] == '#' || line[0] == '\n') continue;
        line[strcspn(line, "\r\n")] = '\0';
        char *field[COLUMNS];
        int count = 0;
        for (char *cell = strtok(line, "\t"); cell && count < COLUMNS; cell = strtok(NULL, "\t")) field[count++] = cell;
        if (count != COLUMNS) {
            fprintf(stderr, "%s: a line with %d columns, not %d\n", path, count, COLUMNS);
            return 2;
        }
        if (run_case(argv[1], argv[2], field) == 0) written++; else skipped++;
    }
    fclose(index);
    printf("run_cases: %d outputs written to %s, %d cases skipped\n", written, argv[2], skipped);
    return 0;
}
