/*
 * spandsp-peer: a small T.38 (UDPTL over UDP) fax test peer built on spandsp.
 *
 * It is a reference end point for interop testing of switchboard's own T.38
 * terminal: one process = one T.38 terminal (sender or receiver), talking
 * UDPTL (ITU-T T.38 clause 9.1 / Annex B framing, redundancy error recovery)
 * to one remote UDP address.
 *
 * See README.md next to this file for the framing choices, the JSON output
 * and the exit codes.
 */
#define _GNU_SOURCE 1

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <tiffio.h>
#include <spandsp.h>

/* ------------------------------------------------------------------------ */
/* Limits                                                                   */
/* ------------------------------------------------------------------------ */

#define MAX_REDUNDANCY      15      /* secondaries we put in one datagram */
#define HIST_SIZE           16      /* tx history ring, > MAX_REDUNDANCY */
#define MAX_IFP_LEN         2048    /* largest IFP we keep/accept (T38_RX_BUF_LEN) */
#define MAX_RX_SECONDARIES  32      /* secondaries we remember per rx datagram */
#define MAX_DATAGRAM        65536
#define TICK_MS             20
#define TICK_SAMPLES        160     /* 20 ms at 8 kHz */
#define SEQ_JUMP_LIMIT      1000    /* forward jump above this = sequence restart */

enum { EXIT_FAX_OK = 0, EXIT_FAX_FAILED = 1, EXIT_USAGE = 2 };

/* ------------------------------------------------------------------------ */
/* Options and state                                                        */
/* ------------------------------------------------------------------------ */

typedef struct {
    bool send_mode;
    const char *file;
    const char *local;
    const char *remote;
    bool calling;
    bool ecm;
    int version;
    int redundancy;
    double loss_pct;
    uint64_t seed;
    double timeout_s;
    const char *ident;
    int verbose;
    bool no_repeats;
    bool tep;
} options_t;

typedef struct {
    uint16_t seq;
    int len;
    uint8_t buf[MAX_IFP_LEN];
} hist_entry_t;

typedef struct {
    options_t opt;
    int fd;
    struct sockaddr_storage remote;
    socklen_t remote_len;

    t38_terminal_state_t *t38;
    t30_state_t *t30;
    t38_core_state_t *core;

    /* tx side */
    uint16_t tx_seq;
    uint32_t tx_ifps;
    hist_entry_t hist[HIST_SIZE];
    uint64_t rng;

    /* rx side */
    bool rx_started;
    uint16_t rx_next;

    /* counters */
    unsigned long rx_datagrams;
    unsigned long tx_datagrams;
    unsigned long tx_dropped;
    unsigned long tx_errors;
    unsigned long recovered;
    unsigned long unrecovered;
    unsigned long rx_duplicates;
    unsigned long rx_malformed;
    unsigned long rx_foreign;
    unsigned long rx_fec;

    /* phase E */
    bool phase_e;
    int completion_code;
} peer_t;

static struct timespec g_start;
static int g_verbose;
static volatile sig_atomic_t g_stop;

/* ------------------------------------------------------------------------ */
/* Logging (everything goes to stderr; stdout carries only the JSON line)   */
/* ------------------------------------------------------------------------ */

static double elapsed_s(void)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double) (now.tv_sec - g_start.tv_sec) + (double) (now.tv_nsec - g_start.tv_nsec) / 1e9;
}

static void logf_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logf_(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "[%8.3f] ", elapsed_s());
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

#define VLOG(...) do { if (g_verbose) logf_(__VA_ARGS__); } while (0)

static void span_message_handler(int level, const char *text)
{
    size_t n;

    (void) level;
    n = strlen(text);
    while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r'))
        n--;
    fprintf(stderr, "[%8.3f] spandsp: %.*s\n", elapsed_s(), (int) n, text);
}

static void hex_string(const uint8_t *buf, int len, char *out, size_t outsz)
{
    static const char digits[] = "0123456789abcdef";
    size_t o = 0;
    int i;

    for (i = 0; i < len && o + 3 <= outsz; i++) {
        out[o++] = digits[buf[i] >> 4];
        out[o++] = digits[buf[i] & 0x0F];
    }
    if (o < outsz)
        out[o] = '\0';
    else if (outsz > 0)
        out[outsz - 1] = '\0';
}

/* ------------------------------------------------------------------------ */
/* IFP description (only for log output; spandsp does the real decoding).    */
/* Follows the encoding spandsp itself uses, including the T.38 version 0    */
/* "half octet" field-type packing.                                          */
/* ------------------------------------------------------------------------ */

