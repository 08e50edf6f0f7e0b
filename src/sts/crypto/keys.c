/* Key derivation primitives of the compiled line engine (lines.c): SHA-256 and HMAC-SHA-256
 * for DKGA04, single DES for DKGA02.  Written from FIPS 180-4, 198-1 and 46-3; the constants
 * and tables below are the standards' own.  They are here, rather than calls into libcrypto,
 * because the engine derives one key per line in ~0.2 us with the HMAC pads and the DES key
 * schedule kept per vending key, and because the build then needs no OpenSSL headers.
 * The Python side (hashlib, `cryptography`) stays the reference: tests/engine/test_native.py
 * holds SHA-256, HMAC-SHA-256 and DES equal to it on random inputs (both SHA-256 forms), and
 * tests/engine/test_line_engine.py every derived key.
 *
 * Compiled as one unit after native.c (_native.c includes them in order).
 */

/* --- SHA-256 (FIPS 180-4 §6.2) ----------------------------------------------------------- */

static const uint32_t SHA256_K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};
static const uint32_t SHA256_H0[8] = {
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
};

static inline uint32_t ror32(uint32_t x, unsigned n) { return (x >> n) | (x << (32 - n)); }

static void sha256_block(uint32_t h[8], const uint8_t *p) {
    uint32_t w[64], a, b, c, d, e, f, g, hh;
    for (unsigned t = 0; t < 16; t++)
        w[t] = ((uint32_t)p[4 * t] << 24) | ((uint32_t)p[4 * t + 1] << 16)
             | ((uint32_t)p[4 * t + 2] << 8) | p[4 * t + 3];
    for (unsigned t = 16; t < 64; t++) {
        uint32_t s0 = ror32(w[t - 15], 7) ^ ror32(w[t - 15], 18) ^ (w[t - 15] >> 3);
        uint32_t s1 = ror32(w[t - 2], 17) ^ ror32(w[t - 2], 19) ^ (w[t - 2] >> 10);
        w[t] = w[t - 16] + s0 + w[t - 7] + s1;
    }
    a = h[0]; b = h[1]; c = h[2]; d = h[3]; e = h[4]; f = h[5]; g = h[6]; hh = h[7];
    for (unsigned t = 0; t < 64; t++) {
        uint32_t t1 = hh + (ror32(e, 6) ^ ror32(e, 11) ^ ror32(e, 25)) + ((e & f) ^ (~e & g))
                    + SHA256_K[t] + w[t];
        uint32_t t2 = (ror32(a, 2) ^ ror32(a, 13) ^ ror32(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        hh = g; g = f; f = e; e = d + t1; d = c; c = b; b = a; a = t1 + t2;
    }
    h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += hh;
}

/* The same compression with the x86 SHA extensions, when the processor has them (checked at
 * run time, and against the portable form above on a test block before first use). */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#include <immintrin.h>

__attribute__((target("sha,sse4.1,ssse3")))
static void sha256_block_x86(uint32_t h[8], const uint8_t *p) {
    const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bLL, 0x0405060700010203LL);
    __m128i t = _mm_loadu_si128((const __m128i *)h);           /* A B C D (lane 0 = A) */
    __m128i s1 = _mm_loadu_si128((const __m128i *)(h + 4));    /* E F G H */
    t = _mm_shuffle_epi32(t, 0xB1);                            /* B A D C */
    s1 = _mm_shuffle_epi32(s1, 0x1B);                          /* H G F E */
    __m128i s0 = _mm_alignr_epi8(t, s1, 8);                    /* F E B A: "ABEF" */
    s1 = _mm_blend_epi16(s1, t, 0xF0);                         /* H G D C: "CDGH" */
    const __m128i abef = s0, cdgh = s1;
    __m128i w[4];
    for (unsigned g = 0; g < 16; g++) { /* four rounds per group */
        __m128i m;
        if (g < 4) {
            m = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 16 * g)), bswap);
        } else { /* W[t..t+3] from the sixteen before */
            __m128i x = _mm_sha256msg1_epu32(w[g % 4], w[(g + 1) % 4]);
            x = _mm_add_epi32(x, _mm_alignr_epi8(w[(g + 3) % 4], w[(g + 2) % 4], 4));
            m = _mm_sha256msg2_epu32(x, w[(g + 3) % 4]);
        }
        w[g % 4] = m;
        __m128i k = _mm_add_epi32(m, _mm_loadu_si128((const __m128i *)(SHA256_K + 4 * g)));
        s1 = _mm_sha256rnds2_epu32(s1, s0, k);
        s0 = _mm_sha256rnds2_epu32(s0, s1, _mm_shuffle_epi32(k, 0x0E));
    }
    s0 = _mm_add_epi32(s0, abef);
    s1 = _mm_add_epi32(s1, cdgh);
    t = _mm_shuffle_epi32(s0, 0x1B);                           /* A B E F */
    s1 = _mm_shuffle_epi32(s1, 0xB1);                          /* G H C D */
    _mm_storeu_si128((__m128i *)h, _mm_blend_epi16(t, s1, 0xF0));            /* A B C D */
    _mm_storeu_si128((__m128i *)(h + 4), _mm_alignr_epi8(s1, t, 8));         /* E F G H */
}

