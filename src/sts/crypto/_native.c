/* sts.crypto._native: the optional compiled core as a CPython extension module.
 *
 * setup.py builds it when the package is installed (`uv sync`, `pip install .`, a wheel); it is
 * optional there, so without a C compiler the package installs without it and the pure-Python
 * forms run with the same results.  Nothing is compiled at run time.
 *
 * This file is the module's whole interface to Python (its method tables; _native.pyi declares
 * the same for type checkers).  Every argument is checked here, sizes of buffers included: the
 * C code behind it trusts its arguments.  The work is in the files included below, compiled as
 * one unit, each using the ones before it:
 *   native.c      EA07 (STA) and EA11 (MISTY1): tables built from the caller's data, rounds
 *   keys.c        SHA-256, HMAC-SHA-256 and DES (key derivation inside the line engine)
 *   lines_json.c  the strict reader of the plain subset of JSON the line engine answers
 *   lines_text.c  request texts (issued_at, units) and output text
 *   lines.c       the line engine of `sts generate` / `sts decode` (driven by sts.engine.stream)
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "native.c"
#include "keys.c"
#include "lines_json.c"
#include "lines_text.c"
#include "lines.c"

/* sts.crypto.native loads a module whose INTERFACE is the one it was written for, so a stale
 * in-place build (an editable install not rebuilt after a change) is never called. */
#define INTERFACE 3

#define AS_METHOD(f) ((PyCFunction)(void (*)(void))(f))

static int arg_count(Py_ssize_t n, Py_ssize_t want, const char *name) {
    if (n == want)
        return 1;
    PyErr_Format(PyExc_TypeError, "%s takes %zd arguments (%zd given)", name, want, n);
    return 0;
}

static int get_u64(PyObject *o, uint64_t *out) {
    unsigned long long v = PyLong_AsUnsignedLongLong(o); /* int only; 0 <= v < 2**64 */
    if (v == (unsigned long long)-1 && PyErr_Occurred())
        return 0;
    *out = v;
    return 1;
}

/* A contiguous buffer; `size` >= 0 asks for exactly that many bytes. */
static int get_buffer(PyObject *o, Py_buffer *view, int writable, Py_ssize_t size,
                      const char *what) {
    if (PyObject_GetBuffer(o, view, writable ? PyBUF_WRITABLE : PyBUF_SIMPLE) < 0)
        return 0;
    if (size >= 0 && view->len != size) {
        PyErr_Format(PyExc_ValueError, "%s must hold %zd bytes, not %zd", what, size, view->len);
        PyBuffer_Release(view);
        return 0;
    }
    return 1;
}

static uint64_t load_u64(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static void store_u64(uint8_t *p, uint64_t v) { memcpy(p, &v, sizeof v); }

/* keys, blocks (read) and out (written): n items of key_size, 8 and 8 bytes. */
static Py_ssize_t get_many(PyObject *const *args, Py_buffer views[3], Py_ssize_t key_size) {
    if (!get_buffer(args[0], &views[0], 0, -1, "keys"))
        return -1;
    Py_ssize_t n = views[0].len / key_size;
    if (views[0].len % key_size) {
        PyErr_Format(PyExc_ValueError, "keys must hold %zd bytes per key", key_size);
        PyBuffer_Release(&views[0]);
        return -1;
    }
    if (!get_buffer(args[1], &views[1], 0, 8 * n, "blocks")) {
        PyBuffer_Release(&views[0]);
        return -1;
    }
    if (!get_buffer(args[2], &views[2], 1, 8 * n, "out")) {
        PyBuffer_Release(&views[0]);
        PyBuffer_Release(&views[1]);
        return -1;
    }
    return n;
}

static void release_all(Py_buffer *views, int count) {
    for (int i = 0; i < count; i++)
        PyBuffer_Release(&views[i]);
}

/* --- StaTables: the EA07 lookup tables of one table set ------------------------------------ */

typedef struct {
    PyObject_HEAD
    sta_tables t;
} StaObject;

static PyTypeObject StaType;

static PyObject *sta_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    static char *names[] = {"s1", "s2", "p", NULL};
    Py_buffer s1, s2, p;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "y*y*y*:StaTables", names, &s1, &s2, &p))
        return NULL;
    StaObject *self = NULL;
    if (s1.len != 16 || s2.len != 16 || p.len != 64) {
        PyErr_SetString(PyExc_ValueError, "s1 and s2 must hold 16 bytes, p 64");
    } else if ((self = (StaObject *)type->tp_alloc(type, 0)) != NULL
               && !sta_tables_build(&self->t, s1.buf, s2.buf, p.buf)) {
        PyErr_SetString(PyExc_ValueError, "s1, s2 and p must be permutations");
        Py_CLEAR(self);
    }
    PyBuffer_Release(&s1);
    PyBuffer_Release(&s2);
    PyBuffer_Release(&p);
    return (PyObject *)self;
}

