/* Finding bytes in a SIP head with memchr (included by _sipfast.c, before the readers that use them: relay_plain,
 * header_line, dialog_plain, parse_request, to_values, _sipgrammar.h). No I/O.
 *
 * Every scan here jumps with memchr from one candidate byte to the next (a SIP head has a CR a line, a 'z' or a
 * ';' a few times) and answers exactly what a loop over every byte of the same span answers: a loop over every byte
 * cost an ACK or a BYE ~4,000 instructions (instrbench), its head read three times so, and glibc's memmem ~1,600 an
 * INVITE. */

/* whether needle occurs in p[0:n] */
static int has(const char *p, Py_ssize_t n, const char *needle) {
    Py_ssize_t w = (Py_ssize_t)strlen(needle);
    const char *e = p + n;
    if (w == 0) return 1;
    while (e - p >= w && (p = memchr(p, needle[0], (size_t)(e - p - w + 1))) != NULL) {
        if (memcmp(p, needle, w) == 0) return 1;
        p++;
    }
    return 0;
}

/* where the first CRLF CRLF of d[0:len] starts, -1 for none */
static Py_ssize_t head_end(const char *d, Py_ssize_t len) {
    const char *p = d, *e = d + len;
    while (e - p >= 4 && (p = memchr(p, '\r', (size_t)(e - p - 3))) != NULL) {
        if (p[1] == '\n' && p[2] == '\r' && p[3] == '\n') return p - d;
        p++;
    }
    return -1;
}

/* whether every CR of d[a:z] is followed by LF (d[z] is readable) and every LF of it preceded by CR (d[a - 1] too,
 * when a > 0; at 0 an LF is not) */
static int crlf_only(const char *d, Py_ssize_t a, Py_ssize_t z) {
    const char *q, *e = d + z;
    for (q = d + a; q < e && (q = memchr(q, '\r', (size_t)(e - q))) != NULL; q++)
        if (q[1] != '\n') return 0;
    for (q = d + a; q < e && (q = memchr(q, '\n', (size_t)(e - q))) != NULL; q++)
        if (q == d || q[-1] != '\r') return 0;
    return 1;
}
