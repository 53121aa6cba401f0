/* The Prediction, GroundTruth, JoinEvent and JoinEventBatch readers of streams/codec/fastread.py in C.
 *
 * Same records, same give-ups: a reader returns None for anything the Python reader
 * returns None for (a multi-byte union index, a negative map count, a varint past 64
 * bits, bad UTF-8, a short or over-long buffer), and the caller then runs fastavro.
 * tests/unit/codec/test_cread.py holds the two to the same results on valid, truncated
 * and corrupted bytes; test_fast.py holds both to fastavro.
 *
 * Records are built as the Python readers build them: object.__new__ of the class, then
 * each field's slot descriptor __set__ (frozen dataclasses refuse setattr). The classes,
 * descriptors, enum members and the ModelInput reader (nested inputs stay in Python)
 * come from configure(), called once by fastread.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define HEADER_SIZE 5
#define PREDICTION_FIELDS 10
#define GROUND_TRUTH_FIELDS 4
#define JOIN_EVENT_FIELDS 10

static PyTypeObject *prediction_type, *ground_truth_type, *join_event_type, *batch_type;
static PyObject *prediction_fields[PREDICTION_FIELDS];
static PyObject *ground_truth_fields[GROUND_TRUTH_FIELDS];
static PyObject *join_event_fields[JOIN_EVENT_FIELDS];
static PyObject *batch_fields[1];
static PyObject *roles[2], *kinds[3];
static PyObject *read_model_input; /* (data, i, seg_raw, seg) -> (ModelInput, i) */
static PyObject *give_up_errors;   /* exceptions that mean "let fastavro decide" */
static PyObject *empty_bytes;

/* The bytes being read. A reader returns -1 to give up (no exception set) or to fail
 * (exception set: a UTF-8 error is a give-up too, see finish()). */
typedef struct {
    const unsigned char *data;
    Py_ssize_t size;
    PyObject *object; /* the bytes object, for the nested ModelInput reader */
} Buffer;

static int read_varint(const Buffer *b, Py_ssize_t *i, int64_t *out) {
    uint64_t n = 0;
    int shift = 0;
    unsigned char byte;
    do {
        if (*i >= b->size || shift > 63) return -1; /* short, or past 10 bytes */
        byte = b->data[(*i)++];
        if (shift == 63 && (byte & 0x7F) > 1) return -1; /* past 64 bits */
        n |= (uint64_t)(byte & 0x7F) << shift;
        shift += 7;
    } while (byte & 0x80);
    *out = (int64_t)((n >> 1) ^ (~(n & 1) + 1)); /* zig-zag */
    return 0;
}

/* A length or map block count: a negative one (a block with its byte size) gives up. */
static int read_size(const Buffer *b, Py_ssize_t *i, Py_ssize_t *out) {
    int64_t n;
    if (read_varint(b, i, &n) < 0 || n < 0 || n > b->size - *i) {
        /* A count may exceed the bytes left only if its items were empty, which the
         * readers below never accept: every item has at least one byte. */
        return -1;
    }
    *out = (Py_ssize_t)n;
    return 0;
}

static PyObject *read_text(const Buffer *b, Py_ssize_t *i) {
    Py_ssize_t n;
    if (read_size(b, i, &n) < 0) return NULL;
    PyObject *text = PyUnicode_DecodeUTF8((const char *)b->data + *i, n, NULL);
    *i += n;
    return text;
}

static int read_double(const Buffer *b, Py_ssize_t *i, double *out) {
    if (b->size - *i < 8) return -1;
    *out = PyFloat_Unpack8((const char *)b->data + *i, 1);
    *i += 8;
    return (*out == -1.0 && PyErr_Occurred()) ? -1 : 0;
}

