/* The UDP pump's addresses (included by _sippump.h, after its Pump): which sources it takes (accept_networks,
 * sources.py), where it may send itself (allow_networks, forwarding._permitted) and the sendto(2).
 *
 * Destinations, as forwarding._send and transport.UdpEndpoint send them: an address permitted by the ranges
 * (Pump's `ranges`, IPv4 and IPv6), sent from the listening socket. An AF_INET socket sends to IPv4
 * addresses; an AF_INET6 one sends to IPv6 addresses and to IPv4 ones as their IPv4-mapped address
 * ::ffff:a.b.c.d (RFC 4291 §2.5.5.2; transport._sendto_mapped), flowinfo and scope id 0 as Python's
 * sendto((host, port)) makes them. An address of the other family than an AF_INET socket, a name
 * (`localhost` included: forwarding._resolve), an address with a scope id, text inet_pton does not read,
 * TCP, or more ranges than kept: Python decides (the datagram goes to slow() before anything was done).
 * On `[::1]` an IPv4 destination fails as Python's send fails (the same sendto, the same errno: 503).
 */

typedef struct {
    union { struct sockaddr sa; struct sockaddr_in v4; struct sockaddr_in6 v6; } u;
    socklen_t len;
} PumpAddr;

/* x as an unsigned 128-bit integer in two halves; -1 with an exception set when it is none */
static int u128_of(PyObject *x, uint64_t *hi, uint64_t *lo) {
    if (!PyLong_Check(x)) { PyErr_SetString(PyExc_ValueError, "an address is an integer"); return -1; }
    PyObject *sh = PyLong_FromLong(64), *h = sh ? PyNumber_Rshift(x, sh) : NULL;
    Py_XDECREF(sh);
    if (!h) return -1;
    *hi = PyLong_AsUnsignedLongLong(h);             /* OverflowError: below 0 or from 2**128 */
    Py_DECREF(h);
    if (*hi == (uint64_t)-1 && PyErr_Occurred()) return -1;
    *lo = PyLong_AsUnsignedLongLongMask(x);
    return PyErr_Occurred() ? -1 : 0;
}

static int u128_le(uint64_t ah, uint64_t al, uint64_t bh, uint64_t bl) { return ah < bh || (ah == bh && al <= bl); }

/* accept = None (every address) or (IPv4 ranges, IPv6 ranges), each [(first, last)] sorted and disjoint
 * (sources.address_table); anything else is a ValueError */
static int accept_init(Pump *p, PyObject *accept) {
    p->accept_all = accept == Py_None;
    if (p->accept_all) return 0;
    if (!PyTuple_Check(accept) || PyTuple_GET_SIZE(accept) != 2) {
        PyErr_SetString(PyExc_ValueError, "accept: None or (IPv4 ranges, IPv6 ranges)");
        return -1;
    }
    for (int v = 0; v < 2; v++) {
        PyObject *seq = PySequence_Fast(PyTuple_GET_ITEM(accept, v), "accept: ranges must be a sequence");
        if (!seq) return -1;
        Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
        void *arr = PyMem_Calloc((size_t)(n ? n : 1), v ? 4 * sizeof(uint64_t) : 2 * sizeof(uint32_t));
        if (!arr) { Py_DECREF(seq); PyErr_NoMemory(); return -1; }
        if (v) { p->a6 = arr; p->na6 = n; } else { p->a4 = arr; p->na4 = n; }
        for (Py_ssize_t k = 0; k < n; k++) {
            PyObject *t = PySequence_Fast_GET_ITEM(seq, k), *a, *z;
            if (!PyTuple_Check(t) || !PyArg_ParseTuple(t, "OO", &a, &z)) {
                if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "accept: a range is (first, last)");
                Py_DECREF(seq);
                return -1;
            }
            uint64_t ah, al, zh, zl;
            if (u128_of(a, &ah, &al) || u128_of(z, &zh, &zl)) { Py_DECREF(seq); return -1; }
            int ok = u128_le(ah, al, zh, zl);                 /* first <= last, after the previous range's last */
            if (v == 0) {
                ok = ok && zh == 0 && zl <= 0xffffffffu && (k == 0 || p->a4[2 * k - 1] < al);
                p->a4[2 * k] = (uint32_t)al; p->a4[2 * k + 1] = (uint32_t)zl;
            } else {
                const uint64_t *pv = k ? p->a6 + 4 * (k - 1) : NULL;
                ok = ok && (!pv || pv[2] < ah || (pv[2] == ah && pv[3] < al));
                uint64_t *r = p->a6 + 4 * k;
                r[0] = ah; r[1] = al; r[2] = zh; r[3] = zl;
            }
            if (!ok) {
                Py_DECREF(seq);
                PyErr_SetString(PyExc_ValueError, "accept: ranges must be sorted, disjoint, first <= last, in range");
                return -1;
            }
        }
        Py_DECREF(seq);
    }
    return 0;
}