static void describe_ifp(const uint8_t *buf, int len, int version, char *out, size_t outsz)
{
    int ptr;
    int b0;
    int dfp;
    int value;
    unsigned int count;
    unsigned int i;
    bool other_half = false;
    size_t o;

    if (len < 1) {
        snprintf(out, outsz, "empty");
        return;
    }
    b0 = buf[0];
    dfp = (b0 >> 7) & 1;
    if ((b0 & 0x20)) {
        if (len < 2) {
            snprintf(out, outsz, "truncated-extension");
            return;
        }
        value = ((b0 << 2) & 0x3C) | ((buf[1] >> 6) & 0x03);
        ptr = 2;
    } else {
        value = (b0 >> 1) & 0x0F;
        ptr = 1;
    }
    if (((b0 >> 6) & 1) == 0) {
        if ((b0 & 0x20))
            value += T38_IND_V8_ANSAM;
        snprintf(out, outsz, "indicator %s%s", t38_indicator_to_str(value),
                 (dfp || ptr != len) ? " (unexpected extra octets)" : "");
        return;
    }
    if ((b0 & 0x20))
        value += T38_DATA_V8;
    o = (size_t) snprintf(out, outsz, "data %s", t38_data_type_to_str(value));
    if (!dfp || o >= outsz)
        return;
    if (ptr >= len) {
        snprintf(out + o, outsz - o, " [truncated]");
        return;
    }
    if ((buf[ptr] & 0x80) == 0) {
        count = buf[ptr++];
    } else if ((buf[ptr] & 0xC0) == 0x80 && ptr + 1 < len) {
        count = ((unsigned int) (buf[ptr] & 0x3F) << 8) | buf[ptr + 1];
        ptr += 2;
    } else {
        snprintf(out + o, outsz - o, " [bad field count]");
        return;
    }
    o += (size_t) snprintf(out + o, outsz - o, " [");
    for (i = 0; i < count && o < outsz; i++) {
        int present;
        int ftype;
        int flen = 0;

        if (ptr >= len) {
            snprintf(out + o, outsz - o, " truncated]");
            return;
        }
        if (version == 0) {
            if (other_half) {
                present = (buf[ptr] >> 3) & 1;
                ftype = buf[ptr] & 0x07;
                ptr++;
                other_half = false;
            } else {
                present = (buf[ptr] >> 7) & 1;
                ftype = (buf[ptr] >> 4) & 0x07;
                if (present)
                    ptr++;
                else
                    other_half = true;
            }
        } else {
            present = (buf[ptr] >> 7) & 1;
            if ((buf[ptr] & 0x40)) {
                if (ptr + 1 >= len) {
                    snprintf(out + o, outsz - o, " truncated]");
                    return;
                }
                ftype = T38_FIELD_CM_MESSAGE + (((buf[ptr] << 2) & 0x3C) | ((buf[ptr + 1] >> 6) & 0x03));
                ptr += 2;
            } else {
                ftype = (buf[ptr] >> 3) & 0x07;
                ptr++;
            }
        }
        if (present) {
            if (ptr + 1 >= len) {
                snprintf(out + o, outsz - o, " truncated]");
                return;
            }
            flen = ((buf[ptr] << 8) | buf[ptr + 1]) + 1;
            ptr += 2 + flen;
        }
        o += (size_t) snprintf(out + o, outsz - o, "%s%s:%d", i ? " " : "", t38_field_type_to_str(ftype), flen);
    }
    if (o < outsz) {
        if (other_half)
            ptr++;
        snprintf(out + o, outsz - o, "]%s", ptr == len ? "" : " (length mismatch)");
    }
}

static void log_ifp(const char *dir, uint16_t seq, const uint8_t *buf, int len, int version, const char *extra)
{
    char hex[2 * MAX_IFP_LEN + 1];
    char desc[512];

    if (!g_verbose)
        return;
    hex_string(buf, len, hex, sizeof(hex));
    describe_ifp(buf, len, version, desc, sizeof(desc));
    logf_("%s seq=%u len=%d %s ifp=%s%s%s", dir, seq, len, desc, hex, extra ? " " : "", extra ? extra : "");
}

/* Whole UDPTL datagram, only at --verbose --verbose. */
static void log_datagram(const char *dir, uint16_t seq, const uint8_t *buf, size_t len)
{
    static char hex[2 * MAX_DATAGRAM + 1];

    if (g_verbose < 2)
        return;
    hex_string(buf, (int) len, hex, sizeof(hex));
    logf_("%s udptl seq=%u len=%zu datagram=%s", dir, seq, len, hex);
}

/* ------------------------------------------------------------------------ */
/* ASN.1 aligned PER helpers for UDPTL                                      */
/* ------------------------------------------------------------------------ */

/* Length determinant (X.691 10.9), unconstrained, without fragmentation.
   Returns octets written, or -1 if the value does not fit / no space. */
static int per_put_length(uint8_t *buf, size_t cap, size_t *pos, unsigned int value)
{
    if (value < 0x80) {
        if (*pos + 1 > cap)
            return -1;
        buf[(*pos)++] = (uint8_t) value;
        return 1;
    }
    if (value < 0x4000) {
        if (*pos + 2 > cap)
            return -1;
        buf[(*pos)++] = (uint8_t) (0x80 | (value >> 8));
        buf[(*pos)++] = (uint8_t) (value & 0xFF);
        return 2;
    }
    return -1;
}

/* Returns 0 and the value, or -1 (truncated) / -2 (fragmented form, 16K+). */
static int per_get_length(const uint8_t *buf, size_t len, size_t *pos, unsigned int *value)
{
    if (*pos >= len)
        return -1;
    if ((buf[*pos] & 0x80) == 0) {
        *value = buf[(*pos)++];
        return 0;
    }
    if ((buf[*pos] & 0xC0) == 0x80) {
        if (*pos + 2 > len)
            return -1;
        *value = ((unsigned int) (buf[*pos] & 0x3F) << 8) | buf[*pos + 1];
        *pos += 2;
        return 0;
    }
    return -2;
}

static int per_put_open(uint8_t *buf, size_t cap, size_t *pos, const uint8_t *data, unsigned int n)
{
    if (per_put_length(buf, cap, pos, n) < 0)
        return -1;
    if (*pos + n > cap)
        return -1;
    memcpy(buf + *pos, data, n);
    *pos += n;
    return 0;
}

static int per_get_open(const uint8_t *buf, size_t len, size_t *pos, const uint8_t **data, unsigned int *n,
                        const char **why)
{
    int r;

    r = per_get_length(buf, len, pos, n);
    if (r == -2) {
        *why = "fragmented (>=16K) length determinant not supported";
        return -1;
    }
    if (r < 0) {
        *why = "truncated length determinant";
        return -1;
    }
    if (*n > len - *pos) {
        *why = "length determinant runs past end of datagram";
        return -1;
    }
    *data = buf + *pos;
    *pos += *n;
    return 0;
}

/* Build one UDPTLPacket: seq | primary (open type) | error-recovery
   (secondary-ifp-packets: newest first, i.e. seq-1, seq-2, ...). */
