/*
 * asbp_discovery: one discovery round against every Patroni REST endpoint
 * at once (libcurl multi interface), under one deadline.
 *
 * Requirements and choices (see also asbp_discovery.h):
 * - The caller initialises libcurl once per process with
 *   curl_global_init(CURL_GLOBAL_DEFAULT) before the first call (the XS
 *   BOOT section does it; the C tests do it in main).  asbp_discover keeps
 *   no global state: a multi handle and one easy handle per endpoint live
 *   for the duration of the call, and nothing is reused between calls.
 * - Proxies are never used, whatever http_proxy/https_proxy/ALL_PROXY say
 *   (CURLOPT_PROXY ""): the endpoints are cluster nodes, reached directly.
 * - Only http and https are allowed; redirects are not followed (a 3xx is a
 *   bad answer); answers are not decompressed (no Accept-Encoding), so the
 *   1 MiB limit holds for what is parsed.
 * - HTTP/1.1 is used (Patroni's API is Python's http.server).
 * - Deadline: min(now + cfg->timeout_ms, deadline_ms) on the given clock
 *   (deadline_ms <= 0: none, timeout_ms <= 0: none, one of them is
 *   required).  Each transfer also gets CURLOPT_TIMEOUT_MS and
 *   CURLOPT_CONNECTTIMEOUT_MS for the time left, so a test clock that does
 *   not move cannot keep a round alive.  The grace window that collects
 *   answers arriving together is measured on the real monotonic clock: it
 *   is about network timing, not about the caller's notion of time.
 * - A deadline already passed when the round starts is a local error
 *   (ASBP_E_TIMEOUT): the API was not asked, so it must not count as a
 *   failing API.
 */
#include "asbp_discovery.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <curl/curl.h>

#include "asbp_buf.h"

typedef struct ep {
    const char *url;            /* cfg's string */
    char masked[512];           /* url with the password masked */
    CURL *easy;                 /* owned; freed in eps_free */
    int added;                  /* easy is in the multi handle */
    asbp_buf body;              /* owned; freed in eps_free */
    int done;                   /* the transfer finished */
    int too_big, bad_status, nomem;
    long http;
    CURLcode cc;
    long os_errno;
    int64_t total_us;           /* the transfer's whole time (finished) */
    char errbuf[CURL_ERROR_SIZE];
    int valid;                  /* HTTP 200, <= 1 MiB, parsable */
    asbp_topology *topo;        /* owned; moved into the result or freed */
    asbp_leader_status ls;
    const asbp_member *leader;  /* points into topo */
    char why[400];              /* why the answer is not valid */
} ep;

/* ---- URL masking ------------------------------------------------------ */

/*
 * Where the password of a URL is: the text between the first ':' of the
 * userinfo and the '@' that ends it, or the whole userinfo when it has no
 * ':' (a user name alone is often a token).  The userinfo ends at the last '@' of
 * the authority (up to the first '/', '?' or '#'); when the authority has
 * none but the rest of the URL has one, that last '@' is taken instead, so
 * that a password holding a raw '/', '?' or '#' is still hidden.  When in
 * doubt this masks too much, never too little.
 */
static int password_span(const char *url, size_t *off, size_t *len)
{
    const char *start = strstr(url, "://"), *aend, *at = NULL, *p, *colon;
    start = start ? start + 3 : url;
    aend = start + strcspn(start, "/?#");
    for (p = start; p < aend; p++)
        if (*p == '@')
            at = p;
    if (!at)
        at = strrchr(start, '@');
    if (!at)
        return 0;
    colon = memchr(start, ':', (size_t)(at - start));
    if (!colon)
        colon = start - 1;   /* a user name alone (a token): all of it */
    *off = (size_t)(colon + 1 - url);
    *len = (size_t)(at - (colon + 1));
    return 1;
}

static void scrub_controls(char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            *s = '?';
}