/* A map<string> or (doubles) map<double>, in blocks up to the 0 end marker. */
static PyObject *read_map(const Buffer *b, Py_ssize_t *i, int doubles) {
    PyObject *result = PyDict_New();
    if (result == NULL) return NULL;
    for (;;) {
        Py_ssize_t count;
        if (read_size(b, i, &count) < 0) goto fail;
        if (count == 0) return result;
        for (Py_ssize_t k = 0; k < count; k++) {
            PyObject *key = read_text(b, i);
            if (key == NULL) goto fail;
            PyObject *value;
            if (doubles) {
                double d;
                value = read_double(b, i, &d) < 0 ? NULL : PyFloat_FromDouble(d);
            } else {
                value = read_text(b, i);
            }
            if (value == NULL) {
                Py_DECREF(key);
                goto fail;
            }
            int failed = PyDict_SetItem(result, key, value);
            Py_DECREF(key);
            Py_DECREF(value);
            if (failed) goto fail;
        }
    }
fail:
    Py_DECREF(result);
    return NULL;
}

/* A segments map: empty, the same bytes as the enclosing event's (a copy of its map),
 * or read. */
static PyObject *read_segments(const Buffer *b, Py_ssize_t *i, const Buffer *seg_raw,
                               PyObject *seg) {
    if (*i >= b->size) return NULL;
    if (b->data[*i] == 0) {
        *i += 1;
        return PyDict_New();
    }
    if (seg_raw->size > 0 && b->size - *i >= seg_raw->size &&
        memcmp(b->data + *i, seg_raw->data, (size_t)seg_raw->size) == 0) {
        *i += seg_raw->size;
        return PyDict_Copy(seg);
    }
    return read_map(b, i, 0);
}

/* object.__new__(cls) with its fields set through their slot descriptors; steals the
 * references in values (all non-NULL). */
static PyObject *build(PyTypeObject *cls, PyObject **fields, PyObject **values, int count) {
    PyObject *record = cls->tp_alloc(cls, 0);
    int failed = record == NULL;
    for (int k = 0; k < count; k++) {
        if (!failed) {
            descrsetfunc set = Py_TYPE(fields[k])->tp_descr_set;
            failed = set(fields[k], record, values[k]) < 0;
        }
        Py_DECREF(values[k]);
    }
    if (failed) {
        Py_XDECREF(record);
        return NULL;
    }
    return record;
}

static void release(PyObject **values, int count) {
    for (int k = 0; k < count; k++) Py_XDECREF(values[k]);
}

/* An optional field: a one-byte union index (0: null), as the Python readers take it. */
static int union_index(const Buffer *b, Py_ssize_t *i) {
    if (*i >= b->size) return -1;
    return b->data[(*i)++];
}

/* ["null", "double", "string"]: a prediction's value, a join event's label. */
static PyObject *read_optional_label(const Buffer *b, Py_ssize_t *i) {
    double d;
    switch (union_index(b, i)) {
    case 0:
        return Py_NewRef(Py_None);
    case 2:
        return read_double(b, i, &d) < 0 ? NULL : PyFloat_FromDouble(d);
    case 4:
        return read_text(b, i);
    default:
        return NULL;
    }
}

/* ["null", "string"] */
static PyObject *read_optional_text(const Buffer *b, Py_ssize_t *i) {
    switch (union_index(b, i)) {
    case 0:
        return Py_NewRef(Py_None);
    case 2:
        return read_text(b, i);
    default:
        return NULL;
    }
}