static int udptl_build(uint8_t *out, size_t cap, uint16_t seq, const uint8_t *ifp, int ifp_len,
                       const hist_entry_t *const *secondaries, int nsec)
{
    size_t pos = 0;
    int i;

    if (cap < 2)
        return -1;
    out[pos++] = (uint8_t) (seq >> 8);
    out[pos++] = (uint8_t) (seq & 0xFF);
    if (per_put_open(out, cap, &pos, ifp, (unsigned int) ifp_len) < 0)
        return -1;
    if (pos + 1 > cap)
        return -1;
    out[pos++] = 0x00;              /* CHOICE index 0 = secondary-ifp-packets, 7 bits padding */
    if (per_put_length(out, cap, &pos, (unsigned int) nsec) < 0)
        return -1;
    for (i = 0; i < nsec; i++) {
        if (per_put_open(out, cap, &pos, secondaries[i]->buf, (unsigned int) secondaries[i]->len) < 0)
            return -1;
    }
    return (int) pos;
}

typedef struct {
    uint16_t seq;
    const uint8_t *primary;
    unsigned int primary_len;
    bool fec;
    unsigned int nsec;                  /* secondaries present in the datagram */
    unsigned int nsec_kept;             /* ... of which we stored (newest first) */
    const uint8_t *sec[MAX_RX_SECONDARIES];
    unsigned int sec_len[MAX_RX_SECONDARIES];
} udptl_packet_t;

