/* The Avro primitives of the C modules (streams/codec/_cread.c, streams/join/_cslots.c):
 * the C side of streams/avro_bytes.py, which the Python twins use.
 *
 * Each reader takes the buffer and a pointer to the index it starts at, moves the index
 * past what it read and returns -1 (or NULL) to give up: a short buffer, a varint past
 * 64 bits (where fastavro's C reader wraps around and Python's ints would not), a
 * negative or over-long length, bad UTF-8 (NULL with a UnicodeDecodeError set).
 */
#ifndef SHADOW_EVAL_AVRO_H
#define SHADOW_EVAL_AVRO_H

#include <Python.h>
#include <stdint.h>
#include <string.h>

typedef struct {
    const unsigned char *data;
    Py_ssize_t size;
} Buffer;

static inline int read_varint(const Buffer *b, Py_ssize_t *i, int64_t *out) {
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

/* A length or block count that fits in what is left; a negative one (a block with its
 * byte size) gives up. A count may exceed the bytes left only if its items were empty,
 * which no reader here accepts: every item has at least one byte. */
static inline int read_size(const Buffer *b, Py_ssize_t *i, Py_ssize_t *out) {
    int64_t n;
    if (read_varint(b, i, &n) < 0 || n < 0 || n > b->size - *i) return -1;
    *out = (Py_ssize_t)n;
    return 0;
}

static inline PyObject *read_text(const Buffer *b, Py_ssize_t *i) {
    Py_ssize_t n;
    if (read_size(b, i, &n) < 0) return NULL;
    PyObject *text = PyUnicode_DecodeUTF8((const char *)b->data + *i, n, NULL);
    *i += n;
    return text;
}

static inline PyObject *read_bytes(const Buffer *b, Py_ssize_t *i) {
    Py_ssize_t n;
    if (read_size(b, i, &n) < 0) return NULL;
    PyObject *value = PyBytes_FromStringAndSize((const char *)b->data + *i, n);
    *i += n;
    return value;
}

/* A one-byte union branch index, as the Python readers take it (or -1). */
static inline int union_index(const Buffer *b, Py_ssize_t *i) {
    if (*i >= b->size) return -1;
    return b->data[(*i)++];
}

static inline int read_double(const Buffer *b, Py_ssize_t *i, double *out) {
    if (b->size - *i < 8) return -1;
    *out = PyFloat_Unpack8((const char *)b->data + *i, 1);
    *i += 8;
    return (*out == -1.0 && PyErr_Occurred()) ? -1 : 0;
}

/* ------------------------------------------------------------------------ writing
 * Writers put into a buffer measured first (so the bytes are allocated once) and return
 * the position after what they wrote. */

static inline uint64_t zigzag(int64_t n) { return ((uint64_t)n << 1) ^ (uint64_t)(n >> 63); }

static inline size_t varint_size(uint64_t n) {
    size_t size = 1;
    while (n > 0x7F) {
        n >>= 7;
        size++;
    }
    return size;
}

static inline char *put_varint(char *out, uint64_t n) {
    while (n > 0x7F) {
        *out++ = (char)((n & 0x7F) | 0x80);
        n >>= 7;
    }
    *out++ = (char)n;
    return out;
}

/* The bytes of a length-prefixed field of n bytes. */
static inline size_t sized(Py_ssize_t n) { return varint_size(zigzag(n)) + (size_t)n; }

/* A bytes value's bytes, with no length before them. */
static inline char *put_raw(char *out, PyObject *value) {
    Py_ssize_t n = PyBytes_GET_SIZE(value);
    memcpy(out, PyBytes_AS_STRING(value), (size_t)n);
    return out + n;
}

/* Avro bytes: length, then the bytes. */
static inline char *put_bytes(char *out, PyObject *value) {
    return put_raw(put_varint(out, zigzag(PyBytes_GET_SIZE(value))), value);
}

/* Avro string of a str whose UTF-8 the caller has already asked for (str caches it). */
static inline char *put_text(char *out, PyObject *text) {
    Py_ssize_t n;
    const char *utf8 = PyUnicode_AsUTF8AndSize(text, &n);
    out = put_varint(out, zigzag(n));
    memcpy(out, utf8, (size_t)n);
    return out + n;
}

#endif