/* ---- sources: accept_networks (sources.py) */

static int accepts_v4(const Pump *p, uint32_t n) {
    Py_ssize_t lo = 0, hi = p->na4;              /* the first range starting above n */
    while (lo < hi) {
        Py_ssize_t mid = (lo + hi) / 2;
        if (p->a4[2 * mid] <= n) lo = mid + 1; else hi = mid;
    }
    return lo > 0 && n <= p->a4[2 * lo - 1];
}

static int accepts_v6(const Pump *p, const uint8_t b[16]) {
    if (memcmp(b, "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12) == 0)     /* ::ffff:a.b.c.d: the IPv4 address it is */
        return accepts_v4(p, (uint32_t)b[12] << 24 | (uint32_t)b[13] << 16 | (uint32_t)b[14] << 8 | b[15]);
    uint64_t h = 0, l = 0;
    for (int k = 0; k < 8; k++) { h = h << 8 | b[k]; l = l << 8 | b[8 + k]; }
    Py_ssize_t lo = 0, hi = p->na6;
    while (lo < hi) {
        Py_ssize_t mid = (lo + hi) / 2;
        if (u128_le(p->a6[4 * mid], p->a6[4 * mid + 1], h, l)) lo = mid + 1; else hi = mid;
    }
    return lo > 0 && u128_le(h, l, p->a6[4 * (lo - 1) + 2], p->a6[4 * (lo - 1) + 3]);
}

/* whether the kernel's source address is accepted */
static int accepts_sa(const Pump *p, const struct sockaddr_storage *a) {
    if (p->accept_all) return 1;
    if (a->ss_family == AF_INET) return accepts_v4(p, ntohl(((const struct sockaddr_in *)a)->sin_addr.s_addr));
    if (a->ss_family == AF_INET6) return accepts_v6(p, ((const struct sockaddr_in6 *)a)->sin6_addr.s6_addr);
    return 0;
}

/* whether the address text `host` (a source tuple's first item) is accepted: inet_pton, the scope id dropped;
 * a name, or no text, is not (sources.address_key) */
static int accepts_text(const Pump *p, PyObject *host) {
    if (p->accept_all) return 1;
    Py_ssize_t n;
    const char *h = PyUnicode_Check(host) ? PyUnicode_AsUTF8AndSize(host, &n) : NULL;
    if (!h) { PyErr_Clear(); return 0; }
    char buf[INET6_ADDRSTRLEN + 1];
    const char *pc = memchr(h, '%', (size_t)n);
    if (pc) n = pc - h;
    if (n >= (Py_ssize_t)sizeof buf || memchr(h, 0, (size_t)n)) return 0;
    memcpy(buf, h, (size_t)n);
    buf[n] = 0;
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, buf, &a4) == 1) return accepts_v4(p, ntohl(a4.s_addr));
    if (inet_pton(AF_INET6, buf, &a6) == 1) return accepts_v6(p, a6.s6_addr);
    return 0;
}


/* ---- destinations: allow_networks (forwarding._permitted) */

/* ranges: [(version, first, last)] (settings.permitted_ranges), at most PUMP_MAX_RANGES of each family
 * kept (more: every send is Python's, nranges = -1); anything malformed is a ValueError or OverflowError */
static int ranges_init(Pump *p, PyObject *ranges) {
    PyObject *seq = PySequence_Fast(ranges, "ranges must be a sequence");
    if (!seq) return -1;
    p->nranges = p->nranges6 = 0;
    for (Py_ssize_t k = 0; k < PySequence_Fast_GET_SIZE(seq); k++) {
        long ver;
        PyObject *a, *z, *t = PySequence_Fast_GET_ITEM(seq, k);
        uint64_t ah, al, zh, zl;
        if (!PyTuple_Check(t) || !PyArg_ParseTuple(t, "lOO", &ver, &a, &z)
                || u128_of(a, &ah, &al) || u128_of(z, &zh, &zl)) {
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "ranges: (version, first, last)");
            Py_DECREF(seq);
            return -1;
        }
        if (ver != 4 && ver != 6) continue;
        if ((ver == 4 ? p->nranges : p->nranges6) == PUMP_MAX_RANGES) {   /* more than we keep */
            p->nranges = -1;
            break;
        }
        if (ver == 4) {
            if (ah || zh || al > 0xffffffffu || zl > 0xffffffffu) continue;  /* not an IPv4 range: matches nothing */
            p->lo[p->nranges] = (uint32_t)al; p->hi[p->nranges] = (uint32_t)zl; p->nranges++;
        } else {
            uint64_t *r = p->r6[p->nranges6++];
            r[0] = ah; r[1] = al; r[2] = zh; r[3] = zl;
        }
    }
    Py_DECREF(seq);
    return 0;
}

