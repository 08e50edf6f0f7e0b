/* Texts of the line engine (lines.c): the request's `issued_at` and `units` read the way
 * sts.engine.fast reads them, and the output line's numbers, ids and token digits written the
 * way the generic path writes them.  Compiled after lines_json.c (it reads its jval).
 */

#define TID_MAX_ ((1u << 24) - 1)
#define TRANSFER_MAX_ 18201624u

/* --- dates: days since 0000-03-01 style civil arithmetic (proleptic Gregorian) ----------- */

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d) {
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static int digits_at(const uint8_t *s, int n, unsigned *out) {
    unsigned v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 1;
}

/* The TID of a naive `YYYY-MM-DDTHH:MM[:SS]` text (as sts.engine.fast._minutes), or -1. */
static int64_t issued_minutes(const jval *v, int base_date) {
    static const unsigned DAYS[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    const uint8_t *s = v->s;
    unsigned y, mo, d, h, mi, sec = 0;
    if (v->type != V_STR || (v->n != 16 && v->n != 19))
        return -1;
    if (!digits_at(s, 4, &y) || s[4] != '-' || !digits_at(s + 5, 2, &mo) || s[7] != '-'
        || !digits_at(s + 8, 2, &d) || (s[10] != 'T' && s[10] != ' ')
        || !digits_at(s + 11, 2, &h) || s[13] != ':' || !digits_at(s + 14, 2, &mi))
        return -1;
    if (v->n == 19 && (s[16] != ':' || !digits_at(s + 17, 2, &sec)))
        return -1;
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (y < 1 || mo < 1 || mo > 12 || d < 1 || d > DAYS[mo - 1] + (mo == 2 && leap) || h > 23
        || mi > 59 || sec > 59)
        return -1;
    int64_t minutes = (days_from_civil(y, mo, d) - days_from_civil(base_date, 1, 1)) * 1440
                      + h * 60 + mi;
    if (minutes < 0)
        return -1;
    if (minutes % 1440 == 1) /* 00:01 is reserved: 00:02 */
        minutes++;
    return minutes <= TID_MAX_ ? minutes : -1;
}

/* Tenths, rounded up, of a plain `123.45` text within the TransferAmount range, or -1. */
static int64_t units_tenths(const jval *v) {
    if (v->type != V_STR || v->n == 0 || v->n > 40)
        return -1;
    const uint8_t *s = v->s, *end = v->s + v->n;
    int64_t whole = 0;
    const uint8_t *p = s;
    while (p < end && *p >= '0' && *p <= '9') {
        whole = whole * 10 + (*p - '0');
        if (whole > 100000000)
            return -1;
        p++;
    }
    if (p == s)
        return -1;
    int64_t tenths = whole * 10;
    if (p < end) {
        if (*p != '.' || p + 1 == end)
            return -1;
        p++;
        int first = 1, extra = 0;
        for (; p < end; p++) {
            if (*p < '0' || *p > '9')
                return -1;
            if (first)
                tenths += *p - '0';
            else if (*p != '0')
                extra = 1;
            first = 0;
        }
        tenths += extra;
    }
    return tenths <= TRANSFER_MAX_ ? tenths : -1;
}

static const int64_t POW10_[4] = {1, 10, 100, 1000};
static const int64_t OFFSET_[4] = {0, 16384, 180224, 1818624};

static unsigned transfer_field(int64_t tenths) {
    for (unsigned e = 0; e < 4; e++) {
        int64_t diff = tenths - OFFSET_[e];
        int64_t m = diff >= 0 ? (diff + POW10_[e] - 1) / POW10_[e] : -((-diff) / POW10_[e]);
        if (m < 16384)
            return (e << 14) | (unsigned)(m > 0 ? m : 0);
    }
    return 0xFFFF; /* unreachable: tenths checked against TRANSFER_MAX */
}

/* --- output text ------------------------------------------------------------------------- */

static char *put(char *o, const char *s, size_t n) {
    memcpy(o, s, n);
    return o + n;
}
#define PUT(o, lit) put((o), (lit), sizeof(lit) - 1)

static char *put_u64(char *o, uint64_t v) {
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *o++ = tmp[--n];
    return o;
}

/* The id as it was written (an integer keeps its text: `-0` stays `-0`). */
static char *put_id(char *o, const jval *id) {
    if (id->type == V_STR) {
        *o++ = '"';
        o = put(o, (const char *)id->s, id->n);
        *o++ = '"';
    } else if (id->type == V_INT) {
        o = put(o, (const char *)id->s, id->n);
    } else {
        o = PUT(o, "null");
    }
    return o;
}

static char *put_hex16(char *o, uint64_t v) {
    static const char HEX[] = "0123456789abcdef";
    for (int i = 15; i >= 0; i--)
        *o++ = HEX[(v >> (4 * i)) & 15];
    return o;
}

static char *put_fixed(char *o, uint64_t v, int width) {
    for (int i = width - 1; i >= 0; i--) {
        o[i] = (char)('0' + v % 10);
        v /= 10;
    }
    return o + width;
}

/* The 20 digits of the 66-bit token number high:low (high < 4). */
static char *put_token(char *o, unsigned high, uint64_t low) {
    /* divide by 10^9 twice over 32-bit limbs: N = (a * 10^9 + r1) * 10^9 + r0 */
    uint64_t limbs[3] = {high, low >> 32, low & 0xFFFFFFFF}, q[3], r = 0;
    for (int i = 0; i < 3; i++) {
        uint64_t cur = (r << 32) | limbs[i];
        q[i] = cur / 1000000000u;
        r = cur % 1000000000u;
    }
    uint64_t r0 = r, rest = (q[0] << 32 << 32) | (q[1] << 32) | q[2];
    uint64_t r1 = rest % 1000000000u, a = rest / 1000000000u;
    o = put_fixed(o, a, 2);
    o = put_fixed(o, r1, 9);
    return put_fixed(o, r0, 9);
}