char *asbp_url_mask(const char *url, char *buf, size_t n)
{
    size_t off, len;
    if (!buf || n == 0)
        return buf;
    if (!url)
        url = "";
    if (password_span(url, &off, &len))
        snprintf(buf, n, "%.*s***%s", (int)off, url, url + off + len);
    else
        snprintf(buf, n, "%s", url);
    scrub_controls(buf);
    return buf;
}

/* Replaces every occurrence of url's password in msg (cap bytes) by "***".
 * Used on libcurl's error text, which we do not control. */
static void redact(char *msg, size_t cap, const char *url)
{
    char pw[CURL_ERROR_SIZE], tmp[CURL_ERROR_SIZE + 64];
    size_t off, len, head;
    char *p;
    if (!password_span(url, &off, &len) || len == 0 || len >= sizeof pw)
        return;   /* a longer password cannot fit in libcurl's error text */
    memcpy(pw, url + off, len);
    pw[len] = '\0';
    p = msg;
    while ((p = strstr(p, pw)) != NULL) {
        head = (size_t)(p - msg);
        snprintf(tmp, sizeof tmp, "%.*s***%s", (int)head, msg, p + len);
        snprintf(msg, cap, "%s", tmp);
        if (head + 3 >= strlen(msg))
            break;
        p = msg + head + 3;
    }
}

/* ---- one transfer ----------------------------------------------------- */

static size_t on_data(char *data, size_t size, size_t nmemb, void *ud)
{
    ep *e = ud;
    size_t n = size * nmemb;
    if (!e->http) {
        curl_easy_getinfo(e->easy, CURLINFO_RESPONSE_CODE, &e->http);
        if (e->http != 200) {
            e->bad_status = 1;   /* the body of an error page is not read */
            return 0;
        }
    }
    if (n > ASBP_PATRONI_MAX_BODY - e->body.len) {
        e->too_big = 1;
        return 0;
    }
    if (asbp_buf_append(&e->body, data, n) < 0) {
        e->nomem = 1;
        return 0;
    }
    return n;
}

/* A short excerpt of a body, printable ASCII only, for messages. */
static void excerpt(const asbp_buf *b, char *out, size_t n)
{
    size_t i, k = 0, max = 32;
    for (i = 0; i < b->len && i < max && k + 1 < n; i++) {
        unsigned char ch = (unsigned char)b->data[i];
        out[k++] = (ch >= 0x20 && ch < 0x7f && ch != '"') ? (char)ch : '.';
    }
    out[k] = '\0';
}

static void describe_curl_error(ep *e, int64_t timeout_ms)
{
    char detail[CURL_ERROR_SIZE + 64];
    snprintf(detail, sizeof detail, "%s",
             e->errbuf[0] ? e->errbuf : curl_easy_strerror(e->cc));
    scrub_controls(detail);
    redact(detail, sizeof detail, e->url);
    switch (e->cc) {
    case CURLE_COULDNT_CONNECT:
        if (e->os_errno == ECONNREFUSED)
            snprintf(e->why, sizeof e->why, "connection refused");
        else
            snprintf(e->why, sizeof e->why, "cannot connect (%s)", detail);
        break;
    case CURLE_OPERATION_TIMEDOUT:
        snprintf(e->why, sizeof e->why, "timeout (no answer within %lld ms)",
                 (long long)timeout_ms);
        break;
    case CURLE_GOT_NOTHING:
        snprintf(e->why, sizeof e->why, "connection closed without an answer");
        break;
    case CURLE_FILESIZE_EXCEEDED:
        snprintf(e->why, sizeof e->why, "answer larger than 1 MiB");
        break;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_SHUTDOWN_FAILED:
        snprintf(e->why, sizeof e->why, "TLS error (%s)", detail);
        break;
    default:
        if (!strcmp(detail, curl_easy_strerror(e->cc)))
            snprintf(e->why, sizeof e->why, "%s", detail);
        else
            snprintf(e->why, sizeof e->why, "%s (%s)", curl_easy_strerror(e->cc),
                     detail);
        break;
    }
}

