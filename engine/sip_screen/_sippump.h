/* The UDP pump of the SIP screen: read the datagrams waiting on the socket and relay, in C, the
 * ones the fast path proves plain; hand everything else to Python untouched. Included by
 * _sipfast.c (its one datagram's handling, which uses relay_response() and in_dialog(): _sipdatagram.h).
 *
 * Theory of operation: a call is six datagrams and only its INVITE is judged; the other five
 * (180, 200, ACK, BYE, 200) need a byte edit and a sendto. Done in Python each one costs a
 * loop wake-up, a Python callback and some twenty Python-level calls; the pump does the same
 * work from one C call per loop round: Pump.run(max_n) reads up to max_n datagrams with
 * recvfrom(MSG_DONTWAIT) (stopping at the first EAGAIN, so the loop gets back to SMPP after a
 * bounded batch) and for each one:
 *   - a response relay_response() answers: "not ours" is counted as dropped; a plain one whose
 *     next hop is an address inside the permitted ranges over UDP is sent with sendto(2) (which
 *     addresses, on which socket: _sipaddr.h);
 *     a final response to an INVITE first goes through on_final(code, key, source, response) (Python:
 *     counted once per transaction, the call's answer time and answering To tag noted -- when it comes
 *     from where the call's INVITE went, responses._invite_final);
 *   - an in-dialog request in_dialog() answers, bound for a permitted address over UDP: a
 *     BYE calls on_bye(call_id, (from_tag, to_tag)) (the call's end for the pipeline, if it is the answered
 *     dialog's: server._call_ended; the From tag read as _fast_bye reads it, bye_from_tag); our Via, with the branch
 *     server._branch computes (blake2b of the same key, here in C: retransmissions and loop
 *     checks agree with the full path), goes on top and the request is sent. A failed send of anything but
 *     an ACK calls send_failed(message without our Via, source, why): the Python path answers
 *     503 as it would have; one that left is kept a while for an ICMP error about it (_sipwatch.h);
 *   - an ACK whose To tag starts with the tag prefix (it may be for an answer of ours: Python
 *     recomputes our tag from Call-ID and From tag), or whose ack_key (blake2b of "top branch|
 *     Call-ID", 16 bytes, recent.ack_key) is in `invites` (the ACK of a non-2xx final, which goes
 *     where its INVITE went, RFC 3261 §17.1.1.3) or in `rejected` (the ACK of a rejection of ours,
 *     absorbed whatever its To tag), goes to slow() like:
 *   - anything else -- INVITE, CANCEL, OPTIONS, a message the fast path cannot prove plain, a
 *     next hop that is a name, IPv6 when the socket is IPv4, TCP or outside the permitted
 *     networks -- goes to
 *     slow(data, source), the screen's full Python path, before anything was done for it.
 * So the pump takes exactly the decisions the Python fast path takes (tests/test_sip_fuzz.py
 * checks it differentially against the full parse); it only spares the Python frames.
 * The screen's counters (responses, requests, fast_path, dropped, internal_errors) are counted
 * into its stats dict directly. run() is the loop's reader callback itself (no Python frame
 * per wake-up) and never raises: an exception out of one datagram's handling is counted as an
 * internal error and given to on_error, which logs it.
 * Overload: `full_since` says since when every round has read max_n datagrams (the queue never found empty: the
 * screen is behind); the screen answers new calls 503 once that lasts overload_after (server._overloaded).
 * ICMP errors (unreachable.py): a read that finds no datagram calls on_errqueue, which reads the error queue; a
 * round that reads some, PUMP_ERRQ_BUSY_S or more after the last look, asks poll(2) whether an error waits and
 * calls it if one does (busy, no read ever fails for an error: the next send takes its errno).
 * Sources (sources.py): a datagram whose source address is outside accept_networks is dropped before
 * any Python object is made for it -- a bisection over sorted, disjoint integer ranges on the address the
 * kernel gave (an IPv4-mapped IPv6 one as its IPv4 address) -- counted once per round as source_refused, and
 * said by on_refused(host) at most once a second; when the networks hold every address nothing is checked.
 * With fd = -1 nothing is read and sends go to the Python callable `sendto` instead: the
 * tests drive handle(data, source) that way without a network (the source's text is read with inet_pton).
 */