/* Parse a UDPTLPacket. Returns 0, or -1 with *why set. */
static int udptl_parse(const uint8_t *buf, size_t len, udptl_packet_t *p, const char **why)
{
    size_t pos = 0;
    unsigned int i;
    unsigned int n;
    int r;

    memset(p, 0, sizeof(*p));
    if (len < 2) {
        *why = "shorter than a sequence number";
        return -1;
    }
    p->seq = (uint16_t) ((buf[0] << 8) | buf[1]);
    pos = 2;
    if (per_get_open(buf, len, &pos, &p->primary, &p->primary_len, why) < 0)
        return -1;
    if (p->primary_len == 0) {
        *why = "empty primary IFP";
        return -1;
    }
    if (pos >= len) {
        *why = "missing error-recovery field";
        return -1;
    }
    if ((buf[pos] & 0x80) == 0) {
        /* secondary-ifp-packets: SEQUENCE OF open type */
        pos++;
        r = per_get_length(buf, len, &pos, &n);
        if (r == -2) {
            *why = "fragmented secondary count not supported";
            return -1;
        }
        if (r < 0) {
            *why = "truncated secondary count";
            return -1;
        }
        p->nsec = n;
        for (i = 0; i < n; i++) {
            const uint8_t *d;
            unsigned int dl;

            if (per_get_open(buf, len, &pos, &d, &dl, why) < 0)
                return -1;
            if (i < MAX_RX_SECONDARIES) {
                p->sec[i] = d;
                p->sec_len[i] = dl;
                p->nsec_kept = i + 1;
            }
        }
    } else {
        /* fec-info: fec-npackets INTEGER (unconstrained: length + octets),
           fec-data SEQUENCE OF OCTET STRING. Parsed for validity, not used. */
        const uint8_t *d;
        unsigned int dl;

        p->fec = true;
        pos++;
        if (per_get_open(buf, len, &pos, &d, &dl, why) < 0)
            return -1;
        if (dl == 0) {
            *why = "empty fec-npackets integer";
            return -1;
        }
        r = per_get_length(buf, len, &pos, &n);
        if (r < 0) {
            *why = (r == -2) ? "fragmented fec-data count not supported" : "truncated fec-data count";
            return -1;
        }
        for (i = 0; i < n; i++) {
            if (per_get_open(buf, len, &pos, &d, &dl, why) < 0)
                return -1;
        }
    }
    if (pos != len) {
        static char msg[64];

        snprintf(msg, sizeof(msg), "%zu trailing octet(s) after error-recovery", len - pos);
        *why = msg;
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Transmit                                                                 */
/* ------------------------------------------------------------------------ */

static uint64_t rng_next(peer_t *p)
{
    /* xorshift64* */
    p->rng ^= p->rng >> 12;
    p->rng ^= p->rng << 25;
    p->rng ^= p->rng >> 27;
    return p->rng * UINT64_C(2685821657736338717);
}

static bool loss_drop(peer_t *p)
{
    if (p->opt.loss_pct <= 0.0)
        return false;
    return (double) (rng_next(p) % 1000000) < p->opt.loss_pct * 10000.0;
}

static void send_datagram(peer_t *p, const uint8_t *buf, int len, uint16_t seq, int copy)
{
    if (loss_drop(p)) {
        p->tx_dropped++;
        VLOG("tx seq=%u copy=%d DROPPED by --loss simulation", seq, copy);
        return;
    }
    if (sendto(p->fd, buf, (size_t) len, 0, (const struct sockaddr *) &p->remote, p->remote_len) < 0) {
        p->tx_errors++;
        if (g_verbose || p->tx_errors <= 3)
            logf_("sendto failed (seq=%u): %s", seq, strerror(errno));
        return;
    }
    p->tx_datagrams++;
}

static int tx_packet_handler(t38_core_state_t *core, void *user_data, const uint8_t *buf, int len, int count)
{
    peer_t *p = (peer_t *) user_data;
    const hist_entry_t *sec[MAX_REDUNDANCY];
    uint8_t dgram[MAX_DATAGRAM];
    hist_entry_t *h;
    uint16_t seq;
    int repeats;
    int depth_hint;
    int nsec;
    int dlen;
    int i;
    char extra[128];

    (void) core;
    if (len <= 0 || len > MAX_IFP_LEN) {
        logf_("tx: spandsp handed us an IFP of bad length %d, not sent", len);
        return -1;
    }
    seq = p->tx_seq;
    /* spandsp packs "count" as: low byte = number of transmissions,
       2nd byte = redundancy depth hint (unset by the terminal defaults). */
    repeats = count & 0xFF;
    depth_hint = (count >> 8) & 0xFF;
    if (repeats < 1)
        repeats = 1;
    if (p->opt.no_repeats)
        repeats = 1;

    /* Secondaries: the previous N primaries, newest first. */
    nsec = p->opt.redundancy;
    if ((uint32_t) nsec > p->tx_ifps)
        nsec = (int) p->tx_ifps;
    for (i = 0; i < nsec; i++)
        sec[i] = &p->hist[(uint16_t) (seq - 1 - i) % HIST_SIZE];

    dlen = udptl_build(dgram, sizeof(dgram), seq, buf, len, sec, nsec);
    if (dlen < 0) {
        logf_("tx seq=%u: datagram would not fit, sending without redundancy", seq);
        dlen = udptl_build(dgram, sizeof(dgram), seq, buf, len, sec, 0);
    }

    if (depth_hint)
        snprintf(extra, sizeof(extra), "count=%d (spandsp count=0x%x, depth hint %d ignored) red=%d", repeats, count,
                 depth_hint, nsec);
    else
        snprintf(extra, sizeof(extra), "count=%d red=%d", repeats, nsec);
    log_ifp("tx", seq, buf, len, p->opt.version, extra);

    if (dlen > 0) {
        log_datagram("tx", seq, dgram, (size_t) dlen);
        for (i = 0; i < repeats; i++)
            send_datagram(p, dgram, dlen, seq, i + 1);
    }

    h = &p->hist[seq % HIST_SIZE];
    h->seq = seq;
    h->len = len;
    memcpy(h->buf, buf, (size_t) len);
    p->tx_ifps++;
    p->tx_seq = (uint16_t) (seq + 1);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Receive                                                                  */
/* ------------------------------------------------------------------------ */

static void feed_ifp(peer_t *p, uint16_t seq, const uint8_t *buf, unsigned int len, const char *tag)
{
    if (len == 0)
        return;
    log_ifp("rx", seq, buf, (int) len, p->opt.version, tag);
    if (t38_core_rx_ifp_packet(p->core, buf, (int) len, seq) < 0)
        logf_("rx seq=%u: spandsp rejected IFP (see spandsp log with --verbose)", seq);
}

static void handle_datagram(peer_t *p, const uint8_t *buf, size_t len)
{
    udptl_packet_t pk;
    const char *why = "?";
    uint16_t diff;
    unsigned int k;

    if (udptl_parse(buf, len, &pk, &why) < 0) {
        char hex[2 * 64 + 1];

        p->rx_malformed++;
        hex_string(buf, len < 64 ? (int) len : 64, hex, sizeof(hex));
        logf_("rx: malformed UDPTL datagram (%zu octets) dropped: %s; first octets %s%s", len, why, hex,
              len > 64 ? "..." : "");
        return;
    }
    if (pk.fec) {
        p->rx_fec++;
        if (p->rx_fec == 1)
            logf_("rx: peer uses FEC error recovery; FEC data is parsed but not used for repair");
    }
    VLOG("rx datagram seq=%u len=%zu primary=%u %s=%u", pk.seq, len, pk.primary_len,
         pk.fec ? "fec" : "secondaries", pk.nsec);
    log_datagram("rx", pk.seq, buf, len);

    if (!p->rx_started) {
        /* First datagram: everything in its redundancy really was sent
           before it, so play it all, oldest first. */
        p->rx_started = true;
        for (k = pk.nsec_kept; k > 0; k--) {
            if (pk.sec_len[k - 1] == 0)
                continue;
            feed_ifp(p, (uint16_t) (pk.seq - k), pk.sec[k - 1], pk.sec_len[k - 1], "[from redundancy, before first]");
            p->recovered++;
        }
        feed_ifp(p, pk.seq, pk.primary, pk.primary_len, NULL);
        p->rx_next = (uint16_t) (pk.seq + 1);
        return;
    }

    diff = (uint16_t) (pk.seq - p->rx_next);
    if (diff >= 0x8000) {
        /* In the past: a repeat copy or a late packet. */
        p->rx_duplicates++;
        VLOG("rx seq=%u: duplicate/late (expected %u), ignored", pk.seq, p->rx_next);
        return;
    }
    if (diff > SEQ_JUMP_LIMIT) {
        logf_("rx seq=%u: sequence jump of %u from expected %u; treating as restart", pk.seq, diff, p->rx_next);
    } else if (diff > 0) {
        /* Gap of `diff` packets: rx_next .. seq-1. secondary[i] is seq-1-i. */
        for (k = diff; k > 0; k--) {
            uint16_t missing = (uint16_t) (pk.seq - k);

            if (k - 1 < pk.nsec_kept && pk.sec_len[k - 1] > 0) {
                feed_ifp(p, missing, pk.sec[k - 1], pk.sec_len[k - 1], "[recovered from redundancy]");
                p->recovered++;
            } else {
                p->unrecovered++;
                logf_("rx seq=%u: lost and not covered by redundancy (%u secondaries)", missing, pk.nsec);
            }
        }
    }
    feed_ifp(p, pk.seq, pk.primary, pk.primary_len, NULL);
    p->rx_next = (uint16_t) (pk.seq + 1);
}

static bool same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family)
        return false;
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *x = (const struct sockaddr_in *) a;
        const struct sockaddr_in *y = (const struct sockaddr_in *) b;

        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    if (a->ss_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const struct sockaddr_in6 *) a;
        const struct sockaddr_in6 *y = (const struct sockaddr_in6 *) b;

        return x->sin6_port == y->sin6_port && memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
    }
    return false;
}

