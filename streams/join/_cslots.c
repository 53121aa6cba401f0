/* Slot.pack, Slot.unpack, request_key and join_event of streams/join/slot_state.py, slot_events.py and keys.py in C: a
 * request's join-stage-1 state to and from its JoinSlot Avro body, its store key, and the
 * join events made of it.
 *
 * Stage 1 packs every request a batch touches and unpacks every one it finds in the
 * store: in Python that is a third of its time. Same bytes, same slots: pack returns None
 * (the Python pack then runs) for a value of an unexpected type, and unpack returns None
 * for anything but a well-formed body as pack writes it, so the Python unpack raises its
 * own error; join_event hands values of unexpected types to its Python twin.
 * tests/unit/join/test_cslots.py holds the two to each other and to fastavro.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#include "../_avro.h"

enum { MODEL, FIRST_SEEN, SEGMENTS, LIVE, CANDIDATES, INPUTS, LABEL, CLOSED, LABELLED, FIELDS };
static const char *field_names[FIELDS] = {
    "model", "first_seen_ms", "segments", "live", "candidates",
    "inputs", "label", "closed", "labelled",
};
static PyTypeObject *slot_type;
static PyObject *descriptors[FIELDS];

/* ------------------------------------------------------------------------ pack */

/* What pack writes, measured first so the bytes are allocated once. */
typedef struct {
    PyObject *values[FIELDS];
    int64_t first_seen;
    size_t total;
} Packing;

/* Adds a text field's size to *total; -1: not a str (Python packs it), -2: an error is
 * set (not UTF-8 encodable). str caches its UTF-8, so put_text reads it again for free. */
static int text_size(PyObject *text, size_t *total) {
    if (!PyUnicode_CheckExact(text)) return -1;
    Py_ssize_t n;
    if (PyUnicode_AsUTF8AndSize(text, &n) == NULL) return -2;
    *total += sized(n);
    return 0;
}

static size_t bytes_field(PyObject *value) { return sized(PyBytes_GET_SIZE(value)); }

/* Sizes everything; -1: an unexpected type (Python packs it), -2: an error is set. */
static int measure(Packing *p) {
    PyObject **v = p->values;
    int found;
    p->total = 0;
    if ((found = text_size(v[MODEL], &p->total)) < 0) return found;
    if (!PyLong_CheckExact(v[FIRST_SEEN])) return -1;
    int overflow;
    p->first_seen = PyLong_AsLongLongAndOverflow(v[FIRST_SEEN], &overflow);
    if (overflow || (p->first_seen == -1 && PyErr_Occurred())) {
        PyErr_Clear();
        return -1;
    }
    p->total += varint_size(zigzag(p->first_seen));
    if (!PyBytes_CheckExact(v[SEGMENTS])) return -1;
    p->total += bytes_field(v[SEGMENTS]);
    for (int k = LIVE; k <= LABEL; k += (k == LIVE ? 2 : 1)) { /* live, inputs, label */
        if (v[k] == Py_None) {
            p->total += 1;
        } else if (PyBytes_CheckExact(v[k])) {
            p->total += 1 + bytes_field(v[k]);
        } else {
            return -1;
        }
    }
    if (!PyDict_CheckExact(v[CANDIDATES])) return -1;
    Py_ssize_t at = 0, count = PyDict_GET_SIZE(v[CANDIDATES]);
    PyObject *version, *stored;
    if (count) p->total += varint_size(zigzag(count));
    while (PyDict_Next(v[CANDIDATES], &at, &version, &stored)) {
        if ((found = text_size(version, &p->total)) < 0) return found;
        if (!PyBytes_CheckExact(stored)) return -1;
        p->total += bytes_field(stored);
    }
    p->total += 1;
    for (int k = CLOSED; k <= LABELLED; k++) {
        if (!PyList_CheckExact(v[k])) return -1;
        Py_ssize_t names = PyList_GET_SIZE(v[k]);
        if (names) p->total += varint_size(zigzag(names));
        for (Py_ssize_t i = 0; i < names; i++) {
            if ((found = text_size(PyList_GET_ITEM(v[k], i), &p->total)) < 0) return found;
        }
        p->total += 1;
    }
    return 0;
}

