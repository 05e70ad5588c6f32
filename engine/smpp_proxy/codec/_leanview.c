/* engine.smpp_proxy.codec._leanview: lean.view_sm's common case in C (optional; lean.py keeps the pure-Python
 * view, used when this module is absent or TELFILTER_LEAN_PURE=1, and a test checks both give the same views).
 *
 * viewer(cls, slots, fallback) -> view_sm: a function called as lean.view_sm is. For a whole submit_sm /
 *   deliver_sm given as exact bytes with its command_id, sequence_number and status (the ESME read's call), whose
 *   C-Octet Strings all end within their sizes, whose two times are empty, whose sm_length fits, with no TLV and
 *   esm_class without UDHI (nearly every submit_sm), it fills a `cls` (lean.SmView) as the Python view does,
 *   field for field. Anything else -- another call, an error to raise, a time to check, a TLV, a UDH -- is
 *   `fallback` (the Python view_sm) with the same arguments: errors are raised there, worded there.
 *   In Python the view costs ~18,000 instructions (its bytes.find and decode calls, 32 slot stores); ~1,500 here.
 *   The slots are filled through their member descriptors' offsets, read once from `cls` (plain __slots__).
 * header_edits(with_sequence, as_request) -> the two header edits of lean.py in C for their common case (below).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include "structmember.h"          /* T_OBJECT_EX */

enum {
    S_RAW, S_COMMAND_ID, S_COMMAND_STATUS, S_SEQUENCE_NUMBER, S_SERVICE_TYPE, S_SOURCE_ADDR_TON, S_SOURCE_ADDR_NPI,
    S_SOURCE_ADDR, S_DEST_ADDR_TON, S_DEST_ADDR_NPI, S_DESTINATION_ADDR, S_ESM_CLASS, S_PROTOCOL_ID,
    S_PRIORITY_FLAG, S_SCHEDULE_DELIVERY_TIME, S_VALIDITY_PERIOD, S_REGISTERED_DELIVERY, S_REPLACE_IF_PRESENT_FLAG,
    S_DATA_CODING, S_SM_DEFAULT_MSG_ID, S_SHORT_MESSAGE, S_SM_AT, S_TLV_AT, S_PAYLOAD_AT, S_PAYLOAD_LEN,
    S_PAYLOAD_COUNT, S_UDH_LEN, S_UDH_CONCAT, S_UDH_ERROR, S_SAR_CONCAT, S_SAR_ERROR, S_TLVS, N_SLOTS
};

/* the names in lean.SmView.__slots__, in the enum's order (viewer checks them) */
static const char *slot_names[N_SLOTS] = {
    "raw", "command_id", "command_status", "sequence_number", "service_type", "source_addr_ton",
    "source_addr_npi", "source_addr", "dest_addr_ton", "dest_addr_npi", "destination_addr", "esm_class",
    "protocol_id", "priority_flag", "schedule_delivery_time", "validity_period", "registered_delivery",
    "replace_if_present_flag", "data_coding", "sm_default_msg_id", "short_message", "sm_at", "tlv_at",
    "payload_at", "payload_len", "payload_count", "udh_len", "udh_concat", "udh_error", "sar_concat", "sar_error",
    "_tlvs"
};

#define SUBMIT_SM 0x00000004L
#define DELIVER_SM 0x00000005L
#define ESM_UDHI 0x40

typedef struct {
    PyObject_HEAD
    PyTypeObject *cls;
    PyObject *fallback;
    vectorcallfunc vectorcall;
    Py_ssize_t offset[N_SLOTS];
} Viewer;

/* the NUL ending a C-Octet String that starts at `o` within `limit` octets (its size), or -1 */
static Py_ssize_t nul_within(const unsigned char *p, Py_ssize_t n, Py_ssize_t o, Py_ssize_t limit)
{
    Py_ssize_t end = o + limit < n ? o + limit : n;
    for (Py_ssize_t i = o; i < end; i++)
        if (p[i] == 0)
            return i;
    return -1;
}

