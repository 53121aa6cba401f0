/* The ModelInput, Prediction, GroundTruth, JoinEvent and JoinEventBatch readers of
 * streams/codec/fastread.py in C.
 *
 * Same records, same give-ups: a reader returns None for anything the Python reader
 * returns None for (a multi-byte union index, a negative map count, a varint past 64
 * bits, bad UTF-8, a short or over-long buffer), and the caller then runs fastavro.
 * tests/unit/codec/test_cread.py holds the two to the same results on valid, truncated
 * and corrupted bytes; test_fast.py holds both to fastavro.
 *
 * Records are built as the Python readers build them: object.__new__ of the class, then
 * each field's slot descriptor __set__ (frozen dataclasses refuse setattr). The classes,
 * descriptors, enum members, fastread's cache of feature names and json.loads come from
 * configure(), called once by fastread.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#include "../_avro.h"

#define HEADER_SIZE 5
#define PREDICTION_FIELDS 16
#define GROUND_TRUTH_FIELDS 4
#define JOIN_EVENT_FIELDS 10
#define MODEL_INPUT_FIELDS 7

static PyTypeObject *prediction_type, *ground_truth_type, *join_event_type, *batch_type;
static PyTypeObject *model_input_type;
static PyObject *prediction_fields[PREDICTION_FIELDS];
static PyObject *ground_truth_fields[GROUND_TRUTH_FIELDS];
static PyObject *join_event_fields[JOIN_EVENT_FIELDS];
static PyObject *batch_fields[1];
static PyObject *model_input_fields[MODEL_INPUT_FIELDS];
static PyObject *roles[2], *kinds[3];
static PyObject *names_of;   /* (joined feature names: bytes) -> list[str], cached */
static PyObject *json_loads; /* extra_json -> its value */
static PyObject *separator;  /* between categorical values */
static PyObject *give_up_errors;   /* exceptions that mean "let fastavro decide" */

/* A reader returns -1 or NULL to give up (no exception set) or to fail (exception set);
 * decode() counts the exceptions in give_up_errors (a UTF-8 error among them) as a give-up. */

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

/* ["null", "double"]: a prediction's cost fields. */
static PyObject *read_optional_double(const Buffer *b, Py_ssize_t *i) {
    double d;
    switch (union_index(b, i)) {
    case 0:
        return Py_NewRef(Py_None);
    case 2:
        return read_double(b, i, &d) < 0 ? NULL : PyFloat_FromDouble(d);
    default:
        return NULL;
    }
}

/* The fields in schema order; v[] holds them in the dataclass's order, where segments
 * (9) comes before the cost fields (10-15) that the schema puts before it. */
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
    if ((v[10] = read_optional_double(b, i)) == NULL) goto fail;
    if ((v[11] = read_optional_text(b, i)) == NULL) goto fail;
    for (int k = 12; k < PREDICTION_FIELDS; k++)
        if ((v[k] = read_optional_double(b, i)) == NULL) goto fail;
    if ((v[9] = read_segments(b, i, seg_raw, seg)) == NULL) goto fail;
    return build(prediction_type, prediction_fields, v, PREDICTION_FIELDS);
fail:
    release(v, PREDICTION_FIELDS);
    return NULL;
}

/* A string field's raw bytes: (pointer, length) into the buffer, or -1. */
static int read_raw(const Buffer *b, Py_ssize_t *i, const char **start, Py_ssize_t *n) {
    if (read_size(b, i, n) < 0) return -1;
    *start = (const char *)b->data + *i;
    *i += *n;
    return 0;
}

/* Feature names from their joined bytes, through fastread's cache. */
static PyObject *feature_names(const Buffer *b, Py_ssize_t *i) {
    const char *start;
    Py_ssize_t n;
    if (read_raw(b, i, &start, &n) < 0) return NULL;
    PyObject *raw = PyBytes_FromStringAndSize(start, n);
    if (raw == NULL) return NULL;
    PyObject *names = PyObject_CallOneArg(names_of, raw);
    Py_DECREF(raw);
    if (names != NULL && !PyList_CheckExact(names)) {
        Py_DECREF(names);
        PyErr_SetString(PyExc_TypeError, "names_of returned no list");
        return NULL;
    }
    return names;
}