static PyObject *write_packed(Packing *p) {
    PyObject **v = p->values;
    PyObject *result = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)p->total);
    if (result == NULL) return NULL;
    char *out = PyBytes_AS_STRING(result);
    out = put_text(out, v[MODEL]);
    out = put_varint(out, zigzag(p->first_seen));
    out = put_bytes(out, v[SEGMENTS]);
    if (v[LIVE] == Py_None) {
        *out++ = 0;
    } else {
        *out++ = 2;
        out = put_bytes(out, v[LIVE]);
    }
    Py_ssize_t at = 0, count = PyDict_GET_SIZE(v[CANDIDATES]);
    PyObject *version, *stored;
    if (count) out = put_varint(out, zigzag(count));
    while (PyDict_Next(v[CANDIDATES], &at, &version, &stored)) {
        out = put_text(out, version);
        out = put_bytes(out, stored);
    }
    *out++ = 0;
    for (int k = INPUTS; k <= LABEL; k++) {
        if (v[k] == Py_None) {
            *out++ = 0;
        } else {
            *out++ = 2;
            out = put_bytes(out, v[k]);
        }
    }
    for (int k = CLOSED; k <= LABELLED; k++) {
        Py_ssize_t names = PyList_GET_SIZE(v[k]);
        if (names) out = put_varint(out, zigzag(names));
        for (Py_ssize_t i = 0; i < names; i++) out = put_text(out, PyList_GET_ITEM(v[k], i));
        *out++ = 0;
    }
    if (out != PyBytes_AS_STRING(result) + p->total) {
        Py_DECREF(result);
        PyErr_SetString(PyExc_SystemError, "join slot: packed size mismatch");
        return NULL;
    }
    return result;
}

static PyObject *pack(PyObject *module, PyObject *slot) {
    if (slot_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "streams.join._cslots: configure() first");
        return NULL;
    }
    Packing p;
    memset(&p, 0, sizeof p);
    PyObject *result = NULL;
    for (int k = 0; k < FIELDS; k++) {
        p.values[k] = Py_TYPE(descriptors[k])->tp_descr_get(descriptors[k], slot,
                                                            (PyObject *)Py_TYPE(slot));
        if (p.values[k] == NULL) goto done;
    }
    int found = measure(&p);
    if (found == -1) {
        result = Py_NewRef(Py_None);
    } else if (found == 0) {
        result = write_packed(&p);
    }
done:
    for (int k = 0; k < FIELDS; k++) Py_XDECREF(p.values[k]);
    return result;
}

/* ---------------------------------------------------------------------- unpack */

static PyObject *read_optional_bytes(const Buffer *b, Py_ssize_t *i) {
    switch (union_index(b, i)) {
    case 0:
        return Py_NewRef(Py_None);
    case 2:
        return read_bytes(b, i);
    default:
        return NULL;
    }
}

/* One block of items then the 0 end marker, or just the marker (as pack writes them). */
static int read_count(const Buffer *b, Py_ssize_t *i, Py_ssize_t *count) {
    if (*i >= b->size) return -1;
    if (b->data[*i] == 0) {
        *i += 1;
        *count = 0;
        return 0;
    }
    return read_size(b, i, count);
}

static int read_end(const Buffer *b, Py_ssize_t *i) {
    if (*i >= b->size || b->data[*i] != 0) return -1;
    *i += 1;
    return 0;
}

static PyObject *read_names(const Buffer *b, Py_ssize_t *i) {
    Py_ssize_t count;
    if (read_count(b, i, &count) < 0) return NULL;
    PyObject *names = PyList_New(count);
    if (names == NULL) return NULL;
    for (Py_ssize_t k = 0; k < count; k++) {
        PyObject *name = read_text(b, i);
        if (name == NULL) {
            Py_DECREF(names);
            return NULL;
        }
        PyList_SET_ITEM(names, k, name);
    }
    if (count && read_end(b, i) < 0) {
        Py_DECREF(names);
        return NULL;
    }
    return names;
}

