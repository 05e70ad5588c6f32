/* engine._numbers: the read of a bare-digit address on every message (optional; engine/numbers.py keeps the
 * pure-Python path, used when this module is absent or TELFILTER_NUMBERS_PURE=1, and a test checks both agree).
 *
 * bare_digits(s) -> int | None: int(s) when s is 1 to 18 ASCII digits (what normalise_number reads most
 *   addresses as), else None. In Python that is s.isdigit(), s.isascii() and int(s): ~1,300 instructions
 *   (int() of a str copies it through _PyUnicode_TransformDecimalAndSpaceToASCII first); ~150 here.
 *   18 digits always fit a long long; a longer run is no number normalise_number keeps.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

static PyObject *bare_digits(PyObject *self, PyObject *s)
{
    if (!PyUnicode_Check(s)) {
        PyErr_SetString(PyExc_TypeError, "bare_digits() takes a str");
        return NULL;
    }
    if (PyUnicode_READY(s) < 0)
        return NULL;
    Py_ssize_t n = PyUnicode_GET_LENGTH(s);
    if (!PyUnicode_IS_ASCII(s) || n < 1 || n > 18)
        Py_RETURN_NONE;
    const Py_UCS1 *p = PyUnicode_1BYTE_DATA(s);
    long long v = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned d = (unsigned)p[i] - '0';
        if (d > 9)
            Py_RETURN_NONE;
        v = v * 10 + d;
    }
    return PyLong_FromLongLong(v);
}

static PyMethodDef methods[] = {
    {"bare_digits", bare_digits, METH_O, "bare_digits(s) -> int(s) when s is 1 to 18 ASCII digits, else None"},
    {NULL, NULL, 0, NULL}
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_numbers", NULL, -1, methods};

PyMODINIT_FUNC PyInit__numbers(void) { return PyModule_Create(&module); }