#include <errno.h>
#include <poll.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>
#include <structmember.h>

#define PUMP_MAX_RANGES 64
#define PUMP_DGRAM 65536
#define PUMP_MAX_BATCH 64
#define PUMP_UDP_MAX 1300                        /* forwarding.UDP_MAX */
#define PUMP_WATCH 2048                          /* unreachable.WATCH (a power of 2): requests relayed, kept */
#define PUMP_WATCH_S 4.0                         /* unreachable.WATCH_S: seconds each is (_sipwatch.h) */
#define WATCH_BRANCH 20                          /* hex digits of our branch after BRANCH_PREFIX */
#define PUMP_ERRQ_BUSY_S 0.01                    /* unreachable.ERRQUEUE_BUSY_S: the error queue looked at, busy */

typedef struct { double until; PyObject *data, *src; char branch[WATCH_BRANCH]; } WatchSlot;

typedef struct {
    PyObject_HEAD
    int fd;
    PyObject *prefixes;                          /* tuple of bytes: the starts of our Vias */
    PyObject *via_head;                          /* bytes: "Via: SIP/2.0/UDP host:port;branch=z9hG4bKtf" */
    PyObject *tag_prefix;                        /* str: To tags of the answers we generate */
    PyObject *slow, *on_final, *on_bye, *send_failed, *py_sendto, *on_error;
    PyObject *on_errqueue;                       /* None, or called when a read finds no datagram, and busy when poll(2)
                                                    says an error waits: ICMP errors queued on the socket
                                                    (IP_RECVERR) are read there (transport.py, unreachable.py) */
    double errq_at;                              /* CLOCK_MONOTONIC s of the last look at the error queue */
    PyObject *stats;                             /* the screen's stats dict: counted into directly */
    PyObject *invites;                           /* dict: ack_key -> ... of the INVITEs forwarded (read only) */
    PyObject *rejected;                          /* None, or dict: ack_key -> ... of the INVITEs the screen answered
                                                    with a rejection (read only) */
    PyObject *hop;                               /* (host, port, TRANSPORT) or None: the configured next hop, where
                                                    an in-dialog request to the screen itself goes (in_dialog) */
    int max_n;                                   /* datagrams per run() */
    double full_since;                           /* CLOCK_MONOTONIC s of the first of the latest unbroken run of
                                                    rounds that read max_n datagrams (the queue never found
                                                    empty since); 0 when the latest round read fewer */
    int family;                                  /* the socket's, AF_INET or AF_INET6 (fd -1: AF_INET) */
    uint32_t lo[PUMP_MAX_RANGES], hi[PUMP_MAX_RANGES];          /* allow_networks, IPv4 */
    int nranges;                                 /* -1: more ranges than kept, every send is Python's */
    uint64_t r6[PUMP_MAX_RANGES][4];             /* IPv6: first (high, low 64 bits), last */
    int nranges6;
    int accept_all;                              /* accept_networks hold every address: nothing is checked */
    uint32_t *a4;                                /* their IPv4 ranges: a4[2k] first, a4[2k + 1] last (sorted,
                                                    disjoint) */
    uint64_t *a6;                                /* IPv6: a6[4k], a6[4k + 1] first (high, low 64 bits); then last */
    Py_ssize_t na4, na6;
    PyObject *on_refused;                        /* on_refused(host): the service log's line */
    double refused_said_at;                      /* CLOCK_MONOTONIC s of its last call */
    char *bufs;                                  /* max_n receive buffers of PUMP_DGRAM bytes */
    WatchSlot *watch;                            /* PUMP_WATCH slots: the requests relayed (_sipwatch.h) */
    int watch_at;                                /* the slot the next one takes */
    double now;                                  /* CLOCK_MONOTONIC s of the round under way in run(), else 0 */
    int ready;                                   /* __init__ has succeeded: the fields above are all set */
    char out[PUMP_DGRAM];                        /* the request being forwarded, with our Via */
} Pump;

