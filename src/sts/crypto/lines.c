/* The compiled line engine of `sts generate` / `sts decode` (driven by sts.engine.stream).
 *
 * It takes a block of raw JSON Lines and answers every line that is plainly one of the common
 * shapes the Python fast path (sts.engine.fast) accepts: a class 0 credit request (generate)
 * or a class 0 credit token (decode) for an EA07 or EA11 meter given by its DKGA02/04
 * identity or by a bare decoder key.  For such a line it writes the exact output text the
 * generic path writes.  Every other line is handed back, untouched and in order, for Python
 * to answer: string escapes, non-ASCII text, unknown or repeated keys, floats, null, booleans,
 * numbers of 19+ digits, other token types, and every line that fails anything.  Handing back
 * is always correct; answering is allowed only when the answer is certain.
 *
 * No table is embedded: the STA table sets (their lookup tables built by native.c from S1, S2
 * and P) and the MISTY1 S-boxes are passed in from the data files by the caller.
 *
 * Compiled as one unit after native.c, keys.c, lines_json.c (the strict reader) and
 * lines_text.c (request texts and output text); _native.c includes them all and gives Python
 * the entry points (the LineEngine type).
 */

#define LINE_MAX_SETS 16
#define LINE_NAME_MAX 64

typedef struct {
    char name[LINE_NAME_MAX];
    size_t len;
    const sta_tables *tables; /* NULL: this name has no usable table set */
} sta_set;

typedef struct {
    uint16_t s7[128], s9[512];
    misty1_tables *misty; /* built on the first EA11 line */
    sta_set sets[LINE_MAX_SETS];
    int nsets;
    char texts[4][256]; /* decode: ,"kind":...,"description":... per subclass */
    char need[LINE_NAME_MAX]; /* the table set name the last run stopped for */
    size_t need_len;
    size_t text_len[4];
    uint16_t crc[256];
    /* one-entry caches of the last vending keys' prepared forms */
    int have_hmac;
    size_t hmac_len;
    uint8_t hmac_key[64];
    hmac_pads pads;
    int have_des;
    uint64_t des_vk;
    des_key des;
} line_engine;

/* A zeroed engine made ready: S7 and S9 are the MISTY1 S-boxes (128 and 512 entries). */
static void lines_init(line_engine *e, const uint16_t *s7, const uint16_t *s9) {
    for (unsigned i = 0; i < 128; i++)
        e->s7[i] = s7[i];
    for (unsigned i = 0; i < 512; i++)
        e->s9[i] = s9[i];
    for (unsigned b = 0; b < 256; b++) { /* CRC-16/MODBUS, reflected polynomial 0xA001 */
        unsigned reg = b;
        for (unsigned k = 0; k < 8; k++)
            reg = (reg & 1) ? (reg >> 1) ^ 0xA001 : reg >> 1;
        e->crc[b] = (uint16_t)reg;
    }
}

/* Frees what the engine allocated (the table sets belong to the caller). */
static void lines_release(line_engine *e) {
    free(e->misty);
    e->misty = NULL;
}

/* The `"kind"` and `"description"` members written for a decoded credit subclass; -1 when they
 * do not fit. */
static int lines_text(line_engine *e, int subclass, const char *text, size_t len) {
    if (subclass < 0 || subclass > 3 || len >= sizeof e->texts[0])
        return -1;
    memcpy(e->texts[subclass], text, len);
    e->text_len[subclass] = len;
    return 0;
}

/* Register a table set by name (tables NULL: the name has no usable table set); the tables
 * must outlive the engine.  -1 when there is no room or the name is too long. */
static int lines_table_set(line_engine *e, const char *name, size_t len,
                           const sta_tables *tables) {
    if (e->nsets >= LINE_MAX_SETS || len >= LINE_NAME_MAX)
        return -1;
    sta_set *t = &e->sets[e->nsets];
    memset(t, 0, sizeof *t);
    memcpy(t->name, name, len);
    t->len = len;
    t->tables = tables;
    e->nsets++;
    return 0;
}

static int misty_tables(line_engine *e) {
    if (e->misty)
        return 1;
    e->misty = malloc(sizeof *e->misty);
    if (!e->misty)
        return 0;
    misty1_tables_build(e->misty, e->s7, e->s9);
    return 1;
}

/* --- meters ------------------------------------------------------------------------------ */