static PyObject *sta_crypt(StaObject *self, PyObject *const *args, Py_ssize_t n, int decrypt) {
    uint64_t key, block;
    if (!arg_count(n, 2, decrypt ? "decrypt" : "encrypt") || !get_u64(args[0], &key)
        || !get_u64(args[1], &block))
        return NULL;
    return PyLong_FromUnsignedLongLong(decrypt ? sta_decrypt(&self->t, key, block)
                                               : sta_encrypt(&self->t, key, block));
}

static PyObject *sta_encrypt_py(PyObject *self, PyObject *const *args, Py_ssize_t n) {
    return sta_crypt((StaObject *)self, args, n, 0);
}

static PyObject *sta_decrypt_py(PyObject *self, PyObject *const *args, Py_ssize_t n) {
    return sta_crypt((StaObject *)self, args, n, 1);
}

static PyObject *sta_many(StaObject *self, PyObject *const *args, Py_ssize_t nargs,
                          int decrypt) {
    Py_buffer v[3];
    if (!arg_count(nargs, 3, decrypt ? "decrypt_many" : "encrypt_many"))
        return NULL;
    Py_ssize_t n = get_many(args, v, 8);
    if (n < 0)
        return NULL;
    const uint8_t *keys = v[0].buf, *blocks = v[1].buf;
    uint8_t *out = v[2].buf;
    for (Py_ssize_t i = 0; i < n; i++) {
        uint64_t key = load_u64(keys + 8 * i), block = load_u64(blocks + 8 * i);
        store_u64(out + 8 * i, decrypt ? sta_decrypt(&self->t, key, block)
                                       : sta_encrypt(&self->t, key, block));
    }
    release_all(v, 3);
    Py_RETURN_NONE;
}

static PyObject *sta_encrypt_many_py(PyObject *self, PyObject *const *args, Py_ssize_t n) {
    return sta_many((StaObject *)self, args, n, 0);
}

static PyObject *sta_decrypt_many_py(PyObject *self, PyObject *const *args, Py_ssize_t n) {
    return sta_many((StaObject *)self, args, n, 1);
}

static PyMethodDef sta_methods[] = {
    {"encrypt", AS_METHOD(sta_encrypt_py), METH_FASTCALL,
     "encrypt(key, block): the EA07 ciphertext of a 64-bit block"},
    {"decrypt", AS_METHOD(sta_decrypt_py), METH_FASTCALL,
     "decrypt(key, block): the EA07 plaintext of a 64-bit block"},
    {"encrypt_many", AS_METHOD(sta_encrypt_many_py), METH_FASTCALL,
     "encrypt_many(keys, blocks, out): native-endian uint64 arrays of the same length"},
    {"decrypt_many", AS_METHOD(sta_decrypt_many_py), METH_FASTCALL,
     "decrypt_many(keys, blocks, out): native-endian uint64 arrays of the same length"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject StaType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "sts.crypto._native.StaTables",
    .tp_doc = "StaTables(s1, s2, p): EA07 under one STA table set (S1, S2: 16 bytes; P: 64)",
    .tp_basicsize = sizeof(StaObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = sta_new,
    .tp_methods = sta_methods,
};

/* --- Misty1: EA11 with the FI tables built from the S-boxes -------------------------------- */

typedef struct {
    PyObject_HEAD
    misty1_tables t;
} MistyObject;

/* S7 and S9 as native-endian uint16 buffers of 128 and 512 entries. */
static int get_sboxes(PyObject *o7, PyObject *o9, uint16_t s7[128], uint16_t s9[512]) {
    Py_buffer b7, b9;
    if (!get_buffer(o7, &b7, 0, 2 * 128, "s7"))
        return 0;
    if (!get_buffer(o9, &b9, 0, 2 * 512, "s9")) {
        PyBuffer_Release(&b7);
        return 0;
    }
    memcpy(s7, b7.buf, 2 * 128);
    memcpy(s9, b9.buf, 2 * 512);
    PyBuffer_Release(&b7);
    PyBuffer_Release(&b9);
    return 1;
}

static PyObject *misty_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    static char *names[] = {"s7", "s9", NULL};
    PyObject *o7, *o9;
    uint16_t s7[128], s9[512];
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO:Misty1", names, &o7, &o9)
        || !get_sboxes(o7, o9, s7, s9))
        return NULL;
    MistyObject *self = (MistyObject *)type->tp_alloc(type, 0);
    if (self)
        misty1_tables_build(&self->t, s7, s9);
    return (PyObject *)self;
}