static PyObject *K_RESPONSES, *K_REQUESTS, *K_FAST, *K_DROPPED, *K_INTERNAL, *K_REFUSED;

/* stats[key] += n (the dict holds ints; a key missing is created) */
static int bump(Pump *p, PyObject *key, long n) {
    PyObject *v = PyDict_GetItemWithError(p->stats, key);
    if (!v && PyErr_Occurred()) return -1;
    long long c = v ? PyLong_AsLongLong(v) : 0;
    if (c == -1 && PyErr_Occurred()) return -1;
    PyObject *nv = PyLong_FromLongLong(c + n);
    if (!nv) return -1;
    int r = PyDict_SetItem(p->stats, key, nv);
    Py_DECREF(nv);
    return r;
}

static void watch_clear(Pump *p);

static void Pump_dealloc(Pump *p) {
    Py_XDECREF(p->prefixes); Py_XDECREF(p->via_head); Py_XDECREF(p->tag_prefix);
    Py_XDECREF(p->slow); Py_XDECREF(p->on_final); Py_XDECREF(p->on_bye);
    Py_XDECREF(p->send_failed); Py_XDECREF(p->py_sendto); Py_XDECREF(p->on_error); Py_XDECREF(p->stats);
    Py_XDECREF(p->invites); Py_XDECREF(p->rejected); Py_XDECREF(p->on_refused); Py_XDECREF(p->hop); Py_XDECREF(p->on_errqueue);
    watch_clear(p);
    PyMem_Free(p->bufs); PyMem_Free(p->a4); PyMem_Free(p->a6); PyMem_Free(p->watch);
    Py_TYPE(p)->tp_free((PyObject *)p);
}

#include "_sipaddr.h"

/* Pump(fd, max_n, prefixes, via_head, tag_prefix, ranges, stats, slow, on_final, on_bye,
 *      send_failed, on_error, sendto, invites[, accept, on_refused, hop, rejected])
 * ranges: [(version, first, last)], allow_networks (settings.permitted_ranges).
 * accept: accept_networks as sources.address_table gives them (None, the default: every address). */
static int Pump_init(Pump *p, PyObject *args, PyObject *kw) {
    PyObject *ranges, *prefixes, *via_head, *tag_prefix, *stats, *slow, *on_final, *on_bye, *send_failed, *on_error,
             *py_sendto, *invites, *accept = Py_None, *on_refused = Py_None, *hop = Py_None,
             *rejected = Py_None;
    if (p->prefixes) { PyErr_SetString(PyExc_TypeError, "Pump is initialised once"); return -1; }
    /* into locals first: the object keeps (and owns) nothing unless every argument is right */
    if (!PyArg_ParseTuple(args, "iiO!O!UOO!OOOOOOO!|OOOO", &p->fd, &p->max_n, &PyTuple_Type, &prefixes,
                          &PyBytes_Type, &via_head, &tag_prefix, &ranges, &PyDict_Type, &stats,
                          &slow, &on_final, &on_bye, &send_failed, &on_error, &py_sendto, &PyDict_Type, &invites,
                          &accept, &on_refused, &hop, &rejected))
        return -1;
    if (rejected != Py_None && !PyDict_Check(rejected)) {
        PyErr_SetString(PyExc_TypeError, "rejected: a dict or None");
        return -1;
    }
    Py_INCREF(rejected); p->rejected = rejected;
    Py_INCREF(hop); p->hop = hop;
    Py_INCREF(on_refused); p->on_refused = on_refused;
    Py_INCREF(invites); p->invites = invites;
    Py_INCREF(prefixes); p->prefixes = prefixes;
    Py_INCREF(via_head); p->via_head = via_head;
    Py_INCREF(tag_prefix); p->tag_prefix = tag_prefix;
    Py_INCREF(stats); p->stats = stats;
    Py_INCREF(slow); p->slow = slow;
    Py_INCREF(on_final); p->on_final = on_final;
    Py_INCREF(on_bye); p->on_bye = on_bye;
    Py_INCREF(send_failed); p->send_failed = send_failed;
    Py_INCREF(on_error); p->on_error = on_error;
    Py_INCREF(py_sendto); p->py_sendto = py_sendto;
    if (p->max_n < 1 || p->max_n > PUMP_MAX_BATCH) { PyErr_SetString(PyExc_ValueError, "max_n: 1 to 64"); return -1; }
    if (accept_init(p, accept) < 0) return -1;
    if (p->fd >= 0 && !(p->bufs = PyMem_Malloc((size_t)p->max_n * PUMP_DGRAM))) { PyErr_NoMemory(); return -1; }
    if (!(p->watch = PyMem_Calloc(PUMP_WATCH, sizeof *p->watch))) { PyErr_NoMemory(); return -1; }
    p->family = AF_INET;
    if (p->fd >= 0) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        if (getsockname(p->fd, (struct sockaddr *)&ss, &sl) < 0) { PyErr_SetFromErrno(PyExc_OSError); return -1; }
        p->family = ss.ss_family;
    }
    if (ranges_init(p, ranges) < 0) return -1;
    p->ready = 1;
    return 0;
}