static void drain_socket(peer_t *p)
{
    static uint8_t buf[MAX_DATAGRAM];
    struct sockaddr_storage from;
    socklen_t fromlen;
    ssize_t n;

    for (;;) {
        fromlen = sizeof(from);
        n = recvfrom(p->fd, buf, sizeof(buf), MSG_DONTWAIT, (struct sockaddr *) &from, &fromlen);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                return;
            if (errno == ECONNREFUSED)
                continue;
            logf_("recvfrom failed: %s", strerror(errno));
            return;
        }
        p->rx_datagrams++;
        if (!same_addr(&from, &p->remote)) {
            p->rx_foreign++;
            if (p->rx_foreign == 1 || g_verbose) {
                char host[NI_MAXHOST];
                char serv[NI_MAXSERV];

                if (getnameinfo((struct sockaddr *) &from, fromlen, host, sizeof(host), serv, sizeof(serv),
                                NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
                    strcpy(host, "?");
                    strcpy(serv, "?");
                }
                logf_("rx: datagram from %s:%s, which is not --remote; processing it anyway", host, serv);
            }
        }
        handle_datagram(p, buf, (size_t) n);
    }
}

/* ------------------------------------------------------------------------ */
/* T.30 callbacks                                                           */
/* ------------------------------------------------------------------------ */

static void phase_e_handler(t30_state_t *s, void *user_data, int completion_code)
{
    peer_t *p = (peer_t *) user_data;

    (void) s;
    if (p->phase_e)
        return;
    p->phase_e = true;
    p->completion_code = completion_code;
    logf_("phase E: %d (%s)", completion_code, t30_completion_code_to_str(completion_code));
}

static int phase_d_handler(t30_state_t *s, void *user_data, int result)
{
    peer_t *p = (peer_t *) user_data;
    t30_stats_t st;

    (void) p;
    t30_get_transfer_statistics(s, &st);
    logf_("phase D: result=0x%02x pages_tx=%d pages_rx=%d bit_rate=%d ecm=%d bad_rows=%d", result, st.pages_tx,
          st.pages_rx, st.bit_rate, st.error_correcting_mode, st.bad_rows);
    return T30_ERR_OK;
}

static int phase_b_handler(t30_state_t *s, void *user_data, int result)
{
    const char *id;

    (void) user_data;
    id = t30_get_rx_ident(s);
    logf_("phase B: result=0x%02x remote ident \"%s\"", result, id ? id : "");
    return T30_ERR_OK;
}

/* ------------------------------------------------------------------------ */
/* Setup                                                                    */
/* ------------------------------------------------------------------------ */

static int parse_addr(const char *spec, struct sockaddr_storage *ss, socklen_t *sslen)
{
    char host[256];
    const char *colon;
    const char *port;
    size_t hl;
    struct addrinfo hints;
    struct addrinfo *res = NULL;
    int rc;

    if (spec[0] == '[') {
        const char *close = strchr(spec, ']');

        if (!close || close[1] != ':')
            return -1;
        hl = (size_t) (close - spec - 1);
        if (hl >= sizeof(host))
            return -1;
        memcpy(host, spec + 1, hl);
        host[hl] = '\0';
        port = close + 2;
    } else {
        colon = strrchr(spec, ':');
        if (!colon)
            return -1;
        hl = (size_t) (colon - spec);
        if (hl >= sizeof(host))
            return -1;
        memcpy(host, spec, hl);
        host[hl] = '\0';
        port = colon + 1;
    }
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_DGRAM;
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
    rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0 || !res)
        return -1;
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *sslen = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: spandsp-peer --mode send|receive --file PATH --local ADDR:PORT --remote ADDR:PORT\n"
            "                    [--calling] [--ecm] [--version N] [--redundancy N] [--loss PCT]\n"
            "                    [--seed N] [--timeout SECS] [--ident STR] [--no-repeats] [--tep]\n"
            "                    [--verbose [--verbose]]\n"
            "       spandsp-peer --self-check\n"
            "\n"
            "  --mode send|receive  send --file (TIFF-F) or receive into --file\n"
            "  --calling            act as the calling party (default: answering)\n"
            "  --ecm                offer/accept T.30 error correction mode (also enables T.6/MMR)\n"
            "  --version N          T.38 version 0..3 for IFP encoding (default 0)\n"
            "  --redundancy N       secondary IFPs per UDPTL datagram, 0..%d (default 3)\n"
            "  --loss PCT           drop PCT%% of outgoing datagrams (deterministic, --seed)\n"
            "  --seed N             loss PRNG seed (default 1)\n"
            "  --timeout SECS       give up after SECS (default 60)\n"
            "  --ident STR          local T.30 ident (TSI/CSI), max 20 chars\n"
            "  --no-repeats         send each IFP once, ignoring spandsp's repeat count\n"
            "  --tep                allow for talker echo protection tone time (default off)\n"
            "  --verbose            log every IFP in/out and spandsp's T.30/T.38 flow log;\n"
            "                       twice for spandsp debug level\n"
            "exit: 0 fax OK, 1 fax failed/timeout, 2 usage or setup error\n",
            MAX_REDUNDANCY);
}