static PyObject *misty_crypt(MistyObject *self, PyObject *const *args, Py_ssize_t n,
                             int decrypt) {
    uint64_t block;
    Py_buffer key;
    if (!arg_count(n, 2, decrypt ? "decrypt" : "encrypt") || !get_u64(args[1], &block))
        return NULL;
    if (PyBytes_CheckExact(args[0]) && PyBytes_GET_SIZE(args[0]) == 16) /* the common case */
        return PyLong_FromUnsignedLongLong(misty1_crypt(
            &self->t, (const uint8_t *)PyBytes_AS_STRING(args[0]), block, decrypt));
    if (!get_buffer(args[0], &key, 0, 16, "key"))
        return NULL;
    uint64_t result = misty1_crypt(&self->t, key.buf, block, decrypt);
    PyBuffer_Release(&key);
    return PyLong_FromUnsignedLongLong(result);
}

static PyObject *misty_encrypt_py(PyObject *self, PyObject *const *args, Py_ssize_t n) {
    return misty_crypt((MistyObject *)self, args, n, 0);
}

static PyObject *misty_decrypt_py(PyObject *self, PyObject *const *args, Py_ssize_t n) {
    return misty_crypt((MistyObject *)self, args, n, 1);
}

static PyObject *misty_crypt_many_py(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    Py_buffer v[3];
    if (!arg_count(nargs, 4, "crypt_many"))
        return NULL;
    int decrypt = PyObject_IsTrue(args[3]);
    if (decrypt < 0)
        return NULL;
    Py_ssize_t n = get_many(args, v, 16);
    if (n < 0)
        return NULL;
    const misty1_tables *t = &((MistyObject *)self)->t;
    const uint8_t *keys = v[0].buf, *blocks = v[1].buf;
    uint8_t *out = v[2].buf;
    for (Py_ssize_t i = 0; i < n; i++)
        store_u64(out + 8 * i, misty1_crypt(t, keys + 16 * i, load_u64(blocks + 8 * i), decrypt));
    release_all(v, 3);
    Py_RETURN_NONE;
}

static PyMethodDef misty_methods[] = {
    {"encrypt", AS_METHOD(misty_encrypt_py), METH_FASTCALL,
     "encrypt(key, block): the EA11 ciphertext of a 64-bit block under a 16-byte key"},
    {"decrypt", AS_METHOD(misty_decrypt_py), METH_FASTCALL,
     "decrypt(key, block): the EA11 plaintext of a 64-bit block under a 16-byte key"},
    {"crypt_many", AS_METHOD(misty_crypt_many_py), METH_FASTCALL,
     "crypt_many(keys, blocks, out, decrypt): 16 key bytes per uint64 block"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject MistyType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "sts.crypto._native.Misty1",
    .tp_doc = "Misty1(s7, s9): EA11 (MISTY1) with the S-boxes given as uint16 buffers",
    .tp_basicsize = sizeof(MistyObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = misty_new,
    .tp_methods = misty_methods,
};

/* --- LineEngine: one run of `sts generate` / `sts decode` ---------------------------------- */

typedef struct {
    PyObject_HEAD
    line_engine e;
    PyObject *sets[LINE_MAX_SETS]; /* the StaTables the engine points into */
} EngineObject;

static PyObject *engine_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    static char *names[] = {"s7", "s9", NULL};
    PyObject *o7, *o9;
    uint16_t s7[128], s9[512];
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO:LineEngine", names, &o7, &o9)
        || !get_sboxes(o7, o9, s7, s9))
        return NULL;
    EngineObject *self = (EngineObject *)type->tp_alloc(type, 0); /* zeroed */
    if (self)
        lines_init(&self->e, s7, s9);
    return (PyObject *)self;
}