/* The whole time of a finished transfer, in microseconds. */
static int64_t total_time_us(CURL *h)
{
#if LIBCURL_VERSION_NUM >= 0x073d00   /* 7.61.0 */
    curl_off_t t = 0;
    if (curl_easy_getinfo(h, CURLINFO_TOTAL_TIME_T, &t) != CURLE_OK)
        return 0;
    return (int64_t)t;
#else
    double t = 0;
    if (curl_easy_getinfo(h, CURLINFO_TOTAL_TIME, &t) != CURLE_OK)
        return 0;
    return (int64_t)(t * 1e6);
#endif
}

/* A transfer has finished: classify it, parse a 200 answer. */
static void finish(ep *e, CURLcode cc, int64_t timeout_ms,
                   const asbp_logger *lg)
{
    e->done = 1;
    e->cc = cc;
    if (!e->http)
        curl_easy_getinfo(e->easy, CURLINFO_RESPONSE_CODE, &e->http);
    curl_easy_getinfo(e->easy, CURLINFO_OS_ERRNO, &e->os_errno);
    e->total_us = total_time_us(e->easy);
    ASBP_TRACE(lg, "pid %ld: discovery: %s finished: curl %d, HTTP %ld, "
               "%lu bytes", (long)getpid(), e->masked, (int)cc, e->http,
               (unsigned long)e->body.len);

    if (e->nomem) {
        snprintf(e->why, sizeof e->why, "out of memory");
    } else if (e->too_big) {
        snprintf(e->why, sizeof e->why, "answer larger than 1 MiB");
    } else if (e->bad_status || (cc == CURLE_OK && e->http != 200)) {
        snprintf(e->why, sizeof e->why, "HTTP %ld", e->http);
    } else if (cc != CURLE_OK) {
        describe_curl_error(e, timeout_ms);
    } else {
        asbp_err perr;
        asbp_err_clear(&perr);
        if (asbp_patroni_parse(e->body.data, e->body.len, &e->topo, &perr)
            != ASBP_OK) {
            char ex[40];
            excerpt(&e->body, ex, sizeof ex);
            if (e->body.len)
                snprintf(e->why, sizeof e->why, "%.300s; answer starts with \"%s\"",
                         perr.msg, ex);
            else
                snprintf(e->why, sizeof e->why, "%.300s", perr.msg);
        } else {
            e->valid = 1;
            e->ls = asbp_topology_leader(e->topo, &e->leader);
        }
    }
    asbp_buf_free(&e->body);   /* parsed or refused: not needed any more */
}

/* Sets up one easy handle; 0 or a CURLcode naming what libcurl refused. */
static CURLcode setup(ep *e, const asbp_discovery_cfg *cfg, int64_t left_ms,
                      const char **what)
{
    CURL *h = e->easy;
    CURLcode c;
#define SET(opt, val)                                       \
    do {                                                    \
        if ((c = curl_easy_setopt(h, opt, val)) != CURLE_OK) { \
            *what = #opt;                                   \
            return c;                                       \
        }                                                   \
    } while (0)

    SET(CURLOPT_URL, e->url);
    SET(CURLOPT_PRIVATE, (void *)e);
    SET(CURLOPT_WRITEFUNCTION, on_data);
    SET(CURLOPT_WRITEDATA, (void *)e);
    SET(CURLOPT_ERRORBUFFER, e->errbuf);
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_FOLLOWLOCATION, 0L);
#if LIBCURL_VERSION_NUM >= 0x075500   /* 7.85.0 */
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
#else
    SET(CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    SET(CURLOPT_PROXY, "");          /* never a proxy from the environment */
    SET(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)ASBP_PATRONI_MAX_BODY);
    SET(CURLOPT_TIMEOUT_MS, (long)(left_ms > LONG_MAX ? LONG_MAX : left_ms));
    SET(CURLOPT_CONNECTTIMEOUT_MS, (long)(left_ms > LONG_MAX ? LONG_MAX : left_ms));
    SET(CURLOPT_SSL_VERIFYPEER, cfg->verify_ssl ? 1L : 0L);
    SET(CURLOPT_SSL_VERIFYHOST, cfg->verify_ssl ? 2L : 0L);
    if (cfg->ca_file && cfg->ca_file[0])
        SET(CURLOPT_CAINFO, cfg->ca_file);
    if (cfg->ca_path && cfg->ca_path[0])
        SET(CURLOPT_CAPATH, cfg->ca_path);
    if (cfg->cert_file && cfg->cert_file[0])
        SET(CURLOPT_SSLCERT, cfg->cert_file);
    if (cfg->key_file && cfg->key_file[0])
        SET(CURLOPT_SSLKEY, cfg->key_file);