static int sha_x86_checked(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 19)) || !(c & (1u << 9)))
        return 0; /* SSE4.1, SSSE3 */
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || !(b & (1u << 29)))
        return 0; /* SHA */
    uint32_t x[8], y[8];
    uint8_t block[64];
    for (unsigned i = 0; i < 64; i++)
        block[i] = (uint8_t)(i * 37 + 11);
    memcpy(x, SHA256_H0, sizeof x);
    memcpy(y, SHA256_H0, sizeof y);
    sha256_block(x, block);
    sha256_block_x86(y, block);
    return memcmp(x, y, sizeof x) == 0;
}
#define HAVE_SHA_X86 1
#endif

static void (*sha256_compress)(uint32_t h[8], const uint8_t *p) = sha256_block;
static int sha256_portable_only;

static void sha256_choose(void) {
    sha256_compress = sha256_block;
#ifdef HAVE_SHA_X86
    if (!sha256_portable_only && sha_x86_checked())
        sha256_compress = sha256_block_x86;
#endif
}

/* Which compression runs: 1 the processor's SHA extensions, 0 the portable form.  `portable`
 * set forces the portable form (tests hold both equal to hashlib). */
static int sha256_form(int portable) {
    sha256_portable_only = portable;
    sha256_choose();
    return sha256_compress != sha256_block;
}

/* The digest of (the `done` bytes already folded into `state`, a multiple of 64) | msg. */
static void sha256_finish(const uint32_t state[8], uint64_t done, const uint8_t *msg, size_t len,
                          uint8_t out[32]) {
    uint32_t h[8];
    uint8_t block[64];
    uint64_t bits = (done + len) * 8;
    for (unsigned i = 0; i < 8; i++) h[i] = state[i];
    while (len >= 64) {
        sha256_compress(h, msg);
        msg += 64;
        len -= 64;
    }
    memset(block, 0, 64);
    memcpy(block, msg, len);
    block[len] = 0x80;
    if (len >= 56) {
        sha256_compress(h, block);
        memset(block, 0, 64);
    }
    for (unsigned i = 0; i < 8; i++) block[56 + i] = (uint8_t)(bits >> (56 - 8 * i));
    sha256_compress(h, block);
    for (unsigned i = 0; i < 8; i++) {
        out[4 * i] = (uint8_t)(h[i] >> 24);
        out[4 * i + 1] = (uint8_t)(h[i] >> 16);
        out[4 * i + 2] = (uint8_t)(h[i] >> 8);
        out[4 * i + 3] = (uint8_t)h[i];
    }
}

/* HMAC-SHA-256 (FIPS 198-1) of a key of at most 64 bytes (zero-padded, never hashed), its
 * inner and outer pads folded once. */
typedef struct {
    uint32_t inner[8], outer[8];
} hmac_pads;

static void hmac_setup(hmac_pads *pads, const uint8_t *key, size_t len) {
    uint8_t ipad[64], opad[64];
    for (unsigned i = 0; i < 64; i++) {
        uint8_t k = i < len ? key[i] : 0;
        ipad[i] = k ^ 0x36;
        opad[i] = k ^ 0x5c;
    }
    memcpy(pads->inner, SHA256_H0, sizeof SHA256_H0);
    memcpy(pads->outer, SHA256_H0, sizeof SHA256_H0);
    sha256_block(pads->inner, ipad);
    sha256_block(pads->outer, opad);
}

static void hmac_sha256(const hmac_pads *pads, const uint8_t *msg, size_t len, uint8_t out[32]) {
    uint8_t inner[32];
    sha256_finish(pads->inner, 64, msg, len, inner);
    sha256_finish(pads->outer, 64, inner, 32, out);
}

/* --- DES (FIPS 46-3) --------------------------------------------------------------------- */