/* Pump.__new__ without __init__, or after one that failed, has no stats, callbacks or buffers to use */
static int pump_ready(const Pump *p) {
    if (p->ready) return 1;
    PyErr_SetString(PyExc_RuntimeError, "Pump is not initialised");
    return 0;
}

static double monotonic(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* `n` refused datagrams not counted yet, the last from `host` (a str, or NULL: made from `a`): counted, and
 * said (on_refused) if a second has passed since it last was; 0, or -1 with an exception set */
static int refused(Pump *p, long n, PyObject *host, const struct sockaddr_storage *a) {
    if (n && bump(p, K_REFUSED, n) < 0) return -1;
    double now = monotonic();
    if (p->on_refused == Py_None || (p->refused_said_at && now - p->refused_said_at < 1.0)) return 0;
    p->refused_said_at = now;
    PyObject *h = host;
    if (!h) {
        char ip[INET6_ADDRSTRLEN] = "?";
        if (a->ss_family == AF_INET)
            inet_ntop(AF_INET, &((const struct sockaddr_in *)a)->sin_addr, ip, sizeof ip);
        else if (a->ss_family == AF_INET6)
            inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)a)->sin6_addr, ip, sizeof ip);
        if (!(h = PyUnicode_FromString(ip))) return -1;
    } else Py_INCREF(h);
    PyObject *r = PyObject_CallFunctionObjArgs(p->on_refused, h, NULL);
    Py_DECREF(h);
    if (!r) return -1;
    Py_DECREF(r);
    return 0;
}

#include "_sipwatch.h"                   /* watch_put(), Pump.unreachable: the requests relayed, for ICMP errors */
#include "_sipdatagram.h"                /* pump_one(): one datagram relayed, sent or handed to slow() */

static PyObject *Pump_handle(Pump *p, PyObject *args) {
    PyObject *data, *src;
    if (!pump_ready(p) || !PyArg_ParseTuple(args, "O!O", &PyBytes_Type, &data, &src)) return NULL;
    if (!p->accept_all) {
        PyObject *host = PyTuple_Check(src) && PyTuple_GET_SIZE(src) ? PyTuple_GET_ITEM(src, 0) : Py_None;
        if (!accepts_text(p, host)) {
            if (refused(p, 1, PyUnicode_Check(host) ? host : Py_None, NULL) < 0) return NULL;
            Py_RETURN_NONE;
        }
    }
    if (pump_one(p, data, src) < 0) return NULL;
    Py_RETURN_NONE;
}

/* An exception out of one datagram's handling: counted and given to on_error (which logs it);
 * the round goes on with the next datagram. */