#undef SET
    return CURLE_OK;
}

static void eps_free(CURLM *multi, ep *eps, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) {
        if (eps[i].easy) {
            if (eps[i].added)
                curl_multi_remove_handle(multi, eps[i].easy);
            curl_easy_cleanup(eps[i].easy);
        }
        asbp_buf_free(&eps[i].body);
        asbp_topology_free(eps[i].topo);
    }
    free(eps);
}

/* ---- the decision ----------------------------------------------------- */

static void log_answer(const asbp_logger *lg, const ep *e)
{
    if (!e->valid) {
        asbp_log(lg, ASBP_LOG_WARN, "Bad response from %s: %s", e->masked, e->why);
        return;
    }
    switch (e->ls) {
    case ASBP_LEADER_OK:
        break;
    case ASBP_LEADER_NONE:
        asbp_log(lg, ASBP_LOG_WARN, "No leader found from %s", e->masked);
        break;
    case ASBP_LEADER_BAD_ADDRESS:
        asbp_log(lg, ASBP_LOG_WARN, "Leader missing host or port from %s "
                 "(member %s)", e->masked,
                 e->leader->name ? e->leader->name : "without a name");
        break;
    case ASBP_LEADER_NOT_RUNNING:
        asbp_log(lg, ASBP_LOG_WARN, "Leader not in running state (state=%s) "
                 "from %s", e->leader->state, e->masked);
        break;
    case ASBP_LEADER_MULTIPLE:
        asbp_log(lg, ASBP_LOG_WARN, "Multiple leaders detected in one answer "
                 "from %s", e->masked);
        break;
    }
}

static int same_leader(const ep *a, const ep *b)
{
    return a->leader->port == b->leader->port
        && !strcasecmp(a->leader->host, b->leader->host);
}

static void use_answer(asbp_discovery_result *res, ep *e)
{
    snprintf(res->endpoint, sizeof res->endpoint, "%s", e->masked);
    res->topology = e->topo;   /* ownership moves to the result */
    e->topo = NULL;
    e->leader = NULL;
}

/* Logs every finished answer and counts the valid ones; first_valid and
 * first_ok (valid with a usable leader) are n when there is none. */
static void tally(const ep *eps, size_t n, const asbp_logger *lg,
                  asbp_discovery_result *res, size_t *first_valid,
                  size_t *first_ok)
{
    size_t i;
    *first_valid = *first_ok = n;
    for (i = 0; i < n; i++) {
        if (eps[i].done)
            log_answer(lg, &eps[i]);
        if (eps[i].valid) {
            res->answered++;
            if (*first_valid == n)
                *first_valid = i;
            if (eps[i].ls == ASBP_LEADER_OK && *first_ok == n)
                *first_ok = i;
        }
    }
}