/* the view, or NULL without an exception: not the common case (the fallback's) */
static PyObject *view_common(Viewer *w, PyObject *raw, PyObject *cid_o, PyObject *seq_o, PyObject *status_o)
{
    long cid = PyLong_AsLong(cid_o);
    if (cid == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        return NULL;
    }
    if (cid != SUBMIT_SM && cid != DELIVER_SM)
        return NULL;
    const unsigned char *p = (const unsigned char *)PyBytes_AS_STRING(raw);
    Py_ssize_t n = PyBytes_GET_SIZE(raw);
    Py_ssize_t e_st = nul_within(p, n, 16, 6);                 /* service_type: 6 octets */
    if (e_st < 0)
        return NULL;
    Py_ssize_t o = e_st + 1;
    if (o + 2 > n)
        return NULL;
    unsigned s_ton = p[o], s_npi = p[o + 1];
    o += 2;
    Py_ssize_t o_src = o, e_src = nul_within(p, n, o, 21);    /* source_addr: 21 */
    if (e_src < 0)
        return NULL;
    o = e_src + 1;
    if (o + 2 > n)
        return NULL;
    unsigned d_ton = p[o], d_npi = p[o + 1];
    o += 2;
    Py_ssize_t o_dst = o, e_dst = nul_within(p, n, o, 21);    /* destination_addr: 21 */
    if (e_dst < 0)
        return NULL;
    o = e_dst + 1;
    if (o + 3 > n)
        return NULL;
    unsigned esm = p[o], pid = p[o + 1], prio = p[o + 2];
    if (esm & ESM_UDHI)
        return NULL;
    o += 3;
    if (!(o < n && p[o] == 0))                                /* schedule_delivery_time: empty only */
        return NULL;
    o += 1;
    if (!(o < n && p[o] == 0))                                /* validity_period: empty only */
        return NULL;
    o += 1;
    if (o + 5 > n)
        return NULL;
    unsigned reg = p[o], rep = p[o + 1], dc = p[o + 2], smdef = p[o + 3], ln = p[o + 4];
    o += 4;
    if (ln > 254 || o + 1 + (Py_ssize_t)ln > n)
        return NULL;
    Py_ssize_t sm_at = o;
    o += 1 + ln;
    if (o != n)                                               /* a TLV: the Python view's */
        return NULL;

    PyObject *vals[N_SLOTS] = {NULL};
    vals[S_SERVICE_TYPE] = PyUnicode_DecodeLatin1((const char *)p + 16, e_st - 16, NULL);
    vals[S_SOURCE_ADDR] = PyUnicode_DecodeLatin1((const char *)p + o_src, e_src - o_src, NULL);
    vals[S_DESTINATION_ADDR] = PyUnicode_DecodeLatin1((const char *)p + o_dst, e_dst - o_dst, NULL);
    vals[S_SCHEDULE_DELIVERY_TIME] = PyUnicode_FromStringAndSize("", 0);
    vals[S_VALIDITY_PERIOD] = PyUnicode_FromStringAndSize("", 0);
    vals[S_SHORT_MESSAGE] = PyBytes_FromStringAndSize((const char *)p + sm_at + 1, ln);
    vals[S_SOURCE_ADDR_TON] = PyLong_FromLong(s_ton);
    vals[S_SOURCE_ADDR_NPI] = PyLong_FromLong(s_npi);
    vals[S_DEST_ADDR_TON] = PyLong_FromLong(d_ton);
    vals[S_DEST_ADDR_NPI] = PyLong_FromLong(d_npi);
    vals[S_ESM_CLASS] = PyLong_FromLong(esm);
    vals[S_PROTOCOL_ID] = PyLong_FromLong(pid);
    vals[S_PRIORITY_FLAG] = PyLong_FromLong(prio);
    vals[S_REGISTERED_DELIVERY] = PyLong_FromLong(reg);
    vals[S_REPLACE_IF_PRESENT_FLAG] = PyLong_FromLong(rep);
    vals[S_DATA_CODING] = PyLong_FromLong(dc);
    vals[S_SM_DEFAULT_MSG_ID] = PyLong_FromLong(smdef);
    vals[S_SM_AT] = PyLong_FromSsize_t(sm_at);
    vals[S_TLV_AT] = PyLong_FromSsize_t(n);
    vals[S_PAYLOAD_AT] = PyLong_FromLong(-1);
    vals[S_PAYLOAD_LEN] = PyLong_FromLong(0);
    vals[S_PAYLOAD_COUNT] = PyLong_FromLong(0);
    vals[S_UDH_LEN] = PyLong_FromLong(0);
    vals[S_RAW] = Py_NewRef(raw);
    vals[S_COMMAND_ID] = Py_NewRef(cid_o);
    vals[S_COMMAND_STATUS] = Py_NewRef(status_o);
    vals[S_SEQUENCE_NUMBER] = Py_NewRef(seq_o);
    vals[S_UDH_CONCAT] = Py_NewRef(Py_None);
    vals[S_UDH_ERROR] = Py_NewRef(Py_None);
    vals[S_SAR_CONCAT] = Py_NewRef(Py_None);
    vals[S_SAR_ERROR] = Py_NewRef(Py_None);
    vals[S_TLVS] = Py_NewRef(Py_None);
    PyObject *v = NULL;
    for (int i = 0; i < N_SLOTS; i++)
        if (vals[i] == NULL)
            goto fail;
    v = w->cls->tp_alloc(w->cls, 0);
    if (v == NULL)
        goto fail;
    for (int i = 0; i < N_SLOTS; i++)
        *(PyObject **)((char *)v + w->offset[i]) = vals[i];     /* (references handed over) */
    return v;
fail:
    for (int i = 0; i < N_SLOTS; i++)
        Py_XDECREF(vals[i]);
    return NULL;            /* with the exception set (memory) */
}