/* bit positions count from 1 at the most significant bit, as the standard writes them */
static const uint8_t DES_IP[64] = {
    58, 50, 42, 34, 26, 18, 10, 2, 60, 52, 44, 36, 28, 20, 12, 4,
    62, 54, 46, 38, 30, 22, 14, 6, 64, 56, 48, 40, 32, 24, 16, 8,
    57, 49, 41, 33, 25, 17, 9, 1, 59, 51, 43, 35, 27, 19, 11, 3,
    61, 53, 45, 37, 29, 21, 13, 5, 63, 55, 47, 39, 31, 23, 15, 7,
};
static const uint8_t DES_P[32] = {
    16, 7, 20, 21, 29, 12, 28, 17, 1, 15, 23, 26, 5, 18, 31, 10,
    2, 8, 24, 14, 32, 27, 3, 9, 19, 13, 30, 6, 22, 11, 4, 25,
};
static const uint8_t DES_PC1[56] = {
    57, 49, 41, 33, 25, 17, 9, 1, 58, 50, 42, 34, 26, 18,
    10, 2, 59, 51, 43, 35, 27, 19, 11, 3, 60, 52, 44, 36,
    63, 55, 47, 39, 31, 23, 15, 7, 62, 54, 46, 38, 30, 22,
    14, 6, 61, 53, 45, 37, 29, 21, 13, 5, 28, 20, 12, 4,
};
static const uint8_t DES_PC2[48] = {
    14, 17, 11, 24, 1, 5, 3, 28, 15, 6, 21, 10,
    23, 19, 12, 4, 26, 8, 16, 7, 27, 20, 13, 2,
    41, 52, 31, 37, 47, 55, 30, 40, 51, 45, 33, 48,
    44, 49, 39, 56, 34, 53, 46, 42, 50, 36, 29, 32,
};
static const uint8_t DES_SHIFTS[16] = {1, 1, 2, 2, 2, 2, 2, 2, 1, 2, 2, 2, 2, 2, 2, 1};
static const uint8_t DES_S[8][64] = {
    {14, 4, 13, 1, 2, 15, 11, 8, 3, 10, 6, 12, 5, 9, 0, 7,
     0, 15, 7, 4, 14, 2, 13, 1, 10, 6, 12, 11, 9, 5, 3, 8,
     4, 1, 14, 8, 13, 6, 2, 11, 15, 12, 9, 7, 3, 10, 5, 0,
     15, 12, 8, 2, 4, 9, 1, 7, 5, 11, 3, 14, 10, 0, 6, 13},
    {15, 1, 8, 14, 6, 11, 3, 4, 9, 7, 2, 13, 12, 0, 5, 10,
     3, 13, 4, 7, 15, 2, 8, 14, 12, 0, 1, 10, 6, 9, 11, 5,
     0, 14, 7, 11, 10, 4, 13, 1, 5, 8, 12, 6, 9, 3, 2, 15,
     13, 8, 10, 1, 3, 15, 4, 2, 11, 6, 7, 12, 0, 5, 14, 9},
    {10, 0, 9, 14, 6, 3, 15, 5, 1, 13, 12, 7, 11, 4, 2, 8,
     13, 7, 0, 9, 3, 4, 6, 10, 2, 8, 5, 14, 12, 11, 15, 1,
     13, 6, 4, 9, 8, 15, 3, 0, 11, 1, 2, 12, 5, 10, 14, 7,
     1, 10, 13, 0, 6, 9, 8, 7, 4, 15, 14, 3, 11, 5, 2, 12},
    {7, 13, 14, 3, 0, 6, 9, 10, 1, 2, 8, 5, 11, 12, 4, 15,
     13, 8, 11, 5, 6, 15, 0, 3, 4, 7, 2, 12, 1, 10, 14, 9,
     10, 6, 9, 0, 12, 11, 7, 13, 15, 1, 3, 14, 5, 2, 8, 4,
     3, 15, 0, 6, 10, 1, 13, 8, 9, 4, 5, 11, 12, 7, 2, 14},
    {2, 12, 4, 1, 7, 10, 11, 6, 8, 5, 3, 15, 13, 0, 14, 9,
     14, 11, 2, 12, 4, 7, 13, 1, 5, 0, 15, 10, 3, 9, 8, 6,
     4, 2, 1, 11, 10, 13, 7, 8, 15, 9, 12, 5, 6, 3, 0, 14,
     11, 8, 12, 7, 1, 14, 2, 13, 6, 15, 0, 9, 10, 4, 5, 3},
    {12, 1, 10, 15, 9, 2, 6, 8, 0, 13, 3, 4, 14, 7, 5, 11,
     10, 15, 4, 2, 7, 12, 9, 5, 6, 1, 13, 14, 0, 11, 3, 8,
     9, 14, 15, 5, 2, 8, 12, 3, 7, 0, 4, 10, 1, 13, 11, 6,
     4, 3, 2, 12, 9, 5, 15, 10, 11, 14, 1, 7, 6, 0, 8, 13},
    {4, 11, 2, 14, 15, 0, 8, 13, 3, 12, 9, 7, 5, 10, 6, 1,
     13, 0, 11, 7, 4, 9, 1, 10, 14, 3, 5, 12, 2, 15, 8, 6,
     1, 4, 11, 13, 12, 3, 7, 14, 10, 15, 6, 8, 0, 5, 9, 2,
     6, 11, 13, 8, 1, 4, 10, 7, 9, 5, 0, 15, 14, 2, 3, 12},
    {13, 2, 8, 4, 6, 15, 11, 1, 10, 9, 3, 14, 5, 0, 12, 7,
     1, 15, 13, 8, 10, 3, 7, 4, 12, 5, 6, 11, 0, 14, 9, 2,
     7, 11, 4, 1, 9, 12, 14, 2, 0, 6, 10, 13, 15, 3, 5, 8,
     2, 1, 14, 7, 4, 10, 8, 13, 15, 12, 9, 0, 3, 5, 6, 11},
};