/* FAILED: no valid answer.  err names every endpoint, with why. */
static void report_failed(ep *eps, size_t n, int64_t timeout_ms,
                          const asbp_logger *lg, asbp_discovery_result *res,
                          asbp_err *err)
{
    asbp_buf sum = ASBP_BUF_INIT;   /* freed below */
    int curl_code = 0;
    size_t i;
    for (i = 0; i < n; i++) {
        ep *e = &eps[i];
        if (!e->done) {
            snprintf(e->why, sizeof e->why,
                     "timeout (no answer within %lld ms)", (long long)timeout_ms);
            e->cc = CURLE_OPERATION_TIMEDOUT;
            log_answer(lg, e);
        }
        if (!curl_code && e->cc != CURLE_OK)
            curl_code = (int)e->cc;
        asbp_buf_printf(&sum, "%s%s: %s", i ? "; " : "", e->masked, e->why);
    }
    res->outcome = ASBP_DISC_FAILED;
    asbp_err_set(err, ASBP_E_DISCOVERY, ASBP_EC_FAILOVER,
                 "Patroni API unavailable: no valid answer from %lu "
                 "endpoint%s: %s", (unsigned long)n, n == 1 ? "" : "s",
                 asbp_buf_cstr(&sum));
    err->curl_code = curl_code;
    asbp_buf_free(&sum);
}

/* The first usable leader (eps[first_ok]) wins unless a later valid
 * answer names another one (SPLIT). */
static void pick_leader(ep *eps, size_t n, size_t first_ok,
                        const asbp_logger *lg, asbp_discovery_result *res)
{
    ep *a = &eps[first_ok];
    size_t i;
    for (i = first_ok + 1; i < n; i++) {
        const ep *b = &eps[i];
        if (b->valid && b->ls == ASBP_LEADER_OK && !same_leader(a, b)) {
            asbp_log(lg, ASBP_LOG_WARN, "Multiple leaders detected "
                     "(split-brain): %s says %s:%d, %s says %s:%d",
                     a->masked, a->leader->host, a->leader->port,
                     b->masked, b->leader->host, b->leader->port);
            res->outcome = ASBP_DISC_SPLIT;
            use_answer(res, a);
            return;
        }
    }
    res->outcome = ASBP_DISC_LEADER;
    snprintf(res->leader_host, sizeof res->leader_host, "%s", a->leader->host);
    res->leader_port = a->leader->port;
    use_answer(res, a);
}

static void decide(ep *eps, size_t n, int64_t timeout_ms,
                   const asbp_logger *lg, asbp_discovery_result *res,
                   asbp_err *err)
{
    size_t first_valid, first_ok;
    tally(eps, n, lg, res, &first_valid, &first_ok);
    if (first_valid == n)
        report_failed(eps, n, timeout_ms, lg, res, err);
    else if (first_ok < n)
        pick_leader(eps, n, first_ok, lg, res);
    else {
        res->outcome = ASBP_DISC_TRANSITION;
        use_answer(res, &eps[first_valid]);
    }
}

/* ---- the round -------------------------------------------------------- */

/* What one asbp_discover call works with. */
typedef struct disc_round {
    const asbp_discovery_cfg *cfg;
    const asbp_clock *clk;
    const asbp_logger *lg;
    CURLM *multi;               /* owned; freed at the end of asbp_discover */
    ep *eps;                    /* owned (cfg->n_urls); freed by eps_free */
    size_t n;
    int64_t start, end;         /* on clk */
    int64_t timeout_ms;         /* end - start */
    int64_t grace_end;          /* real monotonic clock; -1: no valid answer yet */
} disc_round;