static PyObject *viewer_call(PyObject *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    Viewer *w = (Viewer *)self;
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (nargs == 4 && kwnames == NULL && PyBytes_CheckExact(args[0]) && PyLong_CheckExact(args[1])) {
        PyObject *v = view_common(w, args[0], args[1], args[2], args[3]);
        if (v != NULL || PyErr_Occurred())
            return v;
    }
    return PyObject_Vectorcall(w->fallback, args, nargsf, kwnames);
}

static void viewer_dealloc(PyObject *self)
{
    Viewer *w = (Viewer *)self;
    PyObject_GC_UnTrack(self);
    Py_CLEAR(w->cls);
    Py_CLEAR(w->fallback);
    PyObject_GC_Del(self);
}

static int viewer_traverse(PyObject *self, visitproc visit, void *arg)
{
    Viewer *w = (Viewer *)self;
    Py_VISIT(w->cls);
    Py_VISIT(w->fallback);
    return 0;
}

static PyTypeObject ViewerType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "engine.smpp_proxy.codec._leanview.Viewer",
    .tp_basicsize = sizeof(Viewer),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_vectorcall_offset = offsetof(Viewer, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_dealloc = viewer_dealloc,
    .tp_traverse = viewer_traverse,
    .tp_doc = "view_sm(raw, cid=None, seq=None, status=None): lean.view_sm, its common case in C",
};

static PyObject *viewer(PyObject *mod, PyObject *args)
{
    PyTypeObject *cls;
    PyObject *slots, *fallback;
    if (!PyArg_ParseTuple(args, "O!OO:viewer", &PyType_Type, &cls, &slots, &fallback))
        return NULL;
    PyObject *t = PySequence_Tuple(slots);
    if (t == NULL)
        return NULL;
    if (PyTuple_GET_SIZE(t) != N_SLOTS) {
        Py_DECREF(t);
        PyErr_SetString(PyExc_ValueError, "viewer(): the SmView slots are not the ones this module fills");
        return NULL;
    }
    for (int i = 0; i < N_SLOTS; i++) {
        PyObject *s = PyTuple_GET_ITEM(t, i);
        if (!PyUnicode_Check(s) || PyUnicode_CompareWithASCIIString(s, slot_names[i]) != 0) {
            Py_DECREF(t);
            PyErr_SetString(PyExc_ValueError, "viewer(): the SmView slots are not the ones this module fills");
            return NULL;
        }
    }
    Py_DECREF(t);
    Viewer *w = PyObject_GC_New(Viewer, &ViewerType);
    if (w == NULL)
        return NULL;
    w->cls = NULL;
    w->fallback = NULL;
    w->vectorcall = viewer_call;
    for (int i = 0; i < N_SLOTS; i++) {
        PyObject *d = PyObject_GetAttrString((PyObject *)cls, slot_names[i]);
        if (d == NULL) {
            Py_DECREF(w);
            return NULL;
        }
        int ok = Py_IS_TYPE(d, &PyMemberDescr_Type) && ((PyMemberDescrObject *)d)->d_member->type == T_OBJECT_EX;
        if (ok)
            w->offset[i] = ((PyMemberDescrObject *)d)->d_member->offset;
        Py_DECREF(d);
        if (!ok) {
            Py_DECREF(w);
            PyErr_Format(PyExc_ValueError, "viewer(): %s is not a plain slot", slot_names[i]);
            return NULL;
        }
    }
    w->cls = (PyTypeObject *)Py_NewRef(cls);
    w->fallback = Py_NewRef(fallback);
    PyObject_GC_Track(w);
    return (PyObject *)w;
}