static PyObject *zip_dict(PyObject *keys, PyObject *values) {
    PyObject *result = PyDict_New();
    if (result == NULL) return NULL;
    for (Py_ssize_t k = 0; k < PyList_GET_SIZE(keys); k++) {
        if (PyDict_SetItem(result, PyList_GET_ITEM(keys, k), PyList_GET_ITEM(values, k)) < 0) {
            Py_DECREF(result);
            return NULL;
        }
    }
    return result;
}

static PyObject *read_model_input(const Buffer *b, Py_ssize_t *i, const Buffer *seg_raw,
                                  PyObject *seg) {
    PyObject *v[MODEL_INPUT_FIELDS] = {NULL};
    PyObject *names = NULL, *values = NULL;
    const char *start;
    Py_ssize_t n;
    int64_t ts;
    if ((v[0] = read_text(b, i)) == NULL) goto fail;
    if ((v[1] = read_text(b, i)) == NULL) goto fail;
    if (read_varint(b, i, &ts) < 0 || (v[2] = PyLong_FromLongLong(ts)) == NULL) goto fail;
    /* numeric: names, then their values as little-endian doubles */
    if ((names = feature_names(b, i)) == NULL) goto fail;
    if (read_raw(b, i, &start, &n) < 0 || n != 8 * PyList_GET_SIZE(names)) goto fail;
    if ((v[3] = PyDict_New()) == NULL) goto fail;
    for (Py_ssize_t k = 0; k < PyList_GET_SIZE(names); k++) {
        PyObject *value = PyFloat_FromDouble(PyFloat_Unpack8(start + 8 * k, 1));
        int failed = value == NULL || PyDict_SetItem(v[3], PyList_GET_ITEM(names, k), value);
        Py_XDECREF(value);
        if (failed) goto fail;
    }
    Py_CLEAR(names);
    /* categorical: names, then the values joined by the separator */
    if ((names = feature_names(b, i)) == NULL) goto fail;
    if (read_raw(b, i, &start, &n) < 0) goto fail;
    PyObject *joined = PyUnicode_DecodeUTF8(start, n, NULL); /* must be UTF-8 even unused */
    if (joined == NULL) goto fail;
    if (PyList_GET_SIZE(names) == 0) {
        Py_DECREF(joined);
        v[4] = PyDict_New();
    } else {
        values = PyUnicode_Split(joined, separator, -1);
        Py_DECREF(joined);
        if (values == NULL || PyList_GET_SIZE(values) != PyList_GET_SIZE(names)) goto fail;
        v[4] = zip_dict(names, values);
    }
    if (v[4] == NULL) goto fail;
    if ((v[5] = read_segments(b, i, seg_raw, seg)) == NULL) goto fail;
    switch (union_index(b, i)) {
    case 0:
        v[6] = Py_NewRef(Py_None);
        break;
    case 2: {
        PyObject *text = read_text(b, i);
        if (text == NULL) goto fail;
        v[6] = PyObject_CallOneArg(json_loads, text);
        Py_DECREF(text);
        if (v[6] == NULL) goto fail;
        break;
    }
    default:
        goto fail;
    }
    Py_XDECREF(names);
    Py_XDECREF(values);
    return build(model_input_type, model_input_fields, v, MODEL_INPUT_FIELDS);
fail:
    Py_XDECREF(names);
    Py_XDECREF(values);
    release(v, MODEL_INPUT_FIELDS);
    return NULL;
}

static PyObject *read_join_event(const Buffer *b, Py_ssize_t *i) {
    PyObject *v[JOIN_EVENT_FIELDS] = {NULL};
    Buffer seg_raw = {NULL, 0};
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
        if ((v[9] = read_model_input(b, i, &seg_raw, v[6])) == NULL) goto fail;
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
    Buffer none = {NULL, 0};
    return read_prediction(b, i, &none, NULL);
}

static PyObject *read_model_input_message(const Buffer *b, Py_ssize_t *i) {
    Buffer none = {NULL, 0};
    return read_model_input(b, i, &none, NULL);
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
    Buffer b = {(const unsigned char *)PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data)};
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

