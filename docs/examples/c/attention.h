/* attention.h - scaled dot-product attention of one batch entry: the kernel the driver calls. */
#ifndef KQV_ATTENTION_H
#define KQV_ATTENTION_H

/* out (L, Ev) = softmax(scale * query key^T + bias, masked) value, for
 *   query (L, E), key (S, E), value (S, Ev), all row-major;
 *   keep (L, S): 1 = the key takes part (a bool attn_mask), or NULL;
 *   bias (L, S): added to the scores, -inf allowed (a float attn_mask), or NULL;
 *   is_causal: query i keeps key j only if j <= i (top-left);
 *   scores: S doubles of workspace.
 * A row that keeps no key gives zeros (masked_rows = zeros). */
void attention(const double *query, const double *key, const double *value, const unsigned char *keep,
               const double *bias, int is_causal, double scale, long L, long S, long E, long Ev, double *out,
               double *scores);

#endif