enum { M_PAN, M_DKGA, M_EA, M_VK, M_KT, M_SGC, M_TI, M_KRN, M_KEN, M_BD, M_TS, M_DK, M_COUNT };
static const char *const METER_KEYS[M_COUNT] = {"pan", "dkga", "ea", "vending_key", "kt", "sgc",
                                                "ti", "krn", "ken", "base_date", "table_set",
                                                "decoder_key"};
static const uint8_t METER_SIZES[M_COUNT] = {3, 4, 2, 11, 2, 3, 2, 3, 3, 9, 9, 11};

typedef struct {
    int ea, ken, base_date; /* base_date 0: none */
    const sta_tables *tables;
    uint8_t key[16];
} meter;

enum { TAKE = 1, HAND_BACK = 0, NEED_TABLES = -1 };

static inline int int_in(const jval *v, int64_t lo, int64_t hi) {
    return v->type == V_INT && v->i >= lo && v->i <= hi;
}

static int hex_value(uint8_t c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Plain hex (no spaces) of min..max bytes into out; returns the byte count or 0. */
static size_t read_hex(const jval *v, uint8_t *out, size_t min, size_t max) {
    if (v->type != V_STR || v->n % 2 || v->n / 2 < min || v->n / 2 > max)
        return 0;
    for (size_t i = 0; i < v->n / 2; i++) {
        int hi = hex_value(v->s[2 * i]), lo = hex_value(v->s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return 0;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return v->n / 2;
}

/* Luhn: is d[check] the check digit of d[first..check-1]? */
static int luhn_ok(const uint8_t *d, int first, int check) {
    unsigned total = 0;
    for (int i = check - 1, k = 0; i >= first; i--, k++) {
        unsigned x = d[i];
        if (k % 2 == 0) {
            x *= 2;
            if (x > 9)
                x -= 9;
        }
        total += x;
    }
    return (10 - total % 10) % 10 == d[check];
}

/* The MeterPAN rules of sts.codec.pan.parse_pan, for an 18-character string. */
static int pan_valid(const uint8_t *pan, uint8_t d[18]) {
    for (int i = 0; i < 18; i++) {
        if (pan[i] < '0' || pan[i] > '9')
            return 0;
        d[i] = pan[i] - '0';
    }
    if (!luhn_ok(d, 0, 17))
        return 0;
    if (memcmp(pan, "600727", 6) == 0)
        return luhn_ok(d, 6, 16);
    if (memcmp(pan, "0000", 4) == 0)
        return luhn_ok(d, 4, 16);
    return 0;
}

static const sta_set *find_set(const line_engine *e, const uint8_t *name, size_t len) {
    for (int i = 0; i < e->nsets; i++)
        if (e->sets[i].len == len && memcmp(e->sets[i].name, name, len) == 0)
            return &e->sets[i];
    return NULL;
}

static size_t lv(uint8_t *out, const char *text, size_t n) {
    out[0] = (uint8_t)n;
    memcpy(out + 1, text, n);
    return n + 1;
}

static inline void two_digits(char *out, unsigned v) {
    out[0] = (char)('0' + v / 10 % 10);
    out[1] = (char)('0' + v % 10);
}

/* The decoder key of a plain meter object (as sts.engine.fast._shape and the generic path
 * derive it); *need gets the table set name when it is not registered yet. */
static int read_meter(line_engine *e, const jval *m, meter *out, const jval **need) {
    if (!int_in(&m[M_EA], 7, 11) || (m[M_EA].i != 7 && m[M_EA].i != 11))
        return HAND_BACK;
    out->ea = (int)m[M_EA].i;
    out->tables = NULL;
    if (out->ea == 7) {
        static const jval production = {V_STR, (const uint8_t *)"production", 10, 0};
        const jval *ts = m[M_TS].type == V_ABSENT ? &production : &m[M_TS];
        if (ts->type != V_STR)
            return HAND_BACK;
        const sta_set *set = find_set(e, ts->s, ts->n);
        if (!set) {
            if (e->nsets >= LINE_MAX_SETS || ts->n >= LINE_NAME_MAX)
                return HAND_BACK;
            *need = ts;
            return NEED_TABLES;
        }
        if (!set->tables)
            return HAND_BACK;
        out->tables = set->tables;
    } else if (!misty_tables(e)) {
        return HAND_BACK;
    }
    out->ken = 255;
    if (m[M_KEN].type != V_ABSENT) {
        if (!int_in(&m[M_KEN], 0, 255))
            return HAND_BACK;
        out->ken = (int)m[M_KEN].i;
    }
    out->base_date = 0;
    if (m[M_BD].type != V_ABSENT) {
        int64_t bd = m[M_BD].i;
        if (m[M_BD].type != V_INT || (bd != 1993 && bd != 2014 && bd != 2035))
            return HAND_BACK;
        out->base_date = (int)bd;
    }
    size_t key_bytes = out->ea == 11 ? 16 : 8;
    if (m[M_VK].type == V_ABSENT) { /* a bare decoder key */
        for (int k = M_PAN; k <= M_KRN; k++)
            if (k != M_EA && m[k].type != V_ABSENT)
                return HAND_BACK;
        if (m[M_DK].type == V_ABSENT || !read_hex(&m[M_DK], out->key, key_bytes, key_bytes))
            return HAND_BACK;
        return TAKE;
    }
    if (!int_in(&m[M_DKGA], 2, 4) || m[M_DKGA].i == 3 || !int_in(&m[M_KT], 0, 2)
        || m[M_KT].i == 1 || !int_in(&m[M_TI], 0, 99) || !int_in(&m[M_KRN], 1, 9))
        return HAND_BACK;
    const jval *sgc = &m[M_SGC], *pan = &m[M_PAN];
    if (sgc->type != V_STR || sgc->n != 6)
        return HAND_BACK;
    for (int i = 0; i < 6; i++)
        if (sgc->s[i] < '0' || sgc->s[i] > '9')
            return HAND_BACK;
    int dkga = (int)m[M_DKGA].i, kt = (int)m[M_KT].i, ti = (int)m[M_TI].i, krn = (int)m[M_KRN].i;
    if ((dkga == 2 && out->ea != 7) || (dkga == 4 && out->base_date == 0))
        return HAND_BACK;
    uint8_t vk[64], stated[16], digits[18];
    size_t vk_len = read_hex(&m[M_VK], vk, dkga == 2 ? 8 : 16, dkga == 2 ? 8 : 64);
    if (!vk_len)
        return HAND_BACK;
    if (m[M_DK].type != V_ABSENT && !read_hex(&m[M_DK], stated, key_bytes, key_bytes))
        return HAND_BACK;
    if (pan->type != V_STR || pan->n != 18 || !pan_valid(pan->s, digits))
        return HAND_BACK;
    if (dkga == 2) {
        /* DK = DES(VK, X) ^ X ^ VK, X = PANBlock ^ CONTROLBlock (digits read as nibbles) */
        uint64_t pan_block = 0, control = (uint64_t)kt;
        for (int i = 1; i < 17; i++)
            pan_block = (pan_block << 4) | digits[i];
        for (int i = 0; i < 6; i++)
            control = (control << 4) | (uint64_t)(sgc->s[i] - '0');
        control = (control << 4) | (uint64_t)(ti / 10);
        control = (control << 4) | (uint64_t)(ti % 10);
        control = (control << 4) | (uint64_t)krn;
        control = (control << 24) | 0xFFFFFF;
        uint64_t x = pan_block ^ control, vk64 = 0;
        for (int i = 0; i < 8; i++)
            vk64 = (vk64 << 8) | vk[i];
        if (!e->have_des || e->des_vk != vk64) {
            des_setup(&e->des, vk64);
            e->des_vk = vk64;
            e->have_des = 1;
        }
        uint64_t dk = des_encrypt(&e->des, x) ^ x ^ vk64;
        for (int i = 0; i < 8; i++)
            out->key[i] = (uint8_t)(dk >> (56 - 8 * i));
    } else {
        /* KDF-HMAC-SHA-256: Label | 00 | Context | L, fields length-prefixed ASCII */
        uint8_t msg[64];
        char t[2];
        size_t n = 0;
        msg[n++] = 0x04;
        n += lv(msg + n, "04", 2);
        two_digits(t, (unsigned)(out->base_date % 100));
        n += lv(msg + n, t, 2);
        two_digits(t, (unsigned)out->ea);
        n += lv(msg + n, t, 2);
        two_digits(t, (unsigned)ti);
        n += lv(msg + n, t, 2);
        msg[n++] = 0x00;
        msg[n++] = 0x04;
        n += lv(msg + n, (const char *)sgc->s, 6);
        t[0] = (char)('0' + kt);
        n += lv(msg + n, t, 1);
        t[0] = (char)('0' + krn);
        n += lv(msg + n, t, 1);
        n += lv(msg + n, (const char *)pan->s, 18);
        uint32_t bits = out->ea == 11 ? 128 : 64;
        msg[n++] = (uint8_t)(bits >> 24);
        msg[n++] = (uint8_t)(bits >> 16);
        msg[n++] = (uint8_t)(bits >> 8);
        msg[n++] = (uint8_t)bits;
        if (!e->have_hmac || e->hmac_len != vk_len || memcmp(e->hmac_key, vk, vk_len) != 0) {
            hmac_setup(&e->pads, vk, vk_len);
            memcpy(e->hmac_key, vk, vk_len);
            e->hmac_len = vk_len;
            e->have_hmac = 1;
        }
        uint8_t mac[32];
        hmac_sha256(&e->pads, msg, n, mac);
        memcpy(out->key, mac, key_bytes);
    }
    if (m[M_DK].type != V_ABSENT && memcmp(stated, out->key, key_bytes) != 0)
        return HAND_BACK; /* the generic path says which identity field to check */
    return TAKE;
}

static uint64_t key64(const uint8_t *k) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | k[i];
    return v;
}

static uint64_t run_cipher(const line_engine *e, const meter *m, uint64_t block, int decrypt) {
    if (m->ea == 11)
        return misty1_crypt(e->misty, m->key, block, decrypt);
    return decrypt ? sta_decrypt(m->tables, key64(m->key), block)
                   : sta_encrypt(m->tables, key64(m->key), block);
}

static uint16_t crc_field(const line_engine *e, uint64_t value56) {
    unsigned reg = 0xFFFF;
    for (int shift = 48; shift >= 0; shift -= 8)
        reg = (reg >> 8) ^ e->crc[(reg ^ (unsigned)(value56 >> shift)) & 0xFF];
    return (uint16_t)(((reg & 0xFF) << 8) | (reg >> 8));
}

/* --- lines ------------------------------------------------------------------------------- */

enum { T_ID, T_METER, T_REQUEST, T_TOKEN, T_COUNT };
static const char *const TOP_KEYS[T_COUNT] = {"id", "meter", "request", "token"};
static const uint8_t TOP_SIZES[T_COUNT] = {2, 5, 7, 5};
enum { R_CLASS, R_SUBCLASS, R_ISSUED, R_TID, R_RND, R_UNITS, R_COUNT };
static const char *const REQUEST_KEYS[R_COUNT] = {"class", "subclass", "issued_at", "tid", "rnd",
                                                  "units"};
static const uint8_t REQUEST_SIZES[R_COUNT] = {5, 8, 9, 3, 3, 5};

typedef struct {
    jval id, token;
    jval meter[M_COUNT], request[R_COUNT];
    int has_meter, has_request;
} line_fields;

/* The top object: id (scalar), meter and request (objects of scalars), token (string). */
static int read_line(const uint8_t *p, const uint8_t *end, line_fields *f) {
    reader r = {p, end};
    unsigned seen = 0;
    memset(f, 0, sizeof *f);
    ws(&r);
    if (r.p >= r.end || *r.p != '{')
        return 0;
    r.p++;
    ws(&r);
    if (r.p < r.end && *r.p == '}') {
        r.p++;
    } else {
        for (;;) {
            const uint8_t *s;
            size_t n;
            if (!read_string(&r, &s, &n))
                return 0;
            int k = key_index(s, n, TOP_KEYS, TOP_SIZES, T_COUNT);
            if (k < 0 || (seen >> k) & 1)
                return 0;
            seen |= 1u << k;
            ws(&r);
            if (r.p >= r.end || *r.p != ':')
                return 0;
            r.p++;
            ws(&r);
            int ok;
            switch (k) {
            case T_ID: ok = read_scalar(&r, &f->id); break;
            case T_TOKEN: ok = read_scalar(&r, &f->token); break;
            case T_METER:
                ok = f->has_meter = read_object(&r, METER_KEYS, METER_SIZES, M_COUNT, f->meter);
                break;
            default:
                ok = f->has_request = read_object(&r, REQUEST_KEYS, REQUEST_SIZES, R_COUNT,
                                                  f->request);
                break;
            }
            if (!ok)
                return 0;
            ws(&r);
            if (r.p >= r.end)
                return 0;
            if (*r.p == '}') {
                r.p++;
                break;
            }
            if (*r.p != ',')
                return 0;
            r.p++;
            ws(&r);
        }
    }
    ws(&r);
    return r.p == r.end;
}

/* Generate: the output line into o (TAKE), HAND_BACK, or NEED_TABLES. */
static int generate_line(line_engine *e, const line_fields *f, const uint8_t *rnd_byte,
                         int *used_rnd, char **o_io, const jval **need) {
    meter m;
    const jval *q = f->request;
    if (!f->has_meter || !f->has_request || f->token.type != V_ABSENT)
        return HAND_BACK;
    int got = read_meter(e, f->meter, &m, need);
    if (got != TAKE)
        return got;
    if (!int_in(&q[R_CLASS], 0, 0) || !int_in(&q[R_SUBCLASS], 0, 3))
        return HAND_BACK;
    int64_t tid;
    if (q[R_ISSUED].type != V_ABSENT) {
        if (q[R_TID].type != V_ABSENT || m.base_date == 0)
            return HAND_BACK;
        tid = issued_minutes(&q[R_ISSUED], m.base_date);
        if (tid < 0)
            return HAND_BACK;
    } else {
        if (!int_in(&q[R_TID], 0, TID_MAX_))
            return HAND_BACK;
        tid = q[R_TID].i;
    }
    if ((tid >> 16) > m.ken)
        return HAND_BACK;
    uint64_t rnd;
    if (q[R_RND].type != V_ABSENT) {
        if (!int_in(&q[R_RND], 0, 15))
            return HAND_BACK;
        rnd = (uint64_t)q[R_RND].i;
    } else {
        if (!rnd_byte)
            return HAND_BACK;
        rnd = *rnd_byte & 15;
        *used_rnd = 1;
    }
    int64_t tenths = units_tenths(&q[R_UNITS]);
    if (tenths < 0)
        return HAND_BACK;
    uint64_t sub = (uint64_t)q[R_SUBCLASS].i;
    uint64_t block = (sub << 60) | (rnd << 56) | ((uint64_t)tid << 32)
                     | ((uint64_t)transfer_field(tenths) << 16);
    block |= crc_field(e, block >> 16);
    uint64_t enc = run_cipher(e, &m, block, 0);
    /* class 0: bits 28..27 move to 65..64 and become 00 */
    unsigned high = (unsigned)(enc >> 27) & 3;
    uint64_t low = enc & ~((uint64_t)3 << 27);
    char *o = *o_io;
    o = PUT(o, "{\"id\":");
    o = put_id(o, &f->id);
    o = PUT(o, ",\"tokens\":[\"");
    o = put_token(o, high, low);
    o = PUT(o, "\"],\"blocks\":[\"");
    o = put_hex16(o, block);
    o = PUT(o, "\"],\"tid\":");
    o = put_u64(o, (uint64_t)tid);
    o = PUT(o, "}\n");
    *o_io = o;
    return TAKE;
}

static int decode_line(line_engine *e, const line_fields *f, char **o_io, const jval **need) {
    meter m;
    const jval *t = &f->token;
    if (!f->has_meter || f->has_request || t->type != V_STR || t->n != 20)
        return HAND_BACK;
    /* the 20 digits as high:low, high the bits above 64 */
    uint64_t high = 0, low = 0;
    for (int i = 0; i < 20; i++) {
        uint8_t c = t->s[i];
        if (c < '0' || c > '9')
            return HAND_BACK;
        uint64_t l0 = (low & 0xFFFFFFFF) * 10 + (uint64_t)(c - '0');
        uint64_t l1 = (low >> 32) * 10 + (l0 >> 32);
        low = (l1 << 32) | (l0 & 0xFFFFFFFF);
        high = high * 10 + (l1 >> 32);
    }
    if (high > 3 || (low >> 27) & 3) /* beyond 66 bits, or not class 0 */
        return HAND_BACK;
    int got = read_meter(e, f->meter, &m, need);
    if (got != TAKE)
        return got;
    uint64_t cipher_block = (low & ~((uint64_t)3 << 27)) | (high << 27);
    uint64_t plain = run_cipher(e, &m, cipher_block, 1);
    unsigned sub = (unsigned)(plain >> 60);
    uint64_t tid = (plain >> 32) & 0xFFFFFF;
    if (sub > 3 || crc_field(e, plain >> 16) != (plain & 0xFFFF) || (tid >> 16) > (uint64_t)m.ken)
        return HAND_BACK;
    unsigned field = (unsigned)(plain >> 16) & 0xFFFF, ex = field >> 14;
    uint64_t tenths = (uint64_t)(field & 0x3FFF) * (uint64_t)POW10_[ex] + (uint64_t)OFFSET_[ex];
    char *o = *o_io;
    o = PUT(o, "{\"id\":");
    o = put_id(o, &f->id);
    o = PUT(o, ",\"class\":0,\"subclass\":");
    *o++ = (char)('0' + sub);
    o = PUT(o, ",\"block\":\"");
    o = put_hex16(o, plain);
    *o++ = '"';
    o = put(o, e->texts[sub], e->text_len[sub]);
    o = PUT(o, ",\"rnd\":");
    o = put_u64(o, (plain >> 56) & 15);
    o = PUT(o, ",\"tid\":");
    o = put_u64(o, tid);
    o = PUT(o, ",\"units\":\"");
    o = put_u64(o, tenths / 10);
    *o++ = '.';
    *o++ = (char)('0' + tenths % 10);
    *o++ = '"';
    if (m.base_date) {
        int64_t y;
        unsigned mo, d, minute = (unsigned)(tid % 1440);
        civil_from_days(days_from_civil(m.base_date, 1, 1) + (int64_t)(tid / 1440), &y, &mo, &d);
        o = PUT(o, ",\"issued_at\":\"");
        o = put_fixed(o, (uint64_t)y, 4);
        *o++ = '-';
        o = put_fixed(o, mo, 2);
        *o++ = '-';
        o = put_fixed(o, d, 2);
        *o++ = 'T';
        o = put_fixed(o, minute / 60, 2);
        *o++ = ':';
        o = put_fixed(o, minute % 60, 2);
        o = PUT(o, ":00\"");
    }
    o = PUT(o, "}\n");
    *o_io = o;
    return TAKE;
}

static int blank(const uint8_t *p, const uint8_t *end) {
    for (; p < end; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r' && *p != 0x0B && *p != 0x0C)
            return 0;
    return 1;
}

enum { RUN_DONE = 0, RUN_NEED_TABLES = 1, RUN_FULL = 2 };
#define LINE_OUT_SPARE 1024 /* an output line is at most its id plus this */

/* Answer the lines of in[start..len) (each ending in '\n', but for a last line at the end of
 * the input).  Output text goes to out; each handed-back line is recorded in backs as
 * (start, end, line number, output offset).  Stops early when out or backs is full
 * (RUN_FULL) or a line needs a table set not registered yet (RUN_NEED_TABLES: the name is
 * then in e->need).
 * res: [0] input offset reached, [1] output bytes, [2] lines handed back, [3] next line
 * number, [4] status, [7] random bytes used. */
static int lines_run(line_engine *e, int decode, const uint8_t *in, size_t start, size_t len,
                     char *out, size_t cap, int64_t *backs, size_t back_cap, const uint8_t *rnd,
                     size_t rnd_len, int64_t line_no, int64_t *res) {
    size_t pos = start, nback = 0, rnd_used = 0;
    char *o = out;
    int status = RUN_DONE;
    line_fields f;
    res[5] = res[6] = 0; /* unused */
    while (pos < len) {
        const uint8_t *p = in + pos, *nl = memchr(p, '\n', len - pos);
        const uint8_t *end = nl ? nl + 1 : in + len;
        size_t next = (size_t)(end - in);
        if (blank(p, end)) {
            pos = next;
            line_no++;
            continue;
        }
        int got = HAND_BACK;
        const jval *need = NULL;
        if (read_line(p, end, &f)) {
            size_t id_len = f.id.type == V_STR ? f.id.n : 0;
            if ((size_t)(out + cap - o) < id_len + LINE_OUT_SPARE) {
                status = RUN_FULL;
                break;
            }
            int used = 0;
            got = decode ? decode_line(e, &f, &o, &need)
                         : generate_line(e, &f, rnd_used < rnd_len ? rnd + rnd_used : NULL,
                                         &used, &o, &need);
            if (got == TAKE)
                rnd_used += (size_t)used;
        }
        if (got == NEED_TABLES) { /* the name is shorter than LINE_NAME_MAX (read_meter) */
            status = RUN_NEED_TABLES;
            memcpy(e->need, need->s, need->n);
            e->need_len = need->n;
            break;
        }
        if (got == HAND_BACK) {
            if (nback >= back_cap) {
                status = RUN_FULL;
                break;
            }
            int64_t *b = backs + 4 * nback++;
            b[0] = (int64_t)pos;
            b[1] = (int64_t)next;
            b[2] = line_no;
            b[3] = (int64_t)(o - out);
        }
        pos = next;
        line_no++;
    }
    res[0] = (int64_t)pos;
    res[1] = (int64_t)(o - out);
    res[2] = (int64_t)nback;
    res[3] = line_no;
    res[4] = status;
    res[7] = (int64_t)rnd_used;
    return status;
}