static PyObject *decode_model_input(PyObject *module, PyObject *data) {
    return decode(data, read_model_input_message);
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

static PyObject *configure(PyObject *module, PyObject *args, PyObject *kwargs) {
    static char *keywords[] = {
        "prediction", "ground_truth", "join_event", "join_event_batch", "model_input",
        "roles", "kinds", "names_of", "json_loads", "separator", "give_up_errors", NULL,
    };
    PyObject *prediction, *ground_truth, *join_event, *batch, *model_input;
    PyObject *role_members, *kind_members, *names, *loads, *sep, *errors;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "$OOOOOOOOOUO:configure", keywords,
                                     &prediction, &ground_truth, &join_event, &batch,
                                     &model_input, &role_members, &kind_members, &names, &loads,
                                     &sep, &errors)) {
        return NULL;
    }
    if (!PyTuple_Check(role_members) || PyTuple_GET_SIZE(role_members) != 2 ||
        !PyTuple_Check(kind_members) || PyTuple_GET_SIZE(kind_members) != 3 ||
        !PyCallable_Check(names) || !PyCallable_Check(loads) || !PyTuple_Check(errors)) {
        PyErr_SetString(PyExc_TypeError,
                        "configure: roles (2), kinds (3), names_of and json_loads callables, "
                        "give_up_errors a tuple");
        return NULL;
    }
    /* Each record: (class, its slot descriptors in field order). */
    struct {
        PyObject *given;
        PyTypeObject **type;
        PyObject **fields;
        Py_ssize_t count;
    } records[] = {
        {prediction, &prediction_type, prediction_fields, PREDICTION_FIELDS},
        {ground_truth, &ground_truth_type, ground_truth_fields, GROUND_TRUTH_FIELDS},
        {join_event, &join_event_type, join_event_fields, JOIN_EVENT_FIELDS},
        {batch, &batch_type, batch_fields, 1},
        {model_input, &model_input_type, model_input_fields, MODEL_INPUT_FIELDS},
    };
    for (size_t k = 0; k < sizeof records / sizeof records[0]; k++) {
        PyObject *given = records[k].given;
        if (!PyTuple_Check(given) || PyTuple_GET_SIZE(given) != 2) {
            PyErr_SetString(PyExc_TypeError, "configure: each record is (class, descriptors)");
            return NULL;
        }
        if (take_type(PyTuple_GET_ITEM(given, 0), records[k].type) < 0 ||
            take_descriptors(PyTuple_GET_ITEM(given, 1), records[k].fields, records[k].count) <
                0) {
            return NULL;
        }
    }
    for (int k = 0; k < 2; k++) Py_XSETREF(roles[k], Py_NewRef(PyTuple_GET_ITEM(role_members, k)));
    for (int k = 0; k < 3; k++) Py_XSETREF(kinds[k], Py_NewRef(PyTuple_GET_ITEM(kind_members, k)));
    Py_XSETREF(names_of, Py_NewRef(names));
    Py_XSETREF(json_loads, Py_NewRef(loads));
    Py_XSETREF(separator, Py_NewRef(sep));
    Py_XSETREF(give_up_errors, Py_NewRef(errors));
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"configure", (PyCFunction)(void (*)(void))configure, METH_VARARGS | METH_KEYWORDS,
     "configure(*, prediction, ground_truth, join_event, join_event_batch, model_input "
     "(each: (class, slot descriptors)), roles, kinds, names_of, json_loads, separator, "
     "give_up_errors): what the readers build records with."},
    {"decode_model_input", decode_model_input, METH_O,
     "A whole ModelInput message, or None (fastavro decides)."},
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

/* Multi-phase initialisation (PEP 489): nothing to run at exec; configure() sets up. */
static PyModuleDef_Slot module_slots[] = {{0, NULL}};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_cread",
    .m_doc = "C readers of the hot records (see streams.codec.fastread).",
    .m_size = 0,
    .m_methods = methods,
    .m_slots = module_slots,
};

PyMODINIT_FUNC PyInit__cread(void) { return PyModuleDef_Init(&module); }
