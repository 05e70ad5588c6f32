/* engine._stamps: the clock read that makes a message's datetime and the two reads of it on every verdict
 * (optional; engine/stamps.py keeps the pure-Python paths, used when this module is absent or
 * TELFILTER_STAMPS_PURE=1, and a test checks both agree).
 *
 * utc_now() -> datetime: datetime.now(timezone.utc), the same value (the system clock floored to the
 *   microsecond, broken down by gmtime): datetime.now makes a naive datetime, then a second one through
 *   timezone.fromutc (~2,300 instructions with its partial; ~550 here). The SMPP proxy's clock.
 * posix(t) -> float: t.timestamp(), the same float. For a datetime (not a subclass) in timezone.utc (the
 *   proxies' clock) it is computed from the fields: datetime.timestamp() subtracts the epoch (a timedelta),
 *   counts its microseconds in Python ints and divides them by 10**6, which for a count under 2**53 is one
 *   correctly rounded double division, the one done here (~2,000 instructions there, ~100 here). Any other
 *   datetime (another zone, naive: local time), or a count of 2**53 or over (before 1685 or after 2255),
 *   calls t.timestamp().
 * second_key(t) -> (int, tzinfo): what tells t's second apart (its fields down to the second, and fold) and
 *   its zone: two datetimes with equal keys have the same isoformat() but for the microseconds
 *   (verdictlog._isoformat's cache key; reading those eight attributes in Python costs ~2,400 instructions).
 * call_line(...) -> str | None: the verdict log's line for a judged call, in its common case (_callline.h).
 * sms_line(...) -> str | None: the same for a judged SMS (_smsline.h).
 * spool_record(...) -> int | None: a forwarded message's id record into the id log's crash spool (_idrecord.h).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <datetime.h>
#include <time.h>

static const int days_before_month_[] = {0, 0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334};

static long long ordinal(int y, int m, int d)      /* date.toordinal(), as CPython's ymd_to_ord */
{
    long long py = y - 1;
    long long n = py * 365 + py / 4 - py / 100 + py / 400 + days_before_month_[m] + d;
    if (m > 2 && (y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)))
        n += 1;
    return n;
}

#define EPOCH_ORDINAL 719163LL           /* date(1970, 1, 1).toordinal() */
#define EXACT (1LL << 53)

static PyObject *py_posix(PyObject *self, PyObject *t)
{
    if (PyDateTime_CheckExact(t) && ((PyDateTime_DateTime *)t)->hastzinfo
            && ((PyDateTime_DateTime *)t)->tzinfo == PyDateTime_TimeZone_UTC) {
        long long us = ((ordinal(PyDateTime_GET_YEAR(t), PyDateTime_GET_MONTH(t), PyDateTime_GET_DAY(t))
                         - EPOCH_ORDINAL) * 86400LL + PyDateTime_DATE_GET_HOUR(t) * 3600LL
                        + PyDateTime_DATE_GET_MINUTE(t) * 60LL + PyDateTime_DATE_GET_SECOND(t)) * 1000000LL
                       + PyDateTime_DATE_GET_MICROSECOND(t);
        if (us < EXACT && us > -EXACT)
            return PyFloat_FromDouble((double)us / 1e6);
    }
    return PyObject_CallMethod(t, "timestamp", NULL);
}

static PyObject *py_utc_now(PyObject *self, PyObject *unused)
{
    struct timespec ts;
    struct tm tm;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    time_t secs = ts.tv_sec;
    if (gmtime_r(&secs, &tm) == NULL)
        return PyErr_SetFromErrno(PyExc_OverflowError);
    /* as datetime.now: a leap second (tm_sec 60, never on Linux) is read as 59 */
    return PyDateTimeAPI->DateTime_FromDateAndTime(tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                                                   tm.tm_min, tm.tm_sec > 59 ? 59 : tm.tm_sec,
                                                   (int)(ts.tv_nsec / 1000), PyDateTime_TimeZone_UTC,
                                                   PyDateTimeAPI->DateTimeType);
}

static PyObject *py_second_key(PyObject *self, PyObject *t)
{
    if (!PyDateTime_Check(t)) {
        PyErr_SetString(PyExc_TypeError, "second_key() takes a datetime");
        return NULL;
    }
    long long k = ((((((long long)PyDateTime_GET_YEAR(t) * 16 + PyDateTime_GET_MONTH(t)) * 32
                      + PyDateTime_GET_DAY(t)) * 32 + PyDateTime_DATE_GET_HOUR(t)) * 64
                    + PyDateTime_DATE_GET_MINUTE(t)) * 64 + PyDateTime_DATE_GET_SECOND(t)) * 2
                  + PyDateTime_DATE_GET_FOLD(t);
    PyObject *tz = ((PyDateTime_DateTime *)t)->hastzinfo ? ((PyDateTime_DateTime *)t)->tzinfo : Py_None;
    PyObject *n = PyLong_FromLongLong(k);
    if (n == NULL)
        return NULL;
    PyObject *r = PyTuple_Pack(2, n, tz);
    Py_DECREF(n);
    return r;
}

#include "_callline.h"
#include "_smsline.h"
#include "_idrecord.h"

static PyMethodDef methods[] = {
    {"posix", py_posix, METH_O, "posix(t) -> t.timestamp()"},
    {"utc_now", py_utc_now, METH_NOARGS, "utc_now() -> datetime.now(timezone.utc)"},
    {"second_key", py_second_key, METH_O,
     "second_key(t) -> (t's fields down to the second and its fold, as one int; t.tzinfo)"},
    {"call_line", (PyCFunction)(void (*)(void))py_call_line, METH_FASTCALL,
     "call_line(when, call_id, caller, callee, ingress, action, score, hits, judge_us) -> verdictlog's call line, "
     "or None when it is not the common case"},
    {"sms_line", (PyCFunction)(void (*)(void))py_sms_line, METH_FASTCALL,
     "sms_line(when, pdu, account, sender, recipient, action, score, hits, judge_us) -> verdictlog's SMS line, "
     "or None when it is not the common case"},
    {"spool_record", (PyCFunction)(void (*)(void))py_spool_record, METH_FASTCALL,
     "spool_record(ring, head, end, written, cap, mid, name, note) -> the spool's new end, -1 (no room) or None "
     "(not the common case): a message id's record in the id log's crash spool"},
    {NULL, NULL, 0, NULL}
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_stamps", NULL, -1, methods};

PyMODINIT_FUNC PyInit__stamps(void)
{
    PyDateTime_IMPORT;
    if (PyDateTimeAPI == NULL)
        return NULL;
    return PyModule_Create(&module);
}