static PyObject *read_candidates(const Buffer *b, Py_ssize_t *i) {
    Py_ssize_t count;
    if (read_count(b, i, &count) < 0) return NULL;
    PyObject *candidates = PyDict_New();
    if (candidates == NULL) return NULL;
    for (Py_ssize_t k = 0; k < count; k++) {
        PyObject *version = read_text(b, i);
        PyObject *stored = version == NULL ? NULL : read_bytes(b, i);
        int failed = stored == NULL || PyDict_SetItem(candidates, version, stored) < 0;
        Py_XDECREF(version);
        Py_XDECREF(stored);
        if (failed) {
            Py_DECREF(candidates);
            return NULL;
        }
    }
    if (count && read_end(b, i) < 0) {
        Py_DECREF(candidates);
        return NULL;
    }
    return candidates;
}

static PyObject *unpack(PyObject *module, PyObject *data) {
    if (slot_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "streams.join._cslots: configure() first");
        return NULL;
    }
    if (!PyBytes_Check(data)) Py_RETURN_NONE;
    Buffer b = {(const unsigned char *)PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data)};
    Py_ssize_t i = 0;
    PyObject *v[FIELDS] = {NULL};
    PyObject *slot = NULL;
    int64_t first_seen;
    if ((v[MODEL] = read_text(&b, &i)) == NULL) goto give_up;
    if (read_varint(&b, &i, &first_seen) < 0) goto give_up;
    if ((v[FIRST_SEEN] = PyLong_FromLongLong(first_seen)) == NULL) goto give_up;
    if ((v[SEGMENTS] = read_bytes(&b, &i)) == NULL) goto give_up;
    if ((v[LIVE] = read_optional_bytes(&b, &i)) == NULL) goto give_up;
    if ((v[CANDIDATES] = read_candidates(&b, &i)) == NULL) goto give_up;
    if ((v[INPUTS] = read_optional_bytes(&b, &i)) == NULL) goto give_up;
    if ((v[LABEL] = read_optional_bytes(&b, &i)) == NULL) goto give_up;
    if ((v[CLOSED] = read_names(&b, &i)) == NULL) goto give_up;
    if ((v[LABELLED] = read_names(&b, &i)) == NULL) goto give_up;
    if (i != b.size) goto give_up;
    slot = slot_type->tp_alloc(slot_type, 0);
    for (int k = 0; k < FIELDS && slot != NULL; k++) {
        if (Py_TYPE(descriptors[k])->tp_descr_set(descriptors[k], slot, v[k]) < 0) {
            Py_CLEAR(slot);
        }
    }
    for (int k = 0; k < FIELDS; k++) Py_XDECREF(v[k]);
    return slot;
give_up:
    for (int k = 0; k < FIELDS; k++) Py_XDECREF(v[k]);
    if (PyErr_Occurred() && !PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) return NULL;
    PyErr_Clear();
    Py_RETURN_NONE; /* the Python unpack reads it or names what is wrong */
}

/* ------------------------------------------------------------------ join events */

static PyObject *event_fallback; /* join_event_python: decides on unexpected types */

/* What join_event writes, every value checked: bytes, or None where optional. */
typedef struct {
    PyObject *start, *rid, *candidate, *segments, *live, *label;
    PyObject *inputs; /* None unless the event carries them */
    PyObject *reason; /* NULL: left out (no expiry reason) */
    PyObject *model; /* str */
    Py_ssize_t model_size; /* of its UTF-8 */
    int64_t now_ms;
} Event;

static size_t raw_size(PyObject *value) { return (size_t)PyBytes_GET_SIZE(value); }

/* A stored prediction as the event's nested Prediction (union branch 1): request id,
 * model, the stored bytes, the request's segments; or null. */
static size_t prediction_size(const Event *e, PyObject *stored) {
    if (stored == Py_None) return 1;
    return 1 + raw_size(e->rid) + sized(e->model_size) + raw_size(stored) + raw_size(e->segments);
}

static char *put_prediction(char *out, const Event *e, PyObject *stored) {
    if (stored == Py_None) {
        *out++ = 0;
        return out;
    }
    *out++ = 2;
    out = put_raw(out, e->rid);
    out = put_text(out, e->model);
    out = put_raw(out, stored);
    return put_raw(out, e->segments);
}

/* `slot.label or b"\x00"`, as the Python twin writes it. */
static int has_label(const Event *e) { return e->label != Py_None && PyBytes_GET_SIZE(e->label); }