/* Checks the configuration and sets the round's start, end and length. */
static asbp_code round_window(disc_round *r, int64_t deadline_ms, asbp_err *err)
{
    const asbp_discovery_cfg *cfg = r->cfg;
    if (!cfg || !cfg->urls || cfg->n_urls == 0)
        return asbp_err_set(err, ASBP_E_USAGE, ASBP_EC_REPORT,
                            "Patroni discovery: no endpoint configured");
    if (cfg->timeout_ms <= 0 && deadline_ms <= 0)
        return asbp_err_set(err, ASBP_E_USAGE, ASBP_EC_REPORT,
                            "Patroni discovery: neither a timeout nor a deadline");
    r->n = cfg->n_urls;
    r->start = asbp_clock_now_ms(r->clk);
    r->end = cfg->timeout_ms > 0 ? r->start + cfg->timeout_ms : deadline_ms;
    if (deadline_ms > 0 && deadline_ms < r->end)
        r->end = deadline_ms;
    r->timeout_ms = r->end - r->start;
    if (r->timeout_ms <= 0)
        return asbp_err_set(err, ASBP_E_TIMEOUT, ASBP_EC_FAILOVER,
                            "Patroni API not asked: no time left before the deadline");
    return ASBP_OK;
}

/* Creates, sets up and adds one easy handle per endpoint. */
static asbp_code start_transfers(disc_round *r, asbp_discovery_result *res,
                                 asbp_err *err)
{
    size_t i;
    for (i = 0; i < r->n; i++) {
        ep *e = &r->eps[i];
        const char *what = "";
        CURLcode c;
        CURLMcode mc;
        e->url = r->cfg->urls[i] ? r->cfg->urls[i] : "";
        asbp_url_mask(e->url, e->masked, sizeof e->masked);
        e->easy = curl_easy_init();   /* freed by eps_free */
        if (!e->easy)
            return asbp_err_set(err, ASBP_E_NOMEM, ASBP_EC_REPORT,
                                "Patroni discovery: libcurl cannot create a handle");
        c = setup(e, r->cfg, r->timeout_ms, &what);
        if (c != CURLE_OK) {
            asbp_err_set(err, ASBP_E_USAGE, ASBP_EC_REPORT,
                         "Patroni discovery: libcurl refused %s for %s: %s",
                         what, e->masked, curl_easy_strerror(c));
            err->curl_code = (int)c;
            return ASBP_E_USAGE;
        }
        if ((mc = curl_multi_add_handle(r->multi, e->easy)) != CURLM_OK)
            return asbp_err_set(err, ASBP_E_NOMEM, ASBP_EC_REPORT,
                                "Patroni discovery: %s", curl_multi_strerror(mc));
        e->added = 1;
        res->requests++;
        ASBP_TRACE(r->lg, "pid %ld: discovery: GET %s (timeout %lld ms)",
                   (long)getpid(), e->masked, (long long)r->timeout_ms);
    }
    return ASBP_OK;
}

/* Classifies the transfers that finished; the first valid answer opens
 * the grace window. */
static void collect_finished(disc_round *r)
{
    CURLMsg *msg;
    int q;
    while ((msg = curl_multi_info_read(r->multi, &q)) != NULL) {
        ep *e = NULL;
        if (msg->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&e);
        if (!e || e->done)
            continue;
        finish(e, msg->data.result, r->timeout_ms, r->lg);
        if (e->valid && r->grace_end < 0)
            r->grace_end = asbp_monotonic_ms() + ASBP_DISCOVERY_GRACE_MS;
    }
}

/* Runs the transfers until every one finished, the grace window after
 * the first valid answer is over, or the round's end. */