static PyObject *read_prediction(const Buffer *b, Py_ssize_t *i, const Buffer *seg_raw,
                                 PyObject *seg) {
    PyObject *v[PREDICTION_FIELDS] = {NULL};
    int64_t ts;
    double d;
    int branch;
    if ((v[0] = read_text(b, i)) == NULL) goto fail;
    if ((v[1] = read_text(b, i)) == NULL) goto fail;
    if ((v[2] = read_text(b, i)) == NULL) goto fail;
    branch = union_index(b, i); /* the role enum */
    if (branch < 0 || branch > 2 || branch & 1) goto fail;
    v[3] = Py_NewRef(roles[branch >> 1]);
    if (read_varint(b, i, &ts) < 0 || (v[4] = PyLong_FromLongLong(ts)) == NULL) goto fail;
    if ((v[5] = read_optional_label(b, i)) == NULL) goto fail;
    branch = union_index(b, i);
    if (branch == 0) {
        v[6] = Py_NewRef(Py_None);
    } else if (branch == 2) {
        if ((v[6] = read_map(b, i, 1)) == NULL) goto fail;
    } else {
        goto fail;
    }
    if (read_double(b, i, &d) < 0 || (v[7] = PyFloat_FromDouble(d)) == NULL) goto fail;
    if ((v[8] = read_optional_text(b, i)) == NULL) goto fail;
    if ((v[9] = read_segments(b, i, seg_raw, seg)) == NULL) goto fail;
    return build(prediction_type, prediction_fields, v, PREDICTION_FIELDS);
fail:
    release(v, PREDICTION_FIELDS);
    return NULL;
}

static PyObject *read_join_event(const Buffer *b, Py_ssize_t *i) {
    PyObject *v[JOIN_EVENT_FIELDS] = {NULL};
    PyObject *seg_bytes = NULL;
    Buffer seg_raw = {NULL, 0, NULL};
    int64_t ts;
    int branch = union_index(b, i); /* the kind enum */
    if (branch < 0 || branch > 4 || branch & 1) goto fail;
    v[0] = Py_NewRef(kinds[branch >> 1]);
    if ((v[1] = read_text(b, i)) == NULL) goto fail;
    if ((v[2] = read_text(b, i)) == NULL) goto fail;
    if (read_varint(b, i, &ts) < 0 || (v[3] = PyLong_FromLongLong(ts)) == NULL) goto fail;
    /* The nested records nearly always carry these segments again, byte for byte. */
    Py_ssize_t start = *i;
    if ((v[6] = read_segments(b, i, &seg_raw, NULL)) == NULL) goto fail;
    if (*i - start > 1) {
        seg_raw.data = b->data + start;
        seg_raw.size = *i - start;
    }
    for (int side = 4; side <= 5; side++) { /* live, candidate */
        branch = union_index(b, i);
        if (branch == 0) {
            v[side] = Py_NewRef(Py_None);
        } else if (branch == 2) {
            if ((v[side] = read_prediction(b, i, &seg_raw, v[6])) == NULL) goto fail;
        } else {
            goto fail;
        }
    }
    if ((v[7] = read_optional_label(b, i)) == NULL) goto fail;
    if ((v[8] = read_optional_text(b, i)) == NULL) goto fail;
    branch = union_index(b, i);
    if (branch == 0) {
        v[9] = Py_NewRef(Py_None);
    } else if (branch == 2) {
        seg_bytes = seg_raw.size ? PyBytes_FromStringAndSize((const char *)seg_raw.data,
                                                             seg_raw.size)
                                 : Py_NewRef(empty_bytes);
        if (seg_bytes == NULL) goto fail;
        PyObject *found = PyObject_CallFunction(read_model_input, "OnOO", b->object, *i,
                                                seg_bytes, v[6]);
        Py_CLEAR(seg_bytes);
        if (found == NULL) goto fail;
        Py_ssize_t end;
        if (!PyTuple_Check(found) || PyTuple_GET_SIZE(found) != 2 ||
            (end = PyLong_AsSsize_t(PyTuple_GET_ITEM(found, 1))) < 0) {
            Py_DECREF(found);
            if (!PyErr_Occurred()) {
                PyErr_SetString(PyExc_TypeError, "the ModelInput reader returned no (record, i)");
            }
            goto fail;
        }
        v[9] = Py_NewRef(PyTuple_GET_ITEM(found, 0));
        Py_DECREF(found);
        *i = end;
    } else {
        goto fail;
    }
    return build(join_event_type, join_event_fields, v, JOIN_EVENT_FIELDS);
fail:
    release(v, JOIN_EVENT_FIELDS);
    return NULL;
}