static PyObject *write_event(const Event *e) {
    size_t total = raw_size(e->start) + raw_size(e->rid) + varint_size(zigzag(e->now_ms)) +
                   raw_size(e->segments) + prediction_size(e, e->live) +
                   prediction_size(e, e->candidate) + (has_label(e) ? raw_size(e->label) : 1) +
                   (e->reason == NULL ? 1 : raw_size(e->reason)) +
                   (e->inputs == Py_None ? 1 : 1 + raw_size(e->inputs));
    PyObject *result = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)total);
    if (result == NULL) return NULL;
    char *out = PyBytes_AS_STRING(result);
    out = put_raw(out, e->start);
    out = put_raw(out, e->rid);
    out = put_varint(out, zigzag(e->now_ms));
    out = put_raw(out, e->segments);
    out = put_prediction(out, e, e->live);
    out = put_prediction(out, e, e->candidate);
    if (has_label(e)) {
        out = put_raw(out, e->label);
    } else {
        *out++ = 0;
    }
    if (e->reason == NULL) {
        *out++ = 0;
    } else {
        out = put_raw(out, e->reason);
    }
    if (e->inputs == Py_None) {
        *out++ = 0;
    } else {
        *out++ = 2;
        out = put_raw(out, e->inputs);
    }
    if (out != PyBytes_AS_STRING(result) + total) {
        Py_DECREF(result);
        PyErr_SetString(PyExc_SystemError, "join event: size mismatch");
        return NULL;
    }
    return result;
}

static int is_optional_bytes(PyObject *value) {
    return value == Py_None || PyBytes_CheckExact(value);
}

/* join_event(start, rid, slot, candidate, now_ms, with_inputs[, reason]): see
 * join_event_python in slot_events.py, which runs instead for values of other types. */
static PyObject *join_event(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (slot_type == NULL || event_fallback == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "streams.join._cslots: configure() first");
        return NULL;
    }
    if (nargs != 6 && nargs != 7) {
        PyErr_Format(PyExc_TypeError, "join_event takes 6 or 7 arguments (%zd given)", nargs);
        return NULL;
    }
    int with_inputs = PyObject_IsTrue(args[5]);
    if (with_inputs < 0) return NULL;
    enum { E_MODEL, E_SEGMENTS, E_LIVE, E_INPUTS, E_LABEL, E_FIELDS };
    static const int fields[E_FIELDS] = {MODEL, SEGMENTS, LIVE, INPUTS, LABEL};
    PyObject *v[E_FIELDS] = {NULL};
    PyObject *result = NULL;
    if (Py_TYPE(args[2]) != slot_type) goto fallback;
    for (int k = 0; k < E_FIELDS; k++) {
        PyObject *descriptor = descriptors[fields[k]];
        v[k] = Py_TYPE(descriptor)->tp_descr_get(descriptor, args[2], (PyObject *)slot_type);
        if (v[k] == NULL) goto done;
    }
    Event e = {
        .start = args[0],
        .rid = args[1],
        .candidate = args[3],
        .segments = v[E_SEGMENTS],
        .live = v[E_LIVE],
        .label = v[E_LABEL],
        .inputs = with_inputs ? v[E_INPUTS] : Py_None,
        .reason = nargs == 7 ? args[6] : NULL,
    };
    if (!PyBytes_CheckExact(e.start) || !PyBytes_CheckExact(e.rid) ||
        !is_optional_bytes(e.candidate) || !PyBytes_CheckExact(e.segments) ||
        !is_optional_bytes(e.live) || !is_optional_bytes(v[E_INPUTS]) ||
        !is_optional_bytes(e.label) || (e.reason != NULL && !PyBytes_CheckExact(e.reason)) ||
        !PyUnicode_CheckExact(v[E_MODEL]) || !PyLong_CheckExact(args[4])) {
        goto fallback;
    }
    int overflow;
    e.now_ms = PyLong_AsLongLongAndOverflow(args[4], &overflow);
    if (overflow) goto fallback;
    if (e.now_ms == -1 && PyErr_Occurred()) goto done;
    e.model = v[E_MODEL];
    if (PyUnicode_AsUTF8AndSize(e.model, &e.model_size) == NULL) goto done;
    result = write_event(&e);
    goto done;
