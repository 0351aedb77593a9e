/* npy.h - a small reader and writer of NumPy's .npy files, for the cases of `kqv export`.
 *
 * A .npy file is a 6-byte magic string "\x93NUMPY", a version (major, minor byte), the length of
 * a header (2 bytes little-endian in version 1.0, 4 bytes in 2.0 and 3.0), the header itself, a
 * Python dict literal such as {'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }, then
 * the data: the elements in C order, nothing else. This reader takes little-endian float32 ('<f4'),
 * float64 ('<f8') and bool ('|b1') arrays in C order, on a little-endian machine (x86, ARM), which
 * is all an `sdpa` export in float32 or float64 holds; bfloat16 arrays come as their uint16 bit
 * patterns ('<u2'), which it does not take. Every function returns 0 on success and -1 after
 * printing what went wrong to stderr.
 */
#ifndef KQV_NPY_H
#define KQV_NPY_H

#define NPY_MAX_DIMS 8

typedef struct {
    char descr[4];             /* "<f4", "<f8" or "|b1" */
    int ndim;
    long shape[NPY_MAX_DIMS];
    long size;                 /* the number of elements: the product of the shape */
    void *data;                /* size elements in C order; free with npy_free */
} npy_array;

int npy_read(const char *path, npy_array *array);
int npy_write(const char *path, const char *descr, int ndim, const long *shape, const void *data);
void npy_free(npy_array *array);

#endif