static void pump_error(Pump *p) {
    PyObject *t, *v, *tb;
    PyErr_Fetch(&t, &v, &tb);
    PyErr_NormalizeException(&t, &v, &tb);
    if (tb && v) PyException_SetTraceback(v, tb);
    if (bump(p, K_INTERNAL, 1) < 0) PyErr_Clear();
    PyObject *r = PyObject_CallFunctionObjArgs(p->on_error, v ? v : Py_None, NULL);
    if (!r) PyErr_Clear(); else Py_DECREF(r);
    Py_XDECREF(t); Py_XDECREF(v); Py_XDECREF(tb);
}

/* The socket's error queue read (on_errqueue) */
static void pump_errqueue(Pump *p, double now) {
    p->errq_at = now;
    if (!p->on_errqueue || p->on_errqueue == Py_None) return;
    PyObject *r = PyObject_CallNoArgs(p->on_errqueue);
    if (!r) pump_error(p); else Py_DECREF(r);
}

/* run(): the reader callback. One recvmmsg(2) takes what is waiting, up to max_n datagrams
 * (MSG_DONTWAIT: it returns at the first EAGAIN, without a second syscall to find the socket
 * empty); each is handled in turn. Returns None; never raises (but RuntimeError on a Pump never initialised). */
/* a datagram's source as Py_BuildValue("(si)") / ("(siII)") built it -- (address text, port[, flowinfo, scope id]) --,
 * without its format parsed at every datagram (~600 instructions): inet_ntop's text is ASCII */
static PyObject *src_tuple(const char *ip, int n, int port, unsigned long flow, unsigned long scope) {
    size_t len = strlen(ip);
    PyObject *t = PyTuple_New(n), *h = PyUnicode_New((Py_ssize_t)len, 127);
    if (!t || !h) { Py_XDECREF(t); Py_XDECREF(h); return NULL; }
    memcpy(PyUnicode_1BYTE_DATA(h), ip, len);
    PyTuple_SET_ITEM(t, 0, h);
    PyObject *v = PyLong_FromLong(port);
    if (!v) { Py_DECREF(t); return NULL; }
    PyTuple_SET_ITEM(t, 1, v);
    if (n == 4) {
        if (!(v = PyLong_FromUnsignedLong(flow))) { Py_DECREF(t); return NULL; }
        PyTuple_SET_ITEM(t, 2, v);
        if (!(v = PyLong_FromUnsignedLong(scope))) { Py_DECREF(t); return NULL; }
        PyTuple_SET_ITEM(t, 3, v);
    }
    return t;
}