fallback:
    result = PyObject_Vectorcall(event_fallback, args, (size_t)nargs, NULL);
done:
    for (int k = 0; k < E_FIELDS; k++) Py_XDECREF(v[k]);
    return result;
}

/* ------------------------------------------------------------------ request ids */

static int hex_digit(Py_UCS1 c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }

/* request_key: a canonical lower-case UUID as its 128-bit int, anything else as UTF-8. */
static PyObject *request_key(PyObject *module, PyObject *request_id) {
    if (!PyUnicode_Check(request_id)) {
        PyErr_Format(PyExc_TypeError, "a request id is a str, not %.100s",
                     Py_TYPE(request_id)->tp_name);
        return NULL;
    }
    if (PyUnicode_READY(request_id) < 0) return NULL;
    if (PyUnicode_GET_LENGTH(request_id) == 36 && PyUnicode_IS_ASCII(request_id)) {
        const Py_UCS1 *s = PyUnicode_1BYTE_DATA(request_id);
        char digits[33];
        int n = 0, letters = 0, ok = 1;
        for (int k = 0; k < 36 && ok; k++) {
            if (k == 8 || k == 13 || k == 18 || k == 23) {
                ok = s[k] == '-';
            } else {
                ok = hex_digit(s[k]);
                letters += s[k] >= 'a';
                digits[n++] = (char)s[k];
            }
        }
        if (ok && letters) { /* str.islower() needs a cased character */
            digits[32] = '\0';
            return PyLong_FromString(digits, NULL, 16);
        }
    }
    return PyUnicode_AsUTF8String(request_id);
}

static PyObject *set_event_fallback(PyObject *module, PyObject *fallback) {
    if (!PyCallable_Check(fallback)) {
        PyErr_SetString(PyExc_TypeError, "set_event_fallback takes join_event_python");
        return NULL;
    }
    Py_XSETREF(event_fallback, Py_NewRef(fallback));
    Py_RETURN_NONE;
}

static PyObject *configure(PyObject *module, PyObject *cls) {
    if (!PyType_Check(cls)) {
        PyErr_Format(PyExc_TypeError, "%R is not a class", cls);
        return NULL;
    }
    for (int k = 0; k < FIELDS; k++) {
        PyObject *descriptor = PyObject_GetAttrString(cls, field_names[k]);
        if (descriptor == NULL) return NULL;
        if (Py_TYPE(descriptor)->tp_descr_get == NULL ||
            Py_TYPE(descriptor)->tp_descr_set == NULL) {
            PyErr_Format(PyExc_TypeError, "%R.%s is no slot", cls, field_names[k]);
            Py_DECREF(descriptor);
            return NULL;
        }
        Py_XSETREF(descriptors[k], descriptor);
    }
    Py_XSETREF(slot_type, (PyTypeObject *)Py_NewRef(cls));
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"configure", configure, METH_O, "configure(Slot): the class pack reads and unpack builds."},
    {"set_event_fallback", set_event_fallback, METH_O,
     "set_event_fallback(join_event_python): what join_event runs for unexpected types."},
    {"pack", pack, METH_O, "The JoinSlot body of a Slot, or None (the Python pack decides)."},
    {"unpack", unpack, METH_O,
     "The Slot of a JoinSlot body, or None (the Python unpack reads it or raises)."},
    {"request_key", request_key, METH_O, "The store key of a request id (see streams.join.keys)."},
    {"join_event", (PyCFunction)(void (*)(void))join_event, METH_FASTCALL,
     "A JoinEvent message's bytes (see streams.join.slot_events)."},
    {NULL, NULL, 0, NULL},
};

/* Multi-phase initialisation (PEP 489): nothing to run at exec; configure() sets up. */
static PyModuleDef_Slot module_slots[] = {{0, NULL}};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_cslots",
    .m_doc = "C Slot.pack, Slot.unpack, request_key and join_event (see streams.join.slot_state, "
             "streams.join.slot_events and streams.join.keys).",
    .m_size = 0,
    .m_methods = methods,
    .m_slots = module_slots,
};

PyMODINIT_FUNC PyInit__cslots(void) { return PyModuleDef_Init(&module); }