static int parse_int(const char *s, long lo, long hi, long *out)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || end == s || *end != '\0' || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int parse_options(int argc, char **argv, options_t *o, bool *self_check)
{
    enum {
        OPT_MODE = 256, OPT_FILE, OPT_LOCAL, OPT_REMOTE, OPT_CALLING, OPT_ECM, OPT_VERSION, OPT_REDUNDANCY,
        OPT_LOSS, OPT_SEED, OPT_TIMEOUT, OPT_IDENT, OPT_VERBOSE, OPT_NO_REPEATS, OPT_TEP, OPT_SELF_CHECK, OPT_HELP
    };
    static const struct option longopts[] = {
        {"mode", required_argument, NULL, OPT_MODE},
        {"file", required_argument, NULL, OPT_FILE},
        {"local", required_argument, NULL, OPT_LOCAL},
        {"remote", required_argument, NULL, OPT_REMOTE},
        {"calling", no_argument, NULL, OPT_CALLING},
        {"ecm", no_argument, NULL, OPT_ECM},
        {"version", required_argument, NULL, OPT_VERSION},
        {"redundancy", required_argument, NULL, OPT_REDUNDANCY},
        {"loss", required_argument, NULL, OPT_LOSS},
        {"seed", required_argument, NULL, OPT_SEED},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {"ident", required_argument, NULL, OPT_IDENT},
        {"verbose", no_argument, NULL, OPT_VERBOSE},
        {"no-repeats", no_argument, NULL, OPT_NO_REPEATS},
        {"tep", no_argument, NULL, OPT_TEP},
        {"self-check", no_argument, NULL, OPT_SELF_CHECK},
        {"help", no_argument, NULL, OPT_HELP},
        {NULL, 0, NULL, 0}
    };
    const char *mode = NULL;
    long v;
    char *end;
    int c;

    memset(o, 0, sizeof(*o));
    o->version = 0;
    o->redundancy = 3;
    o->seed = 1;
    o->timeout_s = 60.0;
    *self_check = false;

    while ((c = getopt_long(argc, argv, "v", longopts, NULL)) != -1) {
        switch (c) {
        case OPT_MODE: mode = optarg; break;
        case OPT_FILE: o->file = optarg; break;
        case OPT_LOCAL: o->local = optarg; break;
        case OPT_REMOTE: o->remote = optarg; break;
        case OPT_CALLING: o->calling = true; break;
        case OPT_ECM: o->ecm = true; break;
        case OPT_VERSION:
            if (parse_int(optarg, 0, 3, &v) < 0) {
                fprintf(stderr, "--version must be 0..3\n");
                return -1;
            }
            o->version = (int) v;
            break;
        case OPT_REDUNDANCY:
            if (parse_int(optarg, 0, MAX_REDUNDANCY, &v) < 0) {
                fprintf(stderr, "--redundancy must be 0..%d\n", MAX_REDUNDANCY);
                return -1;
            }
            o->redundancy = (int) v;
            break;
        case OPT_LOSS:
            o->loss_pct = strtod(optarg, &end);
            if (end == optarg || *end != '\0' || o->loss_pct < 0.0 || o->loss_pct > 100.0) {
                fprintf(stderr, "--loss must be 0..100\n");
                return -1;
            }
            break;
        case OPT_SEED:
            errno = 0;
            o->seed = strtoull(optarg, &end, 0);
            if (errno || end == optarg || *end != '\0') {
                fprintf(stderr, "--seed must be an integer\n");
                return -1;
            }
            break;
        case OPT_TIMEOUT:
            o->timeout_s = strtod(optarg, &end);
            if (end == optarg || *end != '\0' || o->timeout_s <= 0.0) {
                fprintf(stderr, "--timeout must be > 0\n");
                return -1;
            }
            break;
        case OPT_IDENT:
            if (strlen(optarg) > 20) {
                fprintf(stderr, "--ident is limited to 20 characters by T.30\n");
                return -1;
            }
            o->ident = optarg;
            break;
        case 'v':
        case OPT_VERBOSE: o->verbose++; break;
        case OPT_NO_REPEATS: o->no_repeats = true; break;
        case OPT_TEP: o->tep = true; break;
        case OPT_SELF_CHECK: *self_check = true; break;
        case OPT_HELP: usage(stdout); exit(EXIT_FAX_OK);
        default: return -1;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "unexpected argument: %s\n", argv[optind]);
        return -1;
    }
    if (*self_check)
        return 0;
    if (!mode || (strcmp(mode, "send") != 0 && strcmp(mode, "receive") != 0)) {
        fprintf(stderr, "--mode send|receive is required\n");
        return -1;
    }
    o->send_mode = strcmp(mode, "send") == 0;
    if (!o->file || !o->local || !o->remote) {
        fprintf(stderr, "--file, --local and --remote are required\n");
        return -1;
    }
    if (!o->ident)
        o->ident = o->send_mode ? "SPANDSP PEER TX" : "SPANDSP PEER RX";
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Built-in codec checks (--self-check)                                     */
/* ------------------------------------------------------------------------ */

static int self_check(void)
{
    static const unsigned int lens[] = {0, 1, 127, 128, 255, 16383};
    uint8_t buf[40000];
    uint8_t ifp[20000];
    size_t pos;
    unsigned int v;
    unsigned int i;
    int fails = 0;
    const char *why = "";
    udptl_packet_t pk;
    hist_entry_t h[3];
    const hist_entry_t *sec[3];
    int n;

#define CHECK(cond) do { if (!(cond)) { fprintf(stderr, "self-check failed: %s (line %d)\n", #cond, __LINE__); fails++; } } while (0)

    for (i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        pos = 0;
        CHECK(per_put_length(buf, sizeof(buf), &pos, lens[i]) == (lens[i] < 128 ? 1 : 2));
        v = 99999;
        pos = 0;
        CHECK(per_get_length(buf, sizeof(buf), &pos, &v) == 0 && v == lens[i]);
    }
    pos = 0;
    CHECK(per_put_length(buf, sizeof(buf), &pos, 128) == 2 && buf[0] == 0x80 && buf[1] == 0x80);
    pos = 0;
    CHECK(per_put_length(buf, sizeof(buf), &pos, 16383) == 2 && buf[0] == 0xBF && buf[1] == 0xFF);
    pos = 0;
    CHECK(per_put_length(buf, sizeof(buf), &pos, 16384) < 0);

    /* Round trip with redundancy, including a 200-octet (2-octet length) IFP. */
    for (i = 0; i < 3; i++) {
        h[i].seq = (uint16_t) (9 - i);
        h[i].len = (int) (i == 1 ? 200 : 1 + i);
        memset(h[i].buf, (int) (0x10 + i), (size_t) h[i].len);
        sec[i] = &h[i];
    }
    memset(ifp, 0x55, 300);
    n = udptl_build(buf, sizeof(buf), 10, ifp, 300, sec, 3);
    CHECK(n > 0);
    CHECK(buf[0] == 0x00 && buf[1] == 0x0A && buf[2] == 0x81 && buf[3] == 0x2C);
    CHECK(udptl_parse(buf, (size_t) n, &pk, &why) == 0);
    CHECK(pk.seq == 10 && pk.primary_len == 300 && !pk.fec && pk.nsec == 3 && pk.nsec_kept == 3);
    CHECK(pk.sec_len[0] == 1 && pk.sec_len[1] == 200 && pk.sec_len[2] == 3 && pk.sec[1][0] == 0x11);
    /* Every truncation must be rejected, never read out of bounds. */
    for (i = 0; i < (unsigned int) n; i++)
        CHECK(udptl_parse(buf, i, &pk, &why) < 0);
    /* Trailing garbage is rejected. */
    buf[n] = 0;
    CHECK(udptl_parse(buf, (size_t) n + 1, &pk, &why) < 0);

    /* Minimal datagram, as spandsp/Asterisk send with no redundancy. */
    {
        static const uint8_t d[] = {0x00, 0x01, 0x01, 0x06, 0x00, 0x00};
        CHECK(udptl_parse(d, sizeof(d), &pk, &why) == 0 && pk.seq == 1 && pk.primary_len == 1 && pk.nsec == 0);
    }
    /* FEC form: accepted and ignored. */
    {
        static const uint8_t d[] = {0x00, 0x02, 0x01, 0x06, 0x80, 0x01, 0x03, 0x02, 0x01, 0xAA, 0x02, 0xBB, 0xCC};
        CHECK(udptl_parse(d, sizeof(d), &pk, &why) == 0 && pk.fec && pk.primary_len == 1);
    }
    /* Fragmented length determinant is rejected. */
    {
        static const uint8_t d[] = {0x00, 0x03, 0xC1, 0x00};
        CHECK(udptl_parse(d, sizeof(d), &pk, &why) < 0);
    }
    /* Over-long secondary count is rejected. */
    {
        static const uint8_t d[] = {0x00, 0x03, 0x01, 0x06, 0x00, 0x05, 0x01, 0x02};
        CHECK(udptl_parse(d, sizeof(d), &pk, &why) < 0);
    }
#undef CHECK
    if (fails == 0)
        printf("{\"self_check\":\"ok\"}\n");
    return fails ? EXIT_FAX_FAILED : EXIT_FAX_OK;
}

/* ------------------------------------------------------------------------ */
/* Output                                                                   */
/* ------------------------------------------------------------------------ */

static void json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; s && *s; s++) {
        unsigned char c = (unsigned char) *s;

        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20 || c >= 0x7F)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