/* A JoinEventBatch: an array of JoinEvents, in blocks up to the 0 end marker. */
static PyObject *read_join_event_batch(const Buffer *b, Py_ssize_t *i) {
    PyObject *events = PyList_New(0);
    if (events == NULL) return NULL;
    for (;;) {
        Py_ssize_t count;
        if (read_size(b, i, &count) < 0) goto fail;
        if (count == 0) break;
        for (Py_ssize_t k = 0; k < count; k++) {
            PyObject *event = read_join_event(b, i);
            if (event == NULL) goto fail;
            int failed = PyList_Append(events, event);
            Py_DECREF(event);
            if (failed) goto fail;
        }
    }
    PyObject *v[1] = {PyList_AsTuple(events)};
    Py_DECREF(events);
    if (v[0] == NULL) return NULL;
    return build(batch_type, batch_fields, v, 1);
fail:
    Py_DECREF(events);
    return NULL;
}

static PyObject *read_ground_truth(const Buffer *b, Py_ssize_t *i) {
    PyObject *v[GROUND_TRUTH_FIELDS] = {NULL};
    int64_t ts;
    double d;
    if ((v[0] = read_text(b, i)) == NULL) goto fail;
    if ((v[1] = read_text(b, i)) == NULL) goto fail;
    if (read_varint(b, i, &ts) < 0 || (v[2] = PyLong_FromLongLong(ts)) == NULL) goto fail;
    int branch = union_index(b, i); /* ["double", "string"] */
    if (branch == 2) {
        if ((v[3] = read_text(b, i)) == NULL) goto fail;
    } else if (branch == 0) {
        if (read_double(b, i, &d) < 0 || (v[3] = PyFloat_FromDouble(d)) == NULL) goto fail;
    } else {
        goto fail;
    }
    return build(ground_truth_type, ground_truth_fields, v, GROUND_TRUTH_FIELDS);
fail:
    release(v, GROUND_TRUTH_FIELDS);
    return NULL;
}

typedef PyObject *(*Reader)(const Buffer *, Py_ssize_t *);

static PyObject *read_prediction_message(const Buffer *b, Py_ssize_t *i) {
    Buffer none = {NULL, 0, NULL};
    return read_prediction(b, i, &none, NULL);
}

/* A whole message (header included): the record, or None to let fastavro decide. */
static PyObject *decode(PyObject *data, Reader read) {
    if (prediction_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "streams.codec._cread: configure() first");
        return NULL;
    }
    if (!PyBytes_Check(data)) {
        PyErr_SetString(PyExc_TypeError, "the fast readers take bytes");
        return NULL;
    }
    Buffer b = {(const unsigned char *)PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data), data};
    Py_ssize_t i = HEADER_SIZE;
    if (b.size < HEADER_SIZE) Py_RETURN_NONE;
    PyObject *record = read(&b, &i);
    if (record == NULL) {
        if (PyErr_Occurred() && !PyErr_ExceptionMatches(give_up_errors)) return NULL;
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    if (i != b.size) {
        Py_DECREF(record);
        Py_RETURN_NONE;
    }
    return record;
}

static PyObject *decode_prediction(PyObject *module, PyObject *data) {
    return decode(data, read_prediction_message);
}

static PyObject *decode_ground_truth(PyObject *module, PyObject *data) {
    return decode(data, read_ground_truth);
}

static PyObject *decode_join_event(PyObject *module, PyObject *data) {
    return decode(data, read_join_event);
}

static PyObject *decode_join_event_batch(PyObject *module, PyObject *data) {
    return decode(data, read_join_event_batch);
}

static int take_descriptors(PyObject *names, PyObject **out, Py_ssize_t count) {
    if (!PyTuple_Check(names) || PyTuple_GET_SIZE(names) != count) {
        PyErr_Format(PyExc_ValueError, "expected a tuple of %zd slot descriptors", count);
        return -1;
    }
    for (Py_ssize_t k = 0; k < count; k++) {
        PyObject *descriptor = PyTuple_GET_ITEM(names, k);
        if (Py_TYPE(descriptor)->tp_descr_set == NULL) {
            PyErr_Format(PyExc_TypeError, "field %zd: %R is no settable descriptor", k,
                         descriptor);
            return -1;
        }
        Py_XSETREF(out[k], Py_NewRef(descriptor));
    }
    return 0;
}

