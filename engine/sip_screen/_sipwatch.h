/* The requests the UDP pump relayed itself, which an ICMP error may be about (included by _sippump.h, after its Pump
 * and monotonic()): unreachable.py answers such an error 503, as it answers one about a request Python forwarded.
 *
 * Theory of operation: the pump relays in-dialog requests (BYE, INFO, UPDATE, PRACK, NOTIFY, MESSAGE, REFER ...;
 * never an INVITE or a CANCEL, and an ACK is never answered) with no Python call, so it keeps them itself: a ring of
 * PUMP_WATCH slots, each the branch it gave the request (the hex digits after BRANCH_PREFIX), until when an error
 * may be about it (PUMP_WATCH_S after its send), and the datagram as received with its source -- objects the round
 * made anyway, referenced, not copied: what a 503 is made from (a request without our Via, as send_failed gets one).
 * A send takes the slot put longest ago, whatever it holds: O(1), two references taken and two given back, 20
 * bytes copied, the round's clock (Pump.run reads it once a round; handle() reads it). So at most PUMP_WATCH
 * requests of at most MAX_FAST_REQUEST bytes are held (~3 MB at worst), an expired one until its slot is taken.
 * Pump.unreachable(branch) looks an error's branch up: the slots are scanned (an ICMP error is rare; 2,048
 * comparisons of 8 bytes first); every copy on that branch is let go (a retransmission, relayed again on the same
 * branch: an error about each copy answers once) and the newest unexpired one returned as (datagram, source).
 */

/* the request relayed as `data` from `src` under our branch (its hex digits `br`), at `now` */
static void watch_put(Pump *p, const char *br, PyObject *data, PyObject *src, double now) {
    WatchSlot *s = &p->watch[p->watch_at];
    p->watch_at = (p->watch_at + 1) & (PUMP_WATCH - 1);
    PyObject *od = s->data, *os = s->src;
    Py_INCREF(data); Py_INCREF(src);
    s->data = data; s->src = src;
    memcpy(s->branch, br, WATCH_BRANCH);
    s->until = now + PUMP_WATCH_S;
    Py_XDECREF(od); Py_XDECREF(os);              /* (last: a deallocation may run Python code) */
}

static void watch_clear(Pump *p) {
    if (!p->watch) return;
    for (int k = 0; k < PUMP_WATCH; k++) {
        Py_CLEAR(p->watch[k].data);
        Py_CLEAR(p->watch[k].src);
    }
}

/* unreachable(digits): (datagram, source) of the request relayed in the last PUMP_WATCH_S seconds under the branch
 * BRANCH_PREFIX + `digits`, the newest copy, or None; every copy is forgotten */
static PyObject *Pump_unreachable(Pump *p, PyObject *digits) {
    if (!pump_ready(p)) return NULL;
    Py_ssize_t n;
    const char *b = PyUnicode_Check(digits) ? PyUnicode_AsUTF8AndSize(digits, &n) : NULL;
    if (!b) { PyErr_Clear(); Py_RETURN_NONE; }
    if (n != WATCH_BRANCH || !p->watch) Py_RETURN_NONE;
    uint64_t head;
    memcpy(&head, b, sizeof head);
    double now = monotonic();
    PyObject *res = NULL;
    double best = 0;
    for (int k = 0; k < PUMP_WATCH; k++) {
        WatchSlot *s = &p->watch[k];
        uint64_t h;
        memcpy(&h, s->branch, sizeof h);
        if (h != head || !s->data || memcmp(s->branch, b, WATCH_BRANCH) != 0) continue;
        PyObject *d = s->data, *src = s->src;
        s->data = s->src = NULL;
        if (s->until >= now && s->until > best) {
            best = s->until;
            Py_XDECREF(res);
            res = PyTuple_Pack(2, d, src);
        }
        Py_DECREF(d); Py_DECREF(src);
        if (best && !res) return NULL;           /* (PyTuple_Pack failed: no memory) */
    }
    if (res) return res;
    Py_RETURN_NONE;
}
