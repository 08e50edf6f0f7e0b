/* Optional compiled core of the EA07 (STA) and EA11 (MISTY1) ciphers, loaded by
 * sts.crypto.native through ctypes.  It is a port of the pure-Python table forms in sta.py and
 * misty1.py, which stay the reference and the fallback; tests/engine/test_native.py holds the
 * two byte-identical on random inputs and on every known-answer vector.
 *
 * No table is embedded here: the caller passes the tables it built from the data files
 * (STA table sets, MISTY1 S-boxes), so a different STA table set needs no rebuild.
 *
 * STA tables (as sts.crypto.sta.Sta builds them): enc/dec/sub_inv hold 8 x 4 x 256 entries,
 * index (j * 4 + sel) * 256 + b for state byte j, nibble selectors sel, byte value b; pinv
 * holds 8 x 256 entries, index j * 256 + b.
 * MISTY1 tables: FI(x, k) == fi_out[fi_in[x] ^ k], 65536 entries each.
 *
 * keys.c (SHA-256, HMAC, DES) and lines.c (the line engine of `sts generate` / `sts decode`)
 * follow this file in the same compilation unit: sts.crypto.native joins the three.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define STA_ROUNDS 16

static inline uint64_t rotl64(uint64_t v, unsigned r) {
    return r ? (v << r) | (v >> (64 - r)) : v;
}

/* Round r's key: ROL(ROR(NOT key, 12), r); byte j's selector bits are its bits 8j+3
 * (low nibble) and 8j+7 (high nibble). */
static inline uint64_t sta_round(const uint64_t *t, uint64_t kr, uint64_t x) {
    uint64_t out = 0;
    for (unsigned j = 0; j < 8; j++) {
        unsigned sel = (unsigned)((kr >> (8 * j + 3)) & 1) | (unsigned)(((kr >> (8 * j + 7)) & 1) << 1);
        out |= t[((j * 4 + sel) << 8) | ((x >> (8 * j)) & 0xFF)];
    }
    return out;
}

static inline uint64_t sta_base_key(uint64_t key) {
    uint64_t k = ~key;
    return (k >> 12) | (k << 52);
}

uint64_t sts_sta_encrypt(const uint64_t *enc, uint64_t key, uint64_t block) {
    uint64_t k = sta_base_key(key), x = block;
    for (unsigned r = 0; r < STA_ROUNDS; r++)
        x = sta_round(enc, rotl64(k, r), x);
    return x;
}

uint64_t sts_sta_decrypt(const uint64_t *dec, const uint64_t *sub_inv, const uint64_t *pinv,
                         uint64_t key, uint64_t block) {
    uint64_t k = sta_base_key(key), x = 0;
    for (unsigned j = 0; j < 8; j++)
        x |= pinv[(j << 8) | ((block >> (8 * j)) & 0xFF)];
    for (unsigned r = STA_ROUNDS - 1; r > 0; r--)
        x = sta_round(dec, rotl64(k, r), x);
    return sta_round(sub_inv, k, x);
}

void sts_sta_encrypt_many(const uint64_t *enc, const uint64_t *keys, const uint64_t *blocks,
                          uint64_t *out, size_t n) {
    for (size_t i = 0; i < n; i++)
        out[i] = sts_sta_encrypt(enc, keys[i], blocks[i]);
}

void sts_sta_decrypt_many(const uint64_t *dec, const uint64_t *sub_inv, const uint64_t *pinv,
                          const uint64_t *keys, const uint64_t *blocks, uint64_t *out, size_t n) {
    for (size_t i = 0; i < n; i++)
        out[i] = sts_sta_decrypt(dec, sub_inv, pinv, keys[i], blocks[i]);
}

/* --- MISTY1 (RFC 2994), 16-bit halves, as misty1.encrypt / misty1.decrypt ----------------- */

static const unsigned char FO_WORDS[8][7] = {
    /* per round r: r, (r+5)%8+8, (r+2)%8, (r+1)%8+8, (r+7)%8, (r+3)%8+8, (r+4)%8 */
    {0, 13, 2, 9, 7, 11, 4}, {1, 14, 3, 10, 0, 12, 5}, {2, 15, 4, 11, 1, 13, 6},
    {3, 8, 5, 12, 2, 14, 7}, {4, 9, 6, 13, 3, 15, 0}, {5, 10, 7, 14, 4, 8, 1},
    {6, 11, 0, 15, 5, 9, 2}, {7, 12, 1, 8, 6, 10, 3},
};
static const unsigned char FL_PAIRS[10][2] = {
    /* per layer k: even (k/2, (k/2+6)%8+8), odd ((k/2+2)%8+8, (k/2+4)%8) */
    {0, 14}, {10, 4}, {1, 15}, {11, 5}, {2, 8}, {12, 6}, {3, 9}, {13, 7}, {4, 10}, {14, 0},
};

typedef struct {
    const uint16_t *fin, *fout;
    uint16_t ek[16];
} misty1_ctx;