static int permitted_v4(const Pump *p, uint32_t n) {
    for (int k = 0; k < p->nranges; k++)
        if (p->lo[k] <= n && n <= p->hi[k]) return 1;
    return 0;
}

/* an IPv6 address in the IPv6 ranges, or IPv4-mapped and its IPv4 address in the IPv4 ranges (as _permitted:
 * a dual-stack socket's IPv4 peer, its `received`) */
static int permitted_v6(const Pump *p, const uint8_t b[16]) {
    uint64_t h = 0, l = 0;
    for (int k = 0; k < 8; k++) { h = h << 8 | b[k]; l = l << 8 | b[8 + k]; }
    for (int k = 0; k < p->nranges6; k++)
        if (u128_le(p->r6[k][0], p->r6[k][1], h, l) && u128_le(h, l, p->r6[k][2], p->r6[k][3])) return 1;
    return memcmp(b, "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12) == 0
           && permitted_v4(p, (uint32_t)b[12] << 24 | (uint32_t)b[13] << 16 | (uint32_t)b[14] << 8 | b[15]);
}

/* dest = (host, port, TRANSPORT): the address to send to from our socket (1), or 0 when Python must decide (the
 * header comment says when) */
static int pump_dest(const Pump *p, PyObject *dest, PumpAddr *to) {
    if (!PyTuple_Check(dest) || PyTuple_GET_SIZE(dest) != 3 || p->nranges < 0
            || (p->family != AF_INET && p->family != AF_INET6)) return 0;
    PyObject *host = PyTuple_GET_ITEM(dest, 0), *port = PyTuple_GET_ITEM(dest, 1), *tr = PyTuple_GET_ITEM(dest, 2);
    if (!PyUnicode_Check(host) || !PyUnicode_Check(tr) || PyUnicode_CompareWithASCIIString(tr, "UDP") != 0) return 0;
    const char *h = PyUnicode_AsUTF8(host);
    if (!h) { PyErr_Clear(); return 0; }
    long pt = PyLong_AsLong(port);
    if (pt <= 0 || pt >= 65536) { PyErr_Clear(); return 0; }
    struct in_addr a4;
    struct in6_addr a6;
    memset(to, 0, sizeof *to);
    if (inet_pton(AF_INET, h, &a4) == 1) {
        if (!permitted_v4(p, ntohl(a4.s_addr))) return 0;       /* not permitted: Python counts and warns */
        if (p->family == AF_INET) {
            to->u.v4.sin_family = AF_INET;
            to->u.v4.sin_port = htons((uint16_t)pt);
            to->u.v4.sin_addr = a4;
            to->len = sizeof to->u.v4;
            return 1;
        }
        memset(a6.s6_addr, 0, 10);                               /* ::ffff:a.b.c.d */
        a6.s6_addr[10] = a6.s6_addr[11] = 0xff;
        memcpy(a6.s6_addr + 12, &a4, 4);
    } else if (p->family != AF_INET6 || inet_pton(AF_INET6, h, &a6) != 1 || !permitted_v6(p, a6.s6_addr))
        return 0;
    to->u.v6.sin6_family = AF_INET6;
    to->u.v6.sin6_port = htons((uint16_t)pt);
    to->u.v6.sin6_addr = a6;
    to->len = sizeof to->u.v6;
    return 1;
}

/* An error sendto(2) may return for an earlier datagram: with IP_RECVERR (transport.py) an ICMP error about one is
 * reported once, by the next call on the socket (udp(7)), whatever it sends; that call is made again (the error is
 * read from the error queue, for the datagram it was about). */
static int async_send_error(int e) {
    return e == ECONNREFUSED || e == EHOSTUNREACH || e == ENETUNREACH || e == EHOSTDOWN || e == EPROTO;
}

/* send; 0 on success, else errno (-1: a Python exception, from `sendto` when there is no socket) */
static int pump_send(Pump *p, const char *data, Py_ssize_t n, const PumpAddr *to, PyObject *dest) {
    if (p->fd < 0) {
        PyObject *addr = Py_BuildValue("(OO)", PyTuple_GET_ITEM(dest, 0), PyTuple_GET_ITEM(dest, 1));
        PyObject *b = addr ? PyBytes_FromStringAndSize(data, n) : NULL;
        PyObject *r = b ? PyObject_CallFunctionObjArgs(p->py_sendto, b, addr, NULL) : NULL;
        Py_XDECREF(addr); Py_XDECREF(b);
        if (!r) return -1;
        Py_DECREF(r);
        return 0;
    }
    for (int stale = 0;;) {
        if (sendto(p->fd, data, (size_t)n, 0, &to->u.sa, to->len) >= 0) return 0;
        if (errno == EINTR) continue;
        if (!stale && async_send_error(errno)) { stale = 1; continue; }
        return errno ? errno : EIO;
    }
}