static int take_type(PyObject *cls, PyTypeObject **out) {
    if (!PyType_Check(cls)) {
        PyErr_Format(PyExc_TypeError, "%R is not a class", cls);
        return -1;
    }
    Py_XSETREF(*out, (PyTypeObject *)Py_NewRef(cls));
    return 0;
}

static PyObject *configure(PyObject *module, PyObject *args) {
    PyObject *prediction, *p_fields, *ground_truth, *gt_fields, *join_event, *je_fields;
    PyObject *batch, *b_fields, *role_members, *kind_members, *model_input_reader, *errors;
    if (!PyArg_ParseTuple(args, "OOOOOOOOOOOO:configure", &prediction, &p_fields,
                          &ground_truth, &gt_fields, &join_event, &je_fields, &batch, &b_fields,
                          &role_members, &kind_members, &model_input_reader, &errors)) {
        return NULL;
    }
    if (!PyTuple_Check(role_members) || PyTuple_GET_SIZE(role_members) != 2 ||
        !PyTuple_Check(kind_members) || PyTuple_GET_SIZE(kind_members) != 3 ||
        !PyCallable_Check(model_input_reader) || !PyTuple_Check(errors)) {
        PyErr_SetString(PyExc_TypeError,
                        "configure(..., roles (2), kinds (3), read_model_input, errors)");
        return NULL;
    }
    if (take_type(prediction, &prediction_type) < 0 ||
        take_type(ground_truth, &ground_truth_type) < 0 ||
        take_type(join_event, &join_event_type) < 0 || take_type(batch, &batch_type) < 0 ||
        take_descriptors(b_fields, batch_fields, 1) < 0 ||
        take_descriptors(p_fields, prediction_fields, PREDICTION_FIELDS) < 0 ||
        take_descriptors(gt_fields, ground_truth_fields, GROUND_TRUTH_FIELDS) < 0 ||
        take_descriptors(je_fields, join_event_fields, JOIN_EVENT_FIELDS) < 0) {
        return NULL;
    }
    for (int k = 0; k < 2; k++) Py_XSETREF(roles[k], Py_NewRef(PyTuple_GET_ITEM(role_members, k)));
    for (int k = 0; k < 3; k++) Py_XSETREF(kinds[k], Py_NewRef(PyTuple_GET_ITEM(kind_members, k)));
    Py_XSETREF(read_model_input, Py_NewRef(model_input_reader));
    Py_XSETREF(give_up_errors, Py_NewRef(errors));
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"configure", configure, METH_VARARGS,
     "configure(Prediction, its slot descriptors, GroundTruth, ..., JoinEvent, ..., "
     "JoinEventBatch, ..., roles, kinds, read_model_input, give_up_errors): what the "
     "readers build records with."},
    {"decode_prediction", decode_prediction, METH_O,
     "A whole Prediction message, or None (fastavro decides)."},
    {"decode_ground_truth", decode_ground_truth, METH_O,
     "A whole GroundTruth message, or None (fastavro decides)."},
    {"decode_join_event", decode_join_event, METH_O,
     "A whole JoinEvent message, or None (fastavro decides)."},
    {"decode_join_event_batch", decode_join_event_batch, METH_O,
     "A whole JoinEventBatch message, or None (fastavro decides)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_cread",
    "C readers of Prediction, GroundTruth, JoinEvent and JoinEventBatch (streams.codec.fastread).",
    -1,
    methods,
};

PyMODINIT_FUNC PyInit__cread(void) {
    empty_bytes = PyBytes_FromStringAndSize(NULL, 0);
    if (empty_bytes == NULL) return NULL;
    return PyModule_Create(&module);
}