static asbp_code run_transfers(disc_round *r, asbp_err *err)
{
    int running = 0;
    for (;;) {
        CURLMcode mc;
        int64_t now, real, wait;

        mc = curl_multi_perform(r->multi, &running);
        if (mc != CURLM_OK)
            return asbp_err_set(err, mc == CURLM_OUT_OF_MEMORY ? ASBP_E_NOMEM
                                : ASBP_E_DISCOVERY, ASBP_EC_REPORT,
                                "Patroni discovery: %s", curl_multi_strerror(mc));
        collect_finished(r);
        real = asbp_monotonic_ms();
        if (running == 0)
            return ASBP_OK;             /* every transfer finished */
        if (r->grace_end >= 0 && real >= r->grace_end && !r->cfg->wait_all)
            return ASBP_OK;             /* a valid answer and the grace is over */
        now = asbp_clock_now_ms(r->clk);
        if (now >= r->end)
            return ASBP_OK;             /* deadline */
        wait = r->end - now;
        if (r->grace_end >= 0 && r->grace_end - real < wait && !r->cfg->wait_all)
            wait = r->grace_end - real;
        if (wait > INT_MAX)
            wait = INT_MAX;
        mc = curl_multi_poll(r->multi, NULL, 0, (int)wait, NULL);
        if (mc != CURLM_OK)
            return asbp_err_set(err, ASBP_E_DISCOVERY, ASBP_EC_REPORT,
                                "Patroni discovery: %s", curl_multi_strerror(mc));
    }
}

/* What each endpoint did, for a caller that asked (cfg->per_endpoint). */
static void report_endpoints(const disc_round *r)
{
    size_t i;
    for (i = 0; r->cfg->per_endpoint && i < r->n; i++) {
        const ep *e = &r->eps[i];
        asbp_endpoint_result *o = &r->cfg->per_endpoint[i];
        memset(o, 0, sizeof *o);
        snprintf(o->endpoint, sizeof o->endpoint, "%s", e->masked);
        /* Ended by the timeout: as unfinished, whoever noticed first. */
        o->finished = e->done && e->cc != CURLE_OPERATION_TIMEDOUT;
        o->valid = e->valid;
        o->elapsed_us = o->finished ? e->total_us : -1;
    }
}

asbp_code asbp_discover(const asbp_discovery_cfg *cfg, const asbp_clock *clk,
                        int64_t deadline_ms, const asbp_logger *lg,
                        asbp_discovery_result *res, asbp_err *err)
{
    disc_round r;
    asbp_code rc;

    asbp_err_clear(err);
    memset(res, 0, sizeof *res);
    res->outcome = ASBP_DISC_FAILED;
    memset(&r, 0, sizeof r);
    r.cfg = cfg;
    r.clk = clk;
    r.lg = lg;
    r.grace_end = -1;
    rc = round_window(&r, deadline_ms, err);
    if (rc != ASBP_OK)
        return rc;

    r.eps = calloc(r.n, sizeof *r.eps);   /* freed by eps_free */
    r.multi = curl_multi_init();          /* freed below */
    if (!r.eps || !r.multi) {
        free(r.eps);
        if (r.multi)
            curl_multi_cleanup(r.multi);
        return asbp_err_set(err, ASBP_E_NOMEM, ASBP_EC_REPORT,
                            "Patroni discovery: out of memory");
    }

    rc = start_transfers(&r, res, err);
    if (rc == ASBP_OK)
        rc = run_transfers(&r, err);
    if (rc == ASBP_OK) {
        report_endpoints(&r);
        decide(r.eps, r.n, r.timeout_ms, lg, res, err);
        res->elapsed_ms = asbp_clock_now_ms(clk) - r.start;
        ASBP_TRACE(lg, "pid %ld: discovery: outcome %d after %lld ms, %lu of %lu "
                   "endpoints answered", (long)getpid(), (int)res->outcome,
                   (long long)res->elapsed_ms, (unsigned long)res->answered,
                   (unsigned long)res->requests);
    }

    /* Transfers still running (hanging or slow endpoints) are dropped here:
     * removing and cleaning their handles closes their sockets. */
    eps_free(r.multi, r.eps, r.n);
    curl_multi_cleanup(r.multi);
    if (rc != ASBP_OK)
        asbp_discovery_result_clear(res);
    return rc;
}

void asbp_discovery_result_clear(asbp_discovery_result *res)
{
    if (!res)
        return;
    asbp_topology_free(res->topology);
    memset(res, 0, sizeof *res);
}