static void print_result(peer_t *p, bool timed_out)
{
    t30_stats_t st;
    const char *rid;
    int status;

    memset(&st, 0, sizeof(st));
    t30_get_transfer_statistics(p->t30, &st);
    status = p->phase_e ? p->completion_code : st.current_status;
    rid = t30_get_rx_ident(p->t30);

    printf("{\"ok\":%s,\"status\":%d,\"status_text\":",
           (p->phase_e && status == T30_ERR_OK && !timed_out) ? "true" : "false", status);
    json_string(stdout, t30_completion_code_to_str(status));
    printf(",\"pages\":%d,\"bit_rate\":%d,\"ecm\":%s,\"remote_ident\":", p->opt.send_mode ? st.pages_tx : st.pages_rx,
           st.bit_rate, st.error_correcting_mode ? "true" : "false");
    json_string(stdout, rid ? rid : "");
    printf(",\"rx_datagrams\":%lu,\"tx_datagrams\":%lu,\"recovered\":%lu", p->rx_datagrams, p->tx_datagrams,
           p->recovered);
    /* Extra diagnostics (documented in README.md). */
    printf(",\"mode\":\"%s\",\"t38_version\":%d,\"timed_out\":%s,\"unrecovered\":%lu,\"rx_duplicates\":%lu,"
           "\"rx_malformed\":%lu,\"tx_dropped\":%lu,\"tx_ifps\":%lu,\"bad_rows\":%d,\"ecm_retries\":%d}\n",
           p->opt.send_mode ? "send" : "receive", p->opt.version, timed_out ? "true" : "false", p->unrecovered,
           p->rx_duplicates, p->rx_malformed, p->tx_dropped, (unsigned long) p->tx_ifps, st.bad_rows,
           st.error_correcting_mode_retries);
    fflush(stdout);
}

/* ------------------------------------------------------------------------ */
/* Main                                                                     */
/* ------------------------------------------------------------------------ */

static void on_signal(int sig)
{
    (void) sig;
    g_stop = 1;
}

