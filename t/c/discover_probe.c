/*
 * discover_probe: runs asbp_discover() once and prints the result, for the
 * Perl tests that put fake Patroni servers behind it (t/31-discovery.t).
 *
 *   discover_probe --url URL [--url URL ...] [--timeout-ms N]
 *                  [--deadline-ms N] [--no-verify] [--ca-file F]
 *                  [--ca-path D] [--cert F] [--key F] [--trace]
 *
 * stdout, one line:
 *   outcome=LEADER leader=HOST:PORT endpoint=URL elapsed_ms=N answered=N
 *   requests=N members=N curl_code=N
 * (leader "-" and endpoint "-" when none), then, for FAILED or a local
 * error, a second line "error: MESSAGE".
 * stderr: one line per log message, "LEVEL: message".
 * Exit status: 0 when asbp_discover returned ASBP_OK (whatever the
 * outcome), 2 on a local error, 1 on bad usage.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "asbp_discovery.h"

static void log_to_stderr(void *ud, asbp_log_level level, const char *msg)
{
    static const char *names[] = { "ERROR", "WARN", "INFO", "TRACE" };
    (void)ud;
    fprintf(stderr, "%s: %s\n", (unsigned)level < 4 ? names[level] : "?", msg);
}

static const char *outcome_name(asbp_disc_outcome o)
{
    switch (o) {
    case ASBP_DISC_LEADER: return "LEADER";
    case ASBP_DISC_TRANSITION: return "TRANSITION";
    case ASBP_DISC_SPLIT: return "SPLIT";
    case ASBP_DISC_FAILED: return "FAILED";
    }
    return "?";
}

static void usage(void)
{
    fputs("usage: discover_probe --url URL [--url URL ...] [--timeout-ms N] "
          "[--deadline-ms N] [--no-verify] [--ca-file F] [--ca-path D] "
          "[--cert F] [--key F] [--trace]\n", stderr);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "url", required_argument, NULL, 'u' },
        { "timeout-ms", required_argument, NULL, 't' },
        { "deadline-ms", required_argument, NULL, 'd' },
        { "no-verify", no_argument, NULL, 'n' },
        { "ca-file", required_argument, NULL, 'c' },
        { "ca-path", required_argument, NULL, 'p' },
        { "cert", required_argument, NULL, 'C' },
        { "key", required_argument, NULL, 'K' },
        { "trace", no_argument, NULL, 'T' },
        { NULL, 0, NULL, 0 }
    };
    const char **urls;
    size_t n = 0;
    int ch, status;
    int64_t deadline_rel = 0;
    asbp_discovery_cfg cfg;
    asbp_discovery_result res;
    asbp_clock clk = ASBP_CLOCK_INIT;
    asbp_logger lg = { log_to_stderr, NULL, 0, NULL, 0, 0 };
    asbp_err err;
    asbp_code rc;

    urls = calloc((size_t)argc, sizeof *urls);   /* freed at the end */
    if (!urls)
        return 2;
    memset(&cfg, 0, sizeof cfg);
    cfg.timeout_ms = 3000;
    cfg.verify_ssl = 1;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case 'u': urls[n++] = optarg; break;
        case 't': cfg.timeout_ms = strtoll(optarg, NULL, 10); break;
        case 'd': deadline_rel = strtoll(optarg, NULL, 10); break;
        case 'n': cfg.verify_ssl = 0; break;
        case 'c': cfg.ca_file = optarg; break;
        case 'p': cfg.ca_path = optarg; break;
        case 'C': cfg.cert_file = optarg; break;
        case 'K': cfg.key_file = optarg; break;
        case 'T': lg.trace = 1; break;
        default:
            usage();
            free(urls);
            return 1;
        }
    }
    if (optind != argc) {
        usage();
        free(urls);
        return 1;
    }
    cfg.urls = urls;
    cfg.n_urls = n;

    curl_global_init(CURL_GLOBAL_DEFAULT);
    asbp_err_clear(&err);
    rc = asbp_discover(&cfg, &clk,
                       deadline_rel > 0 ? asbp_clock_now_ms(&clk) + deadline_rel : 0,
                       &lg, &res, &err);
    if (rc == ASBP_OK) {
        char leader[300];
        if (res.leader_host[0])
            snprintf(leader, sizeof leader, "%s:%d", res.leader_host, res.leader_port);
        else
            snprintf(leader, sizeof leader, "-");
        printf("outcome=%s leader=%s endpoint=%s elapsed_ms=%lld answered=%lu "
               "requests=%lu members=%lu curl_code=%d\n",
               outcome_name(res.outcome), leader,
               res.endpoint[0] ? res.endpoint : "-", (long long)res.elapsed_ms,
               (unsigned long)res.answered, (unsigned long)res.requests,
               (unsigned long)(res.topology ? res.topology->n : 0), err.curl_code);
        if (res.outcome == ASBP_DISC_FAILED)
            printf("error: %s\n", err.msg);
        status = 0;
    } else {
        printf("outcome=ERROR code=%s curl_code=%d\nerror: %s\n",
               asbp_code_name(rc), err.curl_code, err.msg);
        status = 2;
    }
    asbp_discovery_result_clear(&res);
    curl_global_cleanup();
    free(urls);
    return status;
}