/* lean.with_sequence / lean.as_request for a PDU's exact bytes (16 or more) and an int sequence_number of 32 bits
   (every call the proxy makes: the header's own or SmppConnection.next_sequence's): a copy of the bytes with octets
   12-15 the sequence_number, big-endian (SMPP 3.4 §3.2), and for a request octets 8-11, command_status, NULL. One
   bytes object made and one copy, where the Python's slices and concatenations make four or five (~2,600
   instructions a call, ~600 here). Anything else is the Python function's (`self`: the two, in that order), with
   the same arguments: its result, its error. */
static PyObject *header_edit(PyObject *self, PyObject *const *a, Py_ssize_t n, int request)
{
    if (n == 2 && PyBytes_CheckExact(a[0]) && PyLong_CheckExact(a[1]) && PyBytes_GET_SIZE(a[0]) >= 16) {
        int overflow;
        long long seq = PyLong_AsLongLongAndOverflow(a[1], &overflow);
        if (!overflow && seq >= 0 && seq <= 0xFFFFFFFFLL) {
            Py_ssize_t len = PyBytes_GET_SIZE(a[0]);
            PyObject *out = PyBytes_FromStringAndSize(PyBytes_AS_STRING(a[0]), len);
            if (out == NULL)
                return NULL;
            unsigned char *o = (unsigned char *)PyBytes_AS_STRING(out);
            if (request)
                memset(o + 8, 0, 4);
            o[12] = (unsigned char)(seq >> 24), o[13] = (unsigned char)(seq >> 16);
            o[14] = (unsigned char)(seq >> 8), o[15] = (unsigned char)seq;
            return out;
        }
    }
    return PyObject_Vectorcall(PyTuple_GET_ITEM(self, request), a, (size_t)n, NULL);
}

static PyObject *with_sequence(PyObject *self, PyObject *const *a, Py_ssize_t n) { return header_edit(self, a, n, 0); }
static PyObject *as_request(PyObject *self, PyObject *const *a, Py_ssize_t n) { return header_edit(self, a, n, 1); }

static PyMethodDef edit_defs[] = {
    {"with_sequence", (PyCFunction)(void (*)(void))with_sequence, METH_FASTCALL,
     "with_sequence(raw, seq) -> the bytes with another sequence_number"},
    {"as_request", (PyCFunction)(void (*)(void))as_request, METH_FASTCALL,
     "as_request(raw, seq) -> the bytes with another sequence_number and command_status NULL"},
};

/* header_edits(with_sequence, as_request) -> (with_sequence, as_request): the two above, falling back on these */
static PyObject *header_edits(PyObject *module, PyObject *args)
{
    PyObject *ws, *ar, *fb, *f1, *f2;
    if (!PyArg_ParseTuple(args, "OO:header_edits", &ws, &ar))
        return NULL;
    if (!PyCallable_Check(ws) || !PyCallable_Check(ar)) {
        PyErr_SetString(PyExc_TypeError, "header_edits(): two functions");
        return NULL;
    }
    if ((fb = PyTuple_Pack(2, ws, ar)) == NULL)
        return NULL;
    f1 = PyCFunction_New(&edit_defs[0], fb);
    f2 = f1 ? PyCFunction_New(&edit_defs[1], fb) : NULL;
    Py_DECREF(fb);
    if (f2 == NULL) {
        Py_XDECREF(f1);
        return NULL;
    }
    return Py_BuildValue("(NN)", f1, f2);
}

static PyMethodDef methods[] = {
    {"viewer", viewer, METH_VARARGS, "viewer(cls, slots, fallback) -> view_sm with its common case in C"},
    {"header_edits", header_edits, METH_VARARGS, "header_edits(with_sequence, as_request) -> the two in C"},
    {NULL, NULL, 0, NULL}
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_leanview", NULL, -1, methods};

PyMODINIT_FUNC PyInit__leanview(void)
{
    if (PyType_Ready(&ViewerType) < 0)
        return NULL;
    return PyModule_Create(&module);
}