static PyObject *Pump_run(Pump *p, PyObject *noargs) {
    if (!pump_ready(p)) return NULL;
    if (p->fd < 0) Py_RETURN_NONE;
    struct mmsghdr msgs[PUMP_MAX_BATCH];
    struct iovec iov[PUMP_MAX_BATCH];
    struct sockaddr_storage ss[PUMP_MAX_BATCH];
    for (int k = 0; k < p->max_n; k++) {
        iov[k].iov_base = p->bufs + (size_t)k * PUMP_DGRAM;
        iov[k].iov_len = PUMP_DGRAM;
        memset(&msgs[k].msg_hdr, 0, sizeof msgs[k].msg_hdr);
        msgs[k].msg_hdr.msg_iov = &iov[k];
        msgs[k].msg_hdr.msg_iovlen = 1;
        msgs[k].msg_hdr.msg_name = &ss[k];
        msgs[k].msg_hdr.msg_namelen = sizeof ss[k];
    }
    int got;
    do got = recvmmsg(p->fd, msgs, (unsigned)p->max_n, MSG_DONTWAIT, NULL);
    while (got < 0 && errno == EINTR);
    if (got < 0) {          /* EAGAIN: a wake-up for the error queue alone, or a spurious one; else an ICMP error
                             * reported on the socket (IP_RECVERR: its details wait in the error queue) */
        p->full_since = 0;
        pump_errqueue(p, monotonic());
        Py_RETURN_NONE;
    }
    double now = p->now = monotonic();          /* once a round: full_since, the watch's (_sipwatch.h), errq_at */
    if (got < p->max_n) p->full_since = 0;      /* the queue was found empty: not behind */
    else if (p->full_since == 0)                /* maybe more waiting: behind since now, if it lasts */
        p->full_since = now ? now : 1e-9;
    if (now - p->errq_at >= PUMP_ERRQ_BUSY_S) { /* every read finds datagrams: the error queue looked at anyway (an
                                                 * ICMP error's errno goes to the next send, no read fails for it) */
        struct pollfd pf = {.fd = p->fd, .events = 0};
        if (poll(&pf, 1, 0) > 0 && (pf.revents & POLLERR)) pump_errqueue(p, now);
        else p->errq_at = now;
    }
    long unsaid = 0;                            /* refused datagrams of this round not counted yet */
    int looked = 0;                             /* whether this round has looked at the clock for on_refused */
    for (int k = 0; k < got; k++) {
        char ip[INET6_ADDRSTRLEN];
        PyObject *src;
        struct sockaddr_storage *a = &ss[k];
        if (!accepts_sa(p, a)) {                 /* not a peer: dropped before any Python object is made */
            unsaid++;
            if (!looked) {                       /* at most one clock read per round */
                looked = 1;
                if (!p->refused_said_at || monotonic() - p->refused_said_at >= 1.0) {
                    if (refused(p, unsaid, NULL, a) < 0) pump_error(p);
                    unsaid = 0;
                }
            }
            continue;
        }
        if (a->ss_family == AF_INET) {
            struct sockaddr_in *s4 = (struct sockaddr_in *)a;
            inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof ip);
            src = src_tuple(ip, 2, ntohs(s4->sin_port), 0, 0);
        } else if (a->ss_family == AF_INET6) {
            struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)a;
            inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof ip);
            src = src_tuple(ip, 4, ntohs(s6->sin6_port), ntohl(s6->sin6_flowinfo), s6->sin6_scope_id);
        } else continue;
        PyObject *data = src ? PyBytes_FromStringAndSize(iov[k].iov_base, (Py_ssize_t)msgs[k].msg_len) : NULL;
        if (!data || pump_one(p, data, src) < 0) pump_error(p);
        Py_XDECREF(src); Py_XDECREF(data);
    }
    if (unsaid && bump(p, K_REFUSED, unsaid) < 0) pump_error(p);
    p->now = 0;
    Py_RETURN_NONE;
}

static PyObject *Pump_accepts(Pump *p, PyObject *host) {
    if (!pump_ready(p)) return NULL;
    return PyBool_FromLong(accepts_text(p, host));
}

static PyMethodDef Pump_methods[] = {
    {"run", (PyCFunction)Pump_run, METH_NOARGS, "run(): read and handle up to max_n waiting datagrams"},
    {"handle", (PyCFunction)Pump_handle, METH_VARARGS, "handle(data, source): one datagram as run() would"},
    {"accepts", (PyCFunction)Pump_accepts, METH_O, "accepts(host): whether SIP from the address text is taken"},
    {"unreachable", (PyCFunction)Pump_unreachable, METH_O,
     "unreachable(branch digits): (datagram, source) of a request relayed under it lately, forgotten; or None"},
    {NULL, NULL, 0, NULL}};

static PyMemberDef Pump_members[] = {
    {"full_since", T_DOUBLE, offsetof(Pump, full_since), READONLY,
     "time.monotonic() of the first of the latest unbroken run of full rounds (max_n datagrams read), 0 if none"},
    {"on_errqueue", T_OBJECT, offsetof(Pump, on_errqueue), 0,
     "None, or a callable run() calls when its read finds no datagram (an error, or nothing), and while busy every "
     "PUMP_ERRQ_BUSY_S if an error waits: the socket's error queue"},
    {NULL}};

static PyTypeObject PumpType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "engine.sip_screen._sipfast.Pump",
    .tp_basicsize = sizeof(Pump),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Pump_init,
    .tp_dealloc = (destructor)Pump_dealloc,
    .tp_methods = Pump_methods,
    .tp_members = Pump_members,
    .tp_doc = "the UDP pump of the SIP screen (see _sippump.h)",
};