static inline uint16_t fi(const misty1_ctx *c, uint16_t x, uint16_t k) {
    return c->fout[c->fin[x] ^ k];
}

/* FO of (hi, lo) under round r: returns the new (hi, lo) through the pointers */
static inline void fo(const misty1_ctx *c, unsigned r, uint16_t hi, uint16_t lo,
                      uint16_t *out_hi, uint16_t *out_lo) {
    const unsigned char *w = FO_WORDS[r];
    const uint16_t *ek = c->ek;
    uint16_t t0 = fi(c, hi ^ ek[w[0]], ek[w[1]]) ^ lo;
    uint16_t t1 = fi(c, lo ^ ek[w[2]], ek[w[3]]) ^ t0;
    t0 = fi(c, t0 ^ ek[w[4]], ek[w[5]]) ^ t1;
    *out_hi = t1 ^ ek[w[6]];
    *out_lo = t0;
}

static void misty1_setup(misty1_ctx *c, const uint16_t *fin, const uint16_t *fout,
                         const uint8_t *key) {
    c->fin = fin;
    c->fout = fout;
    for (unsigned i = 0; i < 8; i++)
        c->ek[i] = (uint16_t)((key[2 * i] << 8) | key[2 * i + 1]);
    for (unsigned i = 0; i < 8; i++)
        c->ek[8 + i] = fi(c, c->ek[i], c->ek[(i + 1) & 7]);
}

static uint64_t misty1_encrypt_ctx(const misty1_ctx *c, uint64_t block) {
    const uint16_t *ek = c->ek;
    uint16_t a = (uint16_t)(block >> 48), b = (uint16_t)(block >> 32);
    uint16_t cc = (uint16_t)(block >> 16), d = (uint16_t)block, x, y;
    for (unsigned i = 0; i < 8; i += 2) {
        b ^= a & ek[FL_PAIRS[i][0]];
        a ^= b | ek[FL_PAIRS[i][1]];
        d ^= cc & ek[FL_PAIRS[i + 1][0]];
        cc ^= d | ek[FL_PAIRS[i + 1][1]];
        fo(c, i, a, b, &x, &y);
        cc ^= x;
        d ^= y;
        fo(c, i + 1, cc, d, &x, &y);
        a ^= x;
        b ^= y;
    }
    b ^= a & ek[FL_PAIRS[8][0]];
    a ^= b | ek[FL_PAIRS[8][1]];
    d ^= cc & ek[FL_PAIRS[9][0]];
    cc ^= d | ek[FL_PAIRS[9][1]];
    return ((uint64_t)cc << 48) | ((uint64_t)d << 32) | ((uint64_t)a << 16) | b;
}

static uint64_t misty1_decrypt_ctx(const misty1_ctx *c, uint64_t block) {
    const uint16_t *ek = c->ek;
    uint16_t cc = (uint16_t)(block >> 48), d = (uint16_t)(block >> 32);
    uint16_t a = (uint16_t)(block >> 16), b = (uint16_t)block, x, y;
    a ^= b | ek[FL_PAIRS[8][1]];
    b ^= a & ek[FL_PAIRS[8][0]];
    cc ^= d | ek[FL_PAIRS[9][1]];
    d ^= cc & ek[FL_PAIRS[9][0]];
    for (int i = 6; i >= 0; i -= 2) {
        fo(c, (unsigned)i + 1, cc, d, &x, &y);
        a ^= x;
        b ^= y;
        fo(c, (unsigned)i, a, b, &x, &y);
        cc ^= x;
        d ^= y;
        a ^= b | ek[FL_PAIRS[i][1]];
        b ^= a & ek[FL_PAIRS[i][0]];
        cc ^= d | ek[FL_PAIRS[i + 1][1]];
        d ^= cc & ek[FL_PAIRS[i + 1][0]];
    }
    return ((uint64_t)a << 48) | ((uint64_t)b << 32) | ((uint64_t)cc << 16) | d;
}

uint64_t sts_misty1(const uint16_t *fin, const uint16_t *fout, const uint8_t *key,
                    uint64_t block, int decrypt) {
    misty1_ctx c;
    misty1_setup(&c, fin, fout, key);
    return decrypt ? misty1_decrypt_ctx(&c, block) : misty1_encrypt_ctx(&c, block);
}

void sts_misty1_many(const uint16_t *fin, const uint16_t *fout, const uint8_t *keys,
                     const uint64_t *blocks, uint64_t *out, size_t n, int decrypt) {
    misty1_ctx c;
    for (size_t i = 0; i < n; i++) {
        misty1_setup(&c, fin, fout, keys + 16 * i);
        out[i] = decrypt ? misty1_decrypt_ctx(&c, blocks[i]) : misty1_encrypt_ctx(&c, blocks[i]);
    }
}

/* A fixed number the loader checks, so a stale or foreign library is never used. */
int sts_native_abi(void) { return 2; }
