/* The EA07 (STA) and EA11 (MISTY1) ciphers of the optional compiled core (the extension module
 * sts.crypto._native, built when the package is installed; see _native.c).  It is a port of the
 * pure-Python table forms in sta.py and misty1.py, which stay the reference and the fallback;
 * tests/engine/test_native.py holds the two byte-identical on random inputs and on every
 * known-answer vector.
 *
 * No table is embedded here: the lookup tables are built from the data the caller passes (an
 * STA table set's S1, S2 and P; the MISTY1 S-boxes S7 and S9), so another STA table set needs
 * no rebuild.
 *
 * STA tables (as sts.crypto.sta.Sta builds them): enc/dec/sub_inv hold 8 x 4 x 256 entries,
 * index (j * 4 + sel) * 256 + b for state byte j, nibble selectors sel, byte value b; pinv
 * holds 8 x 256 entries, index j * 256 + b.
 * MISTY1 tables: FI(x, k) == fin_out[fi_in[x] ^ k], 65536 entries each.
 *
 * _native.c includes this file, then keys.c (SHA-256, HMAC, DES), lines_json.c, lines_text.c
 * and lines.c (the line engine of `sts generate` / `sts decode`): one compilation unit.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define STA_ROUNDS 16
#define STA_ENTRIES (8 * 4 * 256)

typedef struct {
    uint64_t enc[STA_ENTRIES], dec[STA_ENTRIES], sub_inv[STA_ENTRIES], pinv[8 * 256];
} sta_tables;

static inline uint64_t rotl64(uint64_t v, unsigned r) {
    return r ? (v << r) | (v >> (64 - r)) : v;
}

static uint64_t permute_bits(uint64_t value, const uint8_t *p) {
    uint64_t out = 0;
    for (unsigned i = 0; i < 64; i++)
        if ((value >> i) & 1)
            out |= (uint64_t)1 << p[i];
    return out;
}

/* perm[0..n) into its inverse; 0 when it is not a permutation of 0..n-1 */
static int invert(const uint8_t *perm, unsigned n, uint8_t *inv) {
    uint8_t seen[64] = {0};
    for (unsigned i = 0; i < n; i++) {
        if (perm[i] >= n || seen[perm[i]])
            return 0;
        seen[perm[i]] = 1;
        inv[perm[i]] = (uint8_t)i;
    }
    return 1;
}

/* The lookup tables of a table set (S1, S2: 16 entries; P: 64), folded as sts.crypto.sta.Sta
 * folds them; 0 when one of the three is not a permutation. */
static int sta_tables_build(sta_tables *t, const uint8_t *s1, const uint8_t *s2,
                            const uint8_t *p) {
    uint8_t si[2][16], pi[64];
    const uint8_t *s[2] = {s1, s2};
    if (!invert(s1, 16, si[0]) || !invert(s2, 16, si[1]) || !invert(p, 64, pi))
        return 0;
    for (unsigned j = 0; j < 8; j++)
        for (unsigned b = 0; b < 256; b++) {
            t->pinv[j * 256 + b] = permute_bits((uint64_t)b << (8 * j), pi);
            for (unsigned sel = 0; sel < 4; sel++) {
                uint64_t sub = s[sel & 1][b & 15] | ((uint64_t)s[sel >> 1][b >> 4] << 4);
                uint64_t isub = si[sel & 1][b & 15] | ((uint64_t)si[sel >> 1][b >> 4] << 4);
                unsigned idx = (j * 4 + sel) * 256 + b;
                t->enc[idx] = permute_bits(sub << (8 * j), p);
                t->dec[idx] = permute_bits(isub << (8 * j), pi);
                t->sub_inv[idx] = isub << (8 * j);
            }
        }
    return 1;
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

static uint64_t sta_encrypt(const sta_tables *t, uint64_t key, uint64_t block) {
    uint64_t k = sta_base_key(key), x = block;
    for (unsigned r = 0; r < STA_ROUNDS; r++)
        x = sta_round(t->enc, rotl64(k, r), x);
    return x;
}

static uint64_t sta_decrypt(const sta_tables *t, uint64_t key, uint64_t block) {
    uint64_t k = sta_base_key(key), x = 0;
    for (unsigned j = 0; j < 8; j++)
        x |= t->pinv[(j << 8) | ((block >> (8 * j)) & 0xFF)];
    for (unsigned r = STA_ROUNDS - 1; r > 0; r--)
        x = sta_round(t->dec, rotl64(k, r), x);
    return sta_round(t->sub_inv, k, x);
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

/* FI(x, k) == fout[fin[x] ^ k] (see sts.crypto.misty1): built from S7 and S9 */
typedef struct {
    uint16_t fin[65536], fout[65536];
} misty1_tables;

static void misty1_tables_build(misty1_tables *t, const uint16_t *s7_in, const uint16_t *s9_in) {
    uint16_t s7[128], s9[512];
    for (unsigned i = 0; i < 128; i++)
        s7[i] = s7_in[i] & 0x7F;
    for (unsigned i = 0; i < 512; i++)
        s9[i] = s9_in[i] & 0x1FF;
    for (unsigned x9 = 0; x9 < 512; x9++)
        for (unsigned x7 = 0; x7 < 128; x7++) {
            unsigned d9 = s9[x9] ^ x7;
            t->fin[x9 * 128 + x7] = (uint16_t)((((s7[x7] ^ d9) & 0x7F) << 9) | d9);
        }
    for (unsigned d7 = 0; d7 < 128; d7++)
        for (unsigned y9 = 0; y9 < 512; y9++)
            t->fout[d7 * 512 + y9] = (uint16_t)((d7 << 9) | (s9[y9] ^ d7));
}

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

static void misty1_setup(misty1_ctx *c, const misty1_tables *t, const uint8_t *key) {
    c->fin = t->fin;
    c->fout = t->fout;
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

static uint64_t misty1_crypt(const misty1_tables *t, const uint8_t *key, uint64_t block,
                             int decrypt) {
    misty1_ctx c;
    misty1_setup(&c, t, key);
    return decrypt ? misty1_decrypt_ctx(&c, block) : misty1_encrypt_ctx(&c, block);
}