static void set_log_level(logging_state_t *ls, int level)
{
    if (!ls)
        return;
    span_log_set_level(ls, level);
    span_log_set_message_handler(ls, span_message_handler);
}

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int main(int argc, char **argv)
{
    peer_t *p;
    struct sockaddr_storage local;
    socklen_t local_len;
    struct sigaction sa;
    int level;
    int64_t next_tick;
    int64_t deadline;
    int64_t linger_until = -1;
    bool timed_out = false;
    bool terminal_done = false;
    bool sc;
    int rc;

    clock_gettime(CLOCK_MONOTONIC, &g_start);
    p = calloc(1, sizeof(*p));
    if (!p)
        return EXIT_USAGE;
    if (parse_options(argc, argv, &p->opt, &sc) < 0) {
        usage(stderr);
        return EXIT_USAGE;
    }
    if (sc) {
        free(p);
        return self_check();
    }
    g_verbose = p->opt.verbose;
    p->rng = p->opt.seed ? p->opt.seed : UINT64_C(0x9E3779B97F4A7C15);
    p->fd = -1;

    if (parse_addr(p->opt.local, &local, &local_len) < 0) {
        fprintf(stderr, "bad --local address: %s\n", p->opt.local);
        return EXIT_USAGE;
    }
    if (parse_addr(p->opt.remote, &p->remote, &p->remote_len) < 0) {
        fprintf(stderr, "bad --remote address: %s\n", p->opt.remote);
        return EXIT_USAGE;
    }
    if (p->opt.send_mode && access(p->opt.file, R_OK) != 0) {
        fprintf(stderr, "cannot read %s: %s\n", p->opt.file, strerror(errno));
        return EXIT_USAGE;
    }
    p->fd = socket(local.ss_family, SOCK_DGRAM, 0);
    if (p->fd < 0 || bind(p->fd, (struct sockaddr *) &local, local_len) < 0) {
        fprintf(stderr, "cannot bind %s: %s\n", p->opt.local, strerror(errno));
        return EXIT_USAGE;
    }

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    /* spandsp's default message handler may print to stdout; keep stdout for JSON. */
    span_set_message_handler(span_message_handler);

    p->t38 = t38_terminal_init(NULL, p->opt.calling, tx_packet_handler, p);
    if (!p->t38) {
        fprintf(stderr, "t38_terminal_init failed\n");
        return EXIT_USAGE;
    }
    p->t30 = t38_terminal_get_t30_state(p->t38);
    p->core = t38_terminal_get_t38_core_state(p->t38);

    if (p->opt.verbose >= 2)
        level = SPAN_LOG_SHOW_SEVERITY | SPAN_LOG_SHOW_PROTOCOL | SPAN_LOG_DEBUG;
    else if (p->opt.verbose == 1)
        level = SPAN_LOG_SHOW_SEVERITY | SPAN_LOG_SHOW_PROTOCOL | SPAN_LOG_FLOW;
    else
        level = SPAN_LOG_SHOW_SEVERITY | SPAN_LOG_SHOW_PROTOCOL | SPAN_LOG_PROTOCOL_WARNING;
    set_log_level(t38_terminal_get_logging_state(p->t38), level);
    set_log_level(t38_core_get_logging_state(p->core), level);
    set_log_level(t30_get_logging_state(p->t30), level);

    t38_set_t38_version(p->core, p->opt.version);
    t38_terminal_set_config(p->t38, 0);     /* paced UDP mode, default indicator/data repeat counts */
    t38_terminal_set_tep_mode(p->t38, p->opt.tep);

    t30_set_tx_ident(p->t30, p->opt.ident);
    t30_set_ecm_capability(p->t30, p->opt.ecm);
    t30_set_supported_compressions(p->t30, T30_SUPPORT_T4_1D_COMPRESSION | T30_SUPPORT_T4_2D_COMPRESSION |
                                               (p->opt.ecm ? T30_SUPPORT_T6_COMPRESSION : 0));
    if (p->opt.send_mode)
        t30_set_tx_file(p->t30, p->opt.file, -1, -1);
    else
        t30_set_rx_file(p->t30, p->opt.file, -1);
    t30_set_phase_b_handler(p->t30, phase_b_handler, p);
    t30_set_phase_d_handler(p->t30, phase_d_handler, p);
    t30_set_phase_e_handler(p->t30, phase_e_handler, p);

    logf_("%s %s, %s party, local %s, remote %s, T.38 v%d, ECM %s, redundancy %d, loss %.1f%% (seed %" PRIu64
          "), timeout %.0fs, ident \"%s\"",
          p->opt.send_mode ? "sending" : "receiving into", p->opt.file, p->opt.calling ? "calling" : "answering",
          p->opt.local, p->opt.remote, p->opt.version, p->opt.ecm ? "on" : "off", p->opt.redundancy,
          p->opt.loss_pct, p->opt.seed, p->opt.timeout_s, p->opt.ident);

    next_tick = now_ms();
    deadline = next_tick + (int64_t) (p->opt.timeout_s * 1000.0);
    for (;;) {
        struct pollfd pfd;
        int64_t now = now_ms();
        int wait_ms;
        int ticks;

        if (g_stop) {
            logf_("interrupted");
            if (!p->phase_e)
                t30_terminate(p->t30);
            break;
        }
        if (now >= deadline && !p->phase_e) {
            logf_("timeout after %.0fs", p->opt.timeout_s);
            timed_out = true;
            t30_terminate(p->t30);
            break;
        }
        if (p->phase_e) {
            /* Give the terminal a moment to flush what it queued (e.g. the
               DCN, final no-signal indicators) before exiting. */
            if (linger_until < 0)
                linger_until = now + 3000;
            if (terminal_done || now >= linger_until)
                break;
        }

        wait_ms = (int) (next_tick - now);
        if (wait_ms < 0)
            wait_ms = 0;
        pfd.fd = p->fd;
        pfd.events = POLLIN;
        pfd.revents = 0;
        rc = poll(&pfd, 1, wait_ms);
        if (rc < 0 && errno != EINTR) {
            logf_("poll failed: %s", strerror(errno));
            break;
        }
        if (rc > 0 && (pfd.revents & (POLLIN | POLLERR)))
            drain_socket(p);

        now = now_ms();
        for (ticks = 0; now >= next_tick && ticks < 5; ticks++) {
            if (t38_terminal_send_timeout(p->t38, TICK_SAMPLES))
                terminal_done = true;
            next_tick += TICK_MS;
        }
        if (now >= next_tick) {
            /* We fell far behind (stopped process?); do not try to catch up. */
            next_tick = now + TICK_MS;
        }
    }

    print_result(p, timed_out);
    rc = (p->phase_e && p->completion_code == T30_ERR_OK && !timed_out) ? EXIT_FAX_OK : EXIT_FAX_FAILED;
    t38_terminal_free(p->t38);
    close(p->fd);
    free(p);
    return rc;
}
