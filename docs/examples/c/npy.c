/* npy.c - the reader and writer of npy.h. */
#include "npy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(const char *path, const char *what) {
    fprintf(stderr, "%s: %s\n", path, what);
    return -1;
}

static long itemsize(const char *descr) {
    if (strcmp(descr, "<f8") == 0) return 8;
    if (strcmp(descr, "<f4") == 0) return 4;
    if (strcmp(descr, "|b1") == 0) return 1;
    return 0;
}

/* Parse the header dict: the dtype after 'descr', False after 'fortran_order', the tuple after 'shape'. */
static int parse_header(const char *path, const char *header, npy_array *array) {
    const char *descr = strstr(header, "'descr':");
    const char *order = strstr(header, "'fortran_order':");
    const char *shape = strstr(header, "'shape':");
    if (!descr || !order || !shape) return fail(path, "not a .npy header");
    descr = strchr(descr + 8, '\'');
    if (!descr || sscanf(descr, "'%3[^']'", array->descr) != 1 || itemsize(array->descr) == 0)
        return fail(path, "dtype not taken (only '<f4', '<f8' and '|b1')");
    if (strncmp(order + 16 + strspn(order + 16, " "), "False", 5) != 0)
        return fail(path, "Fortran order not taken");
    const char *p = strchr(shape, '(') + 1;
    array->ndim = 0;
    array->size = 1;
    while (*p != ')') {
        char *end;
        long n = strtol(p, &end, 10);
        if (end == p) { p++; continue; }  /* a comma or a space */
        if (array->ndim == NPY_MAX_DIMS) return fail(path, "too many dimensions");
        array->shape[array->ndim++] = n;
        array->size *= n;
        p = end;
    }
    return 0;
}

int npy_read(const char *path, npy_array *array) {
    unsigned char preamble[12];
    FILE *file = fopen(path, "rb");
    if (!file) return fail(path, "cannot open");
    if (fread(preamble, 1, 10, file) != 10 || memcmp(preamble, "\x93NUMPY", 6) != 0) {
        fclose(file);
        return fail(path, "not a .npy file");
    }
    unsigned long length = preamble[8] | (preamble[9] << 8);  /* version 1.0: 2 bytes */
    if (preamble[6] >= 2) {                                    /* versions 2.0 and 3.0: 4 bytes */
        if (fread(preamble + 10, 1, 2, file) != 2) { fclose(file); return fail(path, "truncated header"); }
        length |= ((unsigned long)preamble[10] << 16) | ((unsigned long)preamble[11] << 24);
    }
    char *header = calloc(length + 1, 1);
    int status = fread(header, 1, length, file) == length ? parse_header(path, header, array) : fail(path, "truncated");
    free(header);
    if (status == 0) {
        size_t bytes = (size_t)array->size * itemsize(array->descr);
        array->data = malloc(bytes ? bytes : 1);
        if (fread(array->data, 1, bytes, file) != bytes) {
            npy_free(array);
            status = fail(path, "truncated data");
        }
    }
    fclose(file);
    return status;
}

int npy_write(const char *path, const char *descr, int ndim, const long *shape, const void *data) {
    char header[256], dims[160] = "";
    long size = 1;
    for (int d = 0; d < ndim; d++) {
        size_t used = strlen(dims);
        snprintf(dims + used, sizeof dims - used, "%ld,%s", shape[d], d + 1 < ndim ? " " : "");
        size *= shape[d];
    }
    if (ndim > 1) dims[strlen(dims) - 1] = '\0';  /* (2, 3) but (4,) */
    int length = snprintf(header, sizeof header, "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }",
                          descr, dims);
    while ((10 + length + 1) % 64 != 0) header[length++] = ' ';  /* pad so that the data starts 64-aligned */
    header[length++] = '\n';
    FILE *file = fopen(path, "wb");
    if (!file) return fail(path, "cannot create");
    unsigned char preamble[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, length & 0xff, length >> 8};
    size_t bytes = (size_t)size * itemsize(descr);
    int ok = fwrite(preamble, 1, 10, file) == 10 && fwrite(header, 1, length, file) == (size_t)length
             && fwrite(data, 1, bytes, file) == bytes;
    return fclose(file) == 0 && ok ? 0 : fail(path, "cannot write");
}

void npy_free(npy_array *array) {
    free(array->data);
    array->data = NULL;
}
