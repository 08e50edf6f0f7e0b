/* The strict reader of the line engine (lines.c): the plain subset of JSON it answers.
 *
 * Objects of known keys (each at most once), strings of printable ASCII without escapes,
 * integers of at most 18 digits and null; anything else makes the line go back to Python.
 * Compiled as one unit with native.c, keys.c, lines_text.c and lines.c (_native.c).
 */

/* --- a strict reader for the plain subset of JSON -------------------------------------- */

enum { V_ABSENT = 0, V_STR, V_INT, V_NULL };

typedef struct {
    int type;
    const uint8_t *s; /* a string's content (no quotes), an integer's text as written */
    size_t n;
    int64_t i;
} jval;

typedef struct {
    const uint8_t *p, *end;
} reader;

static inline void ws(reader *r) {
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r'))
        r->p++;
}

/* Bytes that may stand in a string taken as is: printable ASCII but the quote and backslash. */
static uint8_t plain_byte[256];

static void plain_init(void) {
    for (unsigned c = 0x20; c <= 0x7E; c++)
        plain_byte[c] = c != '"' && c != '\\';
}

/* A string of printable ASCII without escapes (the only kind taken), after its quote. */
static int read_string(reader *r, const uint8_t **s, size_t *n) {
    if (r->p >= r->end || *r->p != '"')
        return 0;
    const uint8_t *start = ++r->p, *p = start, *end = r->end;
    while (p < end && plain_byte[*p])
        p++;
    if (p >= end || *p != '"')
        return 0;
    *s = start;
    *n = (size_t)(p - start);
    r->p = p + 1;
    return 1;
}

/* A string, an integer of at most 18 digits (no fraction or exponent) or null. */
static int read_scalar(reader *r, jval *v) {
    if (r->p >= r->end)
        return 0;
    uint8_t c = *r->p;
    if (c == '"') {
        v->type = V_STR;
        return read_string(r, &v->s, &v->n);
    }
    if (c == 'n') {
        if (r->end - r->p < 4 || memcmp(r->p, "null", 4) != 0)
            return 0;
        r->p += 4;
        v->type = V_NULL;
        return 1;
    }
    int neg = 0;
    const uint8_t *text = r->p;
    if (c == '-') {
        neg = 1;
        r->p++;
    }
    const uint8_t *digits = r->p;
    int64_t value = 0;
    while (r->p < r->end && *r->p >= '0' && *r->p <= '9') {
        if (r->p - digits >= 40)
            return 0;
        value = value * 10 + (*r->p - '0');
        r->p++;
    }
    size_t nd = (size_t)(r->p - digits);
    if (nd == 0 || (nd > 1 && digits[0] == '0'))
        return 0;
    if (r->p < r->end && (*r->p == '.' || *r->p == 'e' || *r->p == 'E'))
        return 0;
    v->type = V_INT;
    v->i = neg ? -value : value;
    v->s = text;
    v->n = (size_t)(r->p - text);
    return 1;
}

/* A key's index in names (names[k] has sizes[k] characters), or -1. */
static int key_index(const uint8_t *s, size_t n, const char *const *names, const uint8_t *sizes,
                     int count) {
    for (int k = 0; k < count; k++)
        if (sizes[k] == n && memcmp(names[k], s, n) == 0)
            return k;
    return -1;
}

/* An object of scalars with keys from `names` (each at most once) into vals. */
static int read_object(reader *r, const char *const *names, const uint8_t *sizes, int count,
                       jval *vals) {
    unsigned seen = 0;
    if (r->p >= r->end || *r->p != '{')
        return 0;
    r->p++;
    ws(r);
    if (r->p < r->end && *r->p == '}') {
        r->p++;
        return 1;
    }
    for (;;) {
        const uint8_t *s;
        size_t n;
        if (!read_string(r, &s, &n))
            return 0;
        int k = key_index(s, n, names, sizes, count);
        if (k < 0 || (seen >> k) & 1)
            return 0;
        seen |= 1u << k;
        ws(r);
        if (r->p >= r->end || *r->p != ':')
            return 0;
        r->p++;
        ws(r);
        if (!read_scalar(r, &vals[k]))
            return 0;
        ws(r);
        if (r->p >= r->end)
            return 0;
        if (*r->p == '}') {
            r->p++;
            return 1;
        }
        if (*r->p != ',')
            return 0;
        r->p++;
        ws(r);
    }
}
