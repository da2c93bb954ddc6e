/*
 * Unit tests: asbp_discover's edges that need no HTTP server (usage
 * errors, deadlines, clocks that do not move, a socket that never
 * answers).  Behaviour against real HTTP(S) answers is in
 * t/31-discovery.t (fake Patroni servers + t/c/discover_probe).
 */
#include "tap.h"
#include "asbp_discovery.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <curl/curl.h>

static int64_t frozen_ms(void *ud)
{
    return *(int64_t *)ud;
}

static char logged[8192];

static void keep_log(void *ud, asbp_log_level level, const char *msg)
{
    size_t n = strlen(logged);
    (void)ud;
    snprintf(logged + n, sizeof logged - n, "%d:%s\n", (int)level, msg);
}

/* A listening socket on 127.0.0.1 that is never accepted from: the kernel
 * completes connections, nobody answers.  Returns the fd, port in *port. */
static int silent_listener(int *port, int listen_too)
{
    struct sockaddr_in a;
    socklen_t l = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0
        || getsockname(fd, (struct sockaddr *)&a, &l) < 0
        || (listen_too && listen(fd, 8) < 0)) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    *port = ntohs(a.sin_port);
    return fd;
}

int main(void)
{
    asbp_discovery_cfg cfg;
    asbp_discovery_result res;
    asbp_err err;
    asbp_clock clk = ASBP_CLOCK_INIT;
    asbp_logger lg = { keep_log, NULL, 0, NULL, 0, 0 };
    const char *urls[3];
    char u1[128], u2[128];
    int64_t t0, frozen = 1000;
    int fd, port;

    curl_global_init(CURL_GLOBAL_DEFAULT);
    memset(&cfg, 0, sizeof cfg);
    cfg.urls = urls;
    cfg.timeout_ms = 1000;
    cfg.verify_ssl = 1;

    /* Usage errors. */
    cfg.n_urls = 0;
    is_int(asbp_discover(&cfg, &clk, 0, &lg, &res, &err), ASBP_E_USAGE, "no endpoint: usage error");
    like_str(err.msg, "no endpoint configured", "  message says so");
    ok(res.topology == NULL && res.requests == 0, "  result empty");
    asbp_discovery_result_clear(&res);

    urls[0] = "http://127.0.0.1:1/cluster";
    cfg.n_urls = 1;
    cfg.timeout_ms = 0;
    is_int(asbp_discover(&cfg, &clk, 0, &lg, &res, &err), ASBP_E_USAGE,
           "neither timeout nor deadline: usage error");
    asbp_discovery_result_clear(&res);

    /* A deadline already passed: the API is not asked (local error, so the
     * caller does not count it as a failing API). */
    cfg.timeout_ms = 1000;
    is_int(asbp_discover(&cfg, &clk, asbp_clock_now_ms(&clk) - 1, &lg, &res, &err),
           ASBP_E_TIMEOUT, "deadline passed: timeout error");
    is_int(res.requests, 0, "  no request started");
    like_str(err.msg, "not asked", "  message says the API was not asked");
    asbp_discovery_result_clear(&res);

    /* Refused, with a clock that never moves: the round still ends. */
    fd = silent_listener(&port, 0);   /* bound, not listening: refused */
    ok(fd >= 0, "a closed port");
    snprintf(u1, sizeof u1, "http://user:pa55word@127.0.0.1:%d/cluster", port);
    urls[0] = u1;
    clk.fn = frozen_ms;
    clk.ud = &frozen;
    logged[0] = '\0';
    t0 = asbp_monotonic_ms();
    is_int(asbp_discover(&cfg, &clk, 0, &lg, &res, &err), ASBP_OK, "refused endpoint: ASBP_OK");
    is_int(res.outcome, ASBP_DISC_FAILED, "  outcome FAILED");
    is_int(res.requests, 1, "  one request");
    is_int(res.answered, 0, "  no answer");
    is_int(err.code, ASBP_E_DISCOVERY, "  err holds a discovery error");
    is_int(err.eclass, ASBP_EC_FAILOVER, "  of class failover");
    is_int(err.curl_code, CURLE_COULDNT_CONNECT, "  curl code recorded");
    like_str(err.msg, "connection refused", "  summary says why");
    like_str(err.msg, "http://user:***@127.0.0.1:", "  summary names the masked URL");
    unlike_str(err.msg, "pa55word", "  summary hides the password");
    like_str(logged, "Bad response from http://user:***@127.0.0.1:", "  logged, URL masked");
    unlike_str(logged, "pa55word", "  log hides the password");
    ok(asbp_monotonic_ms() - t0 < 1000, "  at once");
    is_int(res.elapsed_ms, 0, "  elapsed measured on the given (frozen) clock");
    asbp_discovery_result_clear(&res);
    close(fd);

    /* A socket that accepts (backlog) and never answers, frozen clock: the
     * per-transfer libcurl timeout ends the round on real time. */
    fd = silent_listener(&port, 1);
    ok(fd >= 0, "a silent listener");
    snprintf(u1, sizeof u1, "http://127.0.0.1:%d/cluster", port);
    urls[0] = u1;
    cfg.timeout_ms = 400;
    logged[0] = '\0';
    t0 = asbp_monotonic_ms();
    is_int(asbp_discover(&cfg, &clk, 0, &lg, &res, &err), ASBP_OK, "silent endpoint, frozen clock");
    is_int(res.outcome, ASBP_DISC_FAILED, "  outcome FAILED");
    is_int(err.curl_code, CURLE_OPERATION_TIMEDOUT, "  timeout recorded");
    like_str(logged, "timeout", "  logged as timeout");
    {
        int64_t took = asbp_monotonic_ms() - t0;
        ok(took >= 350 && took < 3000, "  ended by the transfer timeout (%lld ms for 400)",
           (long long)took);
    }
    asbp_discovery_result_clear(&res);

    /* A shifted clock: the deadline is read on it. */
    clk.fn = NULL;
    clk.ud = NULL;
    clk.offset_ms = 1000000000;
    cfg.timeout_ms = 5000;
    t0 = asbp_monotonic_ms();
    is_int(asbp_discover(&cfg, &clk, asbp_clock_now_ms(&clk) + 300, &lg, &res, &err), ASBP_OK,
           "shifted clock, deadline before the timeout");
    is_int(res.outcome, ASBP_DISC_FAILED, "  outcome FAILED");
    {
        int64_t took = asbp_monotonic_ms() - t0;
        ok(took >= 250 && took < 2500, "  ended at the deadline (%lld ms for 300)", (long long)took);
        ok(res.elapsed_ms >= 250 && res.elapsed_ms < 2500, "  elapsed_ms on that clock (%lld)",
           (long long)res.elapsed_ms);
    }
    asbp_discovery_result_clear(&res);

    /* Only a deadline. */
    cfg.timeout_ms = 0;
    t0 = asbp_monotonic_ms();
    is_int(asbp_discover(&cfg, &clk, asbp_clock_now_ms(&clk) + 200, NULL, &res, &err), ASBP_OK,
           "no timeout, a deadline; no logger");
    ok(asbp_monotonic_ms() - t0 < 2000, "  ended at the deadline");
    asbp_discovery_result_clear(&res);
    close(fd);

    /* Odd URLs do not crash and are reported per endpoint. */
    cfg.timeout_ms = 500;
    urls[0] = NULL;
    urls[1] = "not a url at all";
    snprintf(u2, sizeof u2, "gopher://u:secretpw@127.0.0.1:%d/", port);
    urls[2] = u2;
    cfg.n_urls = 3;
    logged[0] = '\0';
    is_int(asbp_discover(&cfg, &clk, 0, &lg, &res, &err), ASBP_OK, "NULL, garbage and gopher URLs");
    is_int(res.outcome, ASBP_DISC_FAILED, "  outcome FAILED");
    is_int(res.requests, 3, "  three requests started");
    like_str(logged, "gopher://u:***@", "  masked in the log");
    unlike_str(logged, "secretpw", "  no password");
    unlike_str(err.msg, "secretpw", "  nor in the summary");
    asbp_discovery_result_clear(&res);

    /* result_clear frees the topology and empties the result, so that a
     * second clear (or a discover after it) finds nothing to free twice. */
    {
        static const char body[] =
            "{\"members\":[{\"name\":\"n0\",\"role\":\"leader\",\"host\":\"10.0.0.1\",\"port\":5432}]}";
        is_int(asbp_patroni_parse(body, sizeof body - 1, &res.topology, &err), ASBP_OK,
               "a result that owns a topology");
        res.outcome = ASBP_DISC_FAILED;
        snprintf(res.leader_host, sizeof res.leader_host, "10.0.0.1");
        res.leader_port = 5432;
        snprintf(res.endpoint, sizeof res.endpoint, "http://127.0.0.1:8008/cluster");
        res.answered = res.requests = 1;
        res.elapsed_ms = 7;
        asbp_discovery_result_clear(&res);
        ok(res.topology == NULL, "  result_clear: topology freed and forgotten");
        ok(res.outcome == 0 && res.leader_host[0] == '\0' && res.leader_port == 0
           && res.endpoint[0] == '\0' && res.answered == 0 && res.requests == 0
           && res.elapsed_ms == 0, "  result_clear: every field back to empty");
        asbp_discovery_result_clear(&res);   /* would free the topology twice */
        ok(res.topology == NULL && res.leader_host[0] == '\0', "  a second clear leaves it empty");
    }
    asbp_discovery_result_clear(NULL);   /* no test: a crash ends the program before its plan */

    /* What each endpoint did (the operator tool's metrics): a refused one
     * finished at once with its time, a silent one did not finish. */
    {
        asbp_endpoint_result per[2];
        int rfd = silent_listener(&port, 0), sfd, sport = 0;
        sfd = silent_listener(&sport, 1);
        ok(rfd >= 0 && sfd >= 0, "a closed port and a silent listener");
        snprintf(u1, sizeof u1, "http://user:pa55word@127.0.0.1:%d/cluster", port);
        snprintf(u2, sizeof u2, "http://127.0.0.1:%d/cluster", sport);
        urls[0] = u1;
        urls[1] = u2;
        cfg.n_urls = 2;
        cfg.timeout_ms = 300;
        cfg.wait_all = 1;
        cfg.per_endpoint = per;
        memset(per, 0x55, sizeof per);
        is_int(asbp_discover(&cfg, &clk, 0, NULL, &res, &err), ASBP_OK, "per endpoint: ASBP_OK");
        like_str(per[0].endpoint, "http://user:***@127.0.0.1:", "  endpoint 1: URL masked");
        unlike_str(per[0].endpoint, "pa55word", "  endpoint 1: no password");
        ok(per[0].finished && !per[0].valid, "  endpoint 1 (refused): finished, not valid");
        ok(per[0].elapsed_us >= 0 && per[0].elapsed_us < 1000000, "  endpoint 1: its time (%lld us)",
           (long long)per[0].elapsed_us);
        is_str(per[1].endpoint, u2, "  endpoint 2: URL");
        ok(!per[1].finished && !per[1].valid && per[1].elapsed_us == -1,
           "  endpoint 2 (silent): not finished, no time");
        asbp_discovery_result_clear(&res);
        cfg.per_endpoint = NULL;
        cfg.wait_all = 0;
        close(rfd);
        close(sfd);
    }

    curl_global_cleanup();
    return tap_done();
}