/* out bit i (from the top of n bits) = in bit table[i] (from the top of `width` bits) */
static uint64_t des_permute(uint64_t in, unsigned width, const uint8_t *table, unsigned n) {
    uint64_t out = 0;
    for (unsigned i = 0; i < n; i++)
        out = (out << 1) | ((in >> (width - table[i])) & 1);
    return out;
}

/* S-box i then P, for each 6-bit input: f(R, K) = OR of des_sp[i][E_i(R) ^ K_i] */
static uint32_t des_sp[8][64];
static int des_ready;

static void des_init(void) {
    for (unsigned i = 0; i < 8; i++)
        for (unsigned v = 0; v < 64; v++) {
            unsigned row = ((v >> 4) & 2) | (v & 1), col = (v >> 1) & 15;
            uint32_t s = (uint32_t)DES_S[i][row * 16 + col] << (28 - 4 * i);
            des_sp[i][v] = (uint32_t)des_permute(s, 32, DES_P, 32);
        }
    des_ready = 1;
}

typedef struct {
    uint64_t sub[16]; /* 48-bit round keys */
} des_key;

static void des_setup(des_key *ks, uint64_t key) {
    uint64_t cd = des_permute(key, 64, DES_PC1, 56);
    uint32_t c = (uint32_t)(cd >> 28) & 0xFFFFFFF, d = (uint32_t)cd & 0xFFFFFFF;
    if (!des_ready)
        des_init();
    for (unsigned r = 0; r < 16; r++) {
        unsigned s = DES_SHIFTS[r];
        c = ((c << s) | (c >> (28 - s))) & 0xFFFFFFF;
        d = ((d << s) | (d >> (28 - s))) & 0xFFFFFFF;
        ks->sub[r] = des_permute(((uint64_t)c << 28) | d, 56, DES_PC2, 48);
    }
}

static inline uint32_t rol32(uint32_t x, unsigned n) { return n ? (x << n) | (x >> (32 - n)) : x; }

static uint64_t des_encrypt(const des_key *ks, uint64_t block) {
    uint64_t x = des_permute(block, 64, DES_IP, 64);
    uint32_t l = (uint32_t)(x >> 32), r = (uint32_t)x;
    for (unsigned round = 0; round < 16; round++) {
        uint64_t k = ks->sub[round];
        uint32_t f = 0;
        /* E: chunk i is the six bits of R from (1-based, cyclic) position 4i */
        for (unsigned i = 0; i < 8; i++) {
            uint32_t chunk = (i ? rol32(r, 4 * i - 1) : ror32(r, 1)) >> 26;
            f |= des_sp[i][chunk ^ ((k >> (42 - 6 * i)) & 63)];
        }
        uint32_t t = l ^ f;
        l = r;
        r = t;
    }
    /* the last round does not swap: output R16 L16 through IP^-1 */
    uint64_t pre = ((uint64_t)r << 32) | l, out = 0;
    for (unsigned i = 0; i < 64; i++) /* IP^-1: bit IP[i] of the output is bit i+1 of pre */
        out |= ((pre >> (63 - i)) & 1) << (64 - DES_IP[i]);
    return out;
}
