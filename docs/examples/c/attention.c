/* attention.c - scaled dot-product attention (clause attention.sdpa), a plain C kernel: the part to replace.
 *
 * For each query row i: the scores x_j = scale * q_i . k_j + bias_ij of the keys it keeps, their max m,
 * the weights p_j = exp(x_j - m) / sum_k exp(x_k - m) (shifted by m, so that exp never overflows), and
 * the output o_i = sum_j p_j v_j. Compiled with -DKQV_EXAMPLE_BUG=1 it has one planted bug: the causal
 * mask lets query i see key i + 1 too (causal off by one), which `kqv judge` names by its clause.
 */
#include "attention.h"

#include <math.h>

#if defined(KQV_EXAMPLE_BUG) && KQV_EXAMPLE_BUG == 1
#define CAUSAL_REACH 1  /* the bug: one key past the diagonal */
#else
#define CAUSAL_REACH 0  /* query i sees keys j <= i */
#endif

void attention(const double *query, const double *key, const double *value, const unsigned char *keep,
               const double *bias, int is_causal, double scale, long L, long S, long E, long Ev, double *out,
               double *scores) {
    for (long i = 0; i < L; i++) {
        double m = -INFINITY;  /* the row max */
        for (long j = 0; j < S; j++) {
            int kept = (!keep || keep[i * S + j]) && (!is_causal || j <= i + CAUSAL_REACH);
            double x = -INFINITY;
            if (kept) {
                double dot = 0.0;
                for (long e = 0; e < E; e++) dot += query[i * E + e] * key[j * E + e];
                x = scale * dot + (bias ? bias[i * S + j] : 0.0);
            }
            scores[j] = x;
            if (x > m) m = x;
        }
        double *o = out + i * Ev;
        for (long c = 0; c < Ev; c++) o[c] = 0.0;
        if (m == -INFINITY) continue;  /* no key kept: a row of zeros */
        double sum = 0.0;
        for (long j = 0; j < S; j++) {
            double p = exp(scores[j] - m);  /* 0 for a masked key */
            sum += p;
            for (long c = 0; c < Ev; c++) o[c] += p * value[j * Ev + c];
        }
        for (long c = 0; c < Ev; c++) o[c] /= sum;
    }
}