static void engine_dealloc(PyObject *op) {
    EngineObject *self = (EngineObject *)op;
    lines_release(&self->e);
    for (int i = 0; i < LINE_MAX_SETS; i++)
        Py_CLEAR(self->sets[i]);
    Py_TYPE(op)->tp_free(op);
}

static PyObject *engine_text(PyObject *op, PyObject *args) {
    EngineObject *self = (EngineObject *)op;
    int subclass;
    Py_buffer text;
    if (!PyArg_ParseTuple(args, "iy*:text", &subclass, &text))
        return NULL;
    int bad = lines_text(&self->e, subclass, text.buf, (size_t)text.len);
    PyBuffer_Release(&text);
    if (bad) {
        PyErr_SetString(PyExc_ValueError, "subclass 0-3 and a text of at most 255 bytes");
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *engine_table_set(PyObject *op, PyObject *args) {
    EngineObject *self = (EngineObject *)op;
    Py_buffer name;
    PyObject *tables;
    if (!PyArg_ParseTuple(args, "y*O:table_set", &name, &tables))
        return NULL;
    if (tables != Py_None && !PyObject_TypeCheck(tables, &StaType)) {
        PyBuffer_Release(&name);
        PyErr_SetString(PyExc_TypeError, "tables must be StaTables or None");
        return NULL;
    }
    int slot = self->e.nsets;
    const sta_tables *t = tables == Py_None ? NULL : &((StaObject *)tables)->t;
    int bad = lines_table_set(&self->e, name.buf, (size_t)name.len, t);
    PyBuffer_Release(&name);
    if (bad) {
        PyErr_SetString(PyExc_ValueError, "no room for another table set, or a name too long");
        return NULL;
    }
    if (t) {
        Py_INCREF(tables);
        self->sets[slot] = tables;
    }
    Py_RETURN_NONE;
}

static PyObject *engine_needed(PyObject *op, PyObject *Py_UNUSED(ignored)) {
    EngineObject *self = (EngineObject *)op;
    return PyBytes_FromStringAndSize(self->e.need, (Py_ssize_t)self->e.need_len);
}

/* run(decode, block, start, length, out, backs, rnd, line_no)
 *   -> (status, reached, used, handed_back, next_line_no) */
static PyObject *engine_run(PyObject *op, PyObject *const *args, Py_ssize_t nargs) {
    EngineObject *self = (EngineObject *)op;
    Py_buffer v[4]; /* block, out, backs, rnd */
    int held = 0, status;
    int64_t res[8] = {0};
    PyObject *result = NULL;
    if (!arg_count(nargs, 8, "run"))
        return NULL;
    int decode = PyObject_IsTrue(args[0]);
    Py_ssize_t start = PyLong_AsSsize_t(args[2]), length = PyLong_AsSsize_t(args[3]);
    long long line_no = PyLong_AsLongLong(args[7]);
    if (decode < 0 || PyErr_Occurred())
        return NULL;
    if (!get_buffer(args[1], &v[held], 0, -1, "block"))
        goto done;
    held++;
    if (!get_buffer(args[4], &v[held], 1, -1, "out"))
        goto done;
    held++;
    if (!get_buffer(args[5], &v[held], 1, -1, "backs"))
        goto done;
    held++;
    if (!get_buffer(args[6], &v[held], 0, -1, "rnd"))
        goto done;
    held++;
    if (start < 0 || start > length || length > v[0].len) {
        PyErr_SetString(PyExc_ValueError, "0 <= start <= length <= len(block) is required");
        goto done;
    }
    if (v[1].len == 0) { /* a full buffer is answered RUN_FULL, and the caller grows it */
        PyErr_SetString(PyExc_ValueError, "out must not be empty");
        goto done;
    }
    if (v[2].len % (4 * sizeof(int64_t)) || (uintptr_t)v[2].buf % _Alignof(int64_t)) {
        PyErr_SetString(PyExc_ValueError, "backs must be an aligned int64 array of 4 per line");
        goto done;
    }
    status = lines_run(&self->e, decode, v[0].buf, (size_t)start, (size_t)length, v[1].buf,
                           (size_t)v[1].len, v[2].buf, (size_t)v[2].len / (4 * sizeof(int64_t)),
                           v[3].buf, (size_t)v[3].len, line_no, res);
    result = Py_BuildValue("(iLLLL)", status, (long long)res[0], (long long)res[1],
                           (long long)res[2], (long long)res[3]);
done:
    release_all(v, held);
    return result;
}

static PyMethodDef engine_methods[] = {
    {"text", engine_text, METH_VARARGS,
     "text(subclass, text): the kind and description members of a decoded credit subclass"},
    {"table_set", engine_table_set, METH_VARARGS,
     "table_set(name, tables): the StaTables a line's table_set names, or None for none"},
    {"needed", engine_needed, METH_NOARGS,
     "needed(): the table set name the last run stopped for"},
    {"run", AS_METHOD(engine_run), METH_FASTCALL,
     "run(decode, block, start, length, out, backs, rnd, line_no) -> (status, reached, used, "
     "handed_back, next_line_no)"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject EngineType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "sts.crypto._native.LineEngine",
    .tp_doc = "LineEngine(s7, s9): the compiled line engine (see sts.engine.stream)",
    .tp_basicsize = sizeof(EngineObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = engine_new,
    .tp_dealloc = engine_dealloc,
    .tp_methods = engine_methods,
};

/* --- module functions: the SHA-256 form, and the primitives for the differential tests ---- */

static PyObject *sha256_form_py(PyObject *Py_UNUSED(module), PyObject *arg) {
    int portable = PyObject_IsTrue(arg);
    if (portable < 0)
        return NULL;
    return PyBool_FromLong(sha256_form(portable));
}

static PyObject *sha256_py(PyObject *Py_UNUSED(module), PyObject *arg) {
    Py_buffer data;
    uint8_t out[32];
    if (!get_buffer(arg, &data, 0, -1, "data"))
        return NULL;
    sha256_finish(SHA256_H0, 0, data.buf, (size_t)data.len, out);
    PyBuffer_Release(&data);
    return PyBytes_FromStringAndSize((const char *)out, 32);
}

static PyObject *hmac_sha256_py(PyObject *Py_UNUSED(module), PyObject *const *args,
                                Py_ssize_t n) {
    Py_buffer key, msg;
    hmac_pads pads;
    uint8_t out[32];
    if (!arg_count(n, 2, "hmac_sha256") || !get_buffer(args[0], &key, 0, -1, "key"))
        return NULL;
    if (key.len > 64) {
        PyBuffer_Release(&key);
        PyErr_SetString(PyExc_ValueError, "key must hold at most 64 bytes");
        return NULL;
    }
    if (!get_buffer(args[1], &msg, 0, -1, "msg")) {
        PyBuffer_Release(&key);
        return NULL;
    }
    hmac_setup(&pads, key.buf, (size_t)key.len);
    hmac_sha256(&pads, msg.buf, (size_t)msg.len, out);
    PyBuffer_Release(&key);
    PyBuffer_Release(&msg);
    return PyBytes_FromStringAndSize((const char *)out, 32);
}

static PyObject *des_encrypt_py(PyObject *Py_UNUSED(module), PyObject *const *args,
                                Py_ssize_t n) {
    uint64_t key, block;
    des_key ks;
    if (!arg_count(n, 2, "des_encrypt") || !get_u64(args[0], &key) || !get_u64(args[1], &block))
        return NULL;
    des_setup(&ks, key);
    return PyLong_FromUnsignedLongLong(des_encrypt(&ks, block));
}

static PyMethodDef module_methods[] = {
    {"sha256_form", sha256_form_py, METH_O,
     "sha256_form(portable): True when the processor's SHA extensions run (portable forces "
     "the portable form)"},
    {"sha256", sha256_py, METH_O, "sha256(data): the digest (tests)"},
    {"hmac_sha256", AS_METHOD(hmac_sha256_py), METH_FASTCALL,
     "hmac_sha256(key, msg): the MAC under a key of at most 64 bytes (tests)"},
    {"des_encrypt", AS_METHOD(des_encrypt_py), METH_FASTCALL,
     "des_encrypt(key, block): single DES of a 64-bit block (tests)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "sts.crypto._native",
    .m_doc = "The optional compiled core of sts (see sts.crypto.native).",
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC PyInit__native(void) {
    plain_init();
    sha256_choose();
    if (PyType_Ready(&StaType) < 0 || PyType_Ready(&MistyType) < 0
        || PyType_Ready(&EngineType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module_def);
    if (!m)
        return NULL;
    if (PyModule_AddIntConstant(m, "INTERFACE", INTERFACE) < 0
        || PyModule_AddType(m, &StaType) < 0 || PyModule_AddType(m, &MistyType) < 0
        || PyModule_AddType(m, &EngineType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
