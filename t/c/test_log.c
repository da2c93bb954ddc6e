/*
 * Unit tests: asbp_log, the logger callback and its repeat suppression.
 * Times are given with asbp_log_at; nothing sleeps.
 */
#include "tap.h"
#include "asbp_log.h"

#define T0 5000000   /* an arbitrary "now" */
#define MAXMSG 16

/* The sink: keeps what it receives. */
typedef struct sink {
    size_t n;
    asbp_log_level level[MAXMSG];
    char text[MAXMSG][2100];
} sink;

static void keep(void *ud, asbp_log_level level, const char *msg)
{
    sink *s = ud;
    if (s->n < MAXMSG) {
        s->level[s->n] = level;
        snprintf(s->text[s->n], sizeof s->text[s->n], "%s", msg);
    }
    s->n++;
}

static const char *last(const sink *s)
{
    return s->n && s->n <= MAXMSG ? s->text[s->n - 1] : "(nothing)";
}

static void test_sink_and_levels(void)
{
    static sink s;
    asbp_logger lg = { keep, &s, 0, NULL, 0, 0 };
    const asbp_logger *clg = &lg;

    asbp_log(clg, ASBP_LOG_WARN, "host %s port %d: %s", "h1", 5432, "refused");
    is_int(s.n, 1, "one message");
    is_str(last(&s), "host h1 port 5432: refused", "the sink gets the exact text");
    is_int(s.level[0], ASBP_LOG_WARN, "and the level");
    asbp_log(clg, ASBP_LOG_ERROR, "e");
    is_int(s.level[1], ASBP_LOG_ERROR, "error level passed on");
    asbp_log(clg, ASBP_LOG_INFO, "i");
    is_int(s.level[2], ASBP_LOG_INFO, "info level passed on");
    asbp_log(clg, ASBP_LOG_TRACE, "t");
    is_int(s.n, 3, "trace dropped while the trace flag is off");
    ASBP_TRACE(clg, "t %d", 1);
    is_int(s.n, 3, "ASBP_TRACE produces nothing either");

    lg.trace = 1;
    ASBP_TRACE(clg, "t %d", 2);
    is_int(s.n, 4, "trace produced when the flag is on");
    is_str(last(&s), "t 2", "trace text");
    is_int(s.level[3], ASBP_LOG_TRACE, "trace level");

    lg.fn = NULL;
    asbp_log(clg, ASBP_LOG_ERROR, "dropped");
    ASBP_TRACE(clg, "dropped");
    is_int(s.n, 4, "no callback: messages dropped");
    /* A NULL logger is accepted (no test: a crash ends the program before
     * its plan, and there is no sink to look at). */
    asbp_log(NULL, ASBP_LOG_ERROR, "x");
    asbp_log_at(NULL, T0, ASBP_LOG_ERROR, "x");
}

static void test_window(void)
{
    static sink s;
    asbp_log_recent table[8];
    asbp_logger lg = { keep, &s, 0, table, 8, 10000 };
    asbp_logger before;
    const asbp_logger *clg = &lg;

    memset(table, 0, sizeof table);
    before = lg;
    asbp_log_at(clg, T0, ASBP_LOG_WARN, "API down");
    is_int(s.n, 1, "first time: printed");
    is_str(last(&s), "API down", "as is");
    asbp_log_at(clg, T0 + 5000, ASBP_LOG_WARN, "API down");
    asbp_log_at(clg, T0 + 9999, ASBP_LOG_WARN, "API down");
    is_int(s.n, 1, "again within the window: suppressed");
    asbp_log_at(clg, T0 + 6000, ASBP_LOG_WARN, "API up");
    is_int(s.n, 2, "another text within the window: printed");
    is_str(last(&s), "API up", "the other text");
    asbp_log_at(clg, T0 + 7000, ASBP_LOG_INFO, "API down");
    is_int(s.n, 2, "the same text at another level is suppressed too");
    asbp_log_at(clg, T0 + 7000, ASBP_LOG_ERROR, "API down");
    is_int(s.n, 2, "errors are suppressed like warnings");

    asbp_log_at(clg, T0 + 10000, ASBP_LOG_WARN, "API down");
    is_int(s.n, 3, "exactly at the end of the window: printed");
    is_str(last(&s), "API down (and 4 more times in 10s)",
           "with the count of suppressed ones and the time since it was printed");
    asbp_log_at(clg, T0 + 15000, ASBP_LOG_WARN, "API down");
    is_int(s.n, 3, "the window starts again when printed");
    asbp_log_at(clg, T0 + 20000, ASBP_LOG_WARN, "API down");
    is_str(last(&s), "API down (and 1 more times in 10s)", "count starts again");
    asbp_log_at(clg, T0 + 31000, ASBP_LOG_WARN, "API down");
    is_int(s.n, 5, "after a quiet window: printed");
    is_str(last(&s), "API down", "no suffix when nothing was suppressed");
    asbp_log_at(clg, T0 + 32000, ASBP_LOG_WARN, "API down");
    asbp_log_at(clg, T0 + 95999, ASBP_LOG_WARN, "API down");
    is_str(last(&s), "API down (and 1 more times in 64s)",
           "seconds since it was last printed, rounded down");

    asbp_log_at(clg, T0 + 96000, ASBP_LOG_TRACE, "trace");
    is_int(s.n, 6, "trace dropped (flag off) even with suppression on");
    ok(before.fn == lg.fn && before.ud == lg.ud && before.trace == lg.trace
       && before.recent == lg.recent && before.nrecent == lg.nrecent
       && before.dedupe_ms == lg.dedupe_ms,
       "the logger itself is not written; only its table is");

    lg.trace = 1;
    asbp_log_at(clg, T0 + 96000, ASBP_LOG_TRACE, "trace");
    asbp_log_at(clg, T0 + 96001, ASBP_LOG_TRACE, "trace");
    is_int(s.n, 8, "trace messages are never suppressed");
}

static void test_table_full(void)
{
    static sink s;
    asbp_log_recent table[2];
    asbp_logger lg = { keep, &s, 0, table, 2, 10000 };

    memset(table, 0, sizeof table);
    asbp_log_at(&lg, T0, ASBP_LOG_WARN, "A");
    asbp_log_at(&lg, T0 + 1, ASBP_LOG_WARN, "B");
    asbp_log_at(&lg, T0 + 2, ASBP_LOG_WARN, "A");
    asbp_log_at(&lg, T0 + 2, ASBP_LOG_WARN, "B");
    is_int(s.n, 2, "two texts fit in two slots");
    asbp_log_at(&lg, T0 + 3, ASBP_LOG_WARN, "C");
    is_int(s.n, 3, "a third text is printed");
    asbp_log_at(&lg, T0 + 4, ASBP_LOG_WARN, "A");
    is_int(s.n, 4, "it took the slot printed longest ago: that text is printed again");
    is_str(last(&s), "A", "without a count (it went with the slot)");
    asbp_log_at(&lg, T0 + 5, ASBP_LOG_WARN, "C");
    is_int(s.n, 4, "the newer text is still suppressed");
}

static void test_disabled(void)
{
    static sink s;
    asbp_log_recent table[4];
    asbp_logger lg = { keep, &s, 0, NULL, 4, 10000 };
    int i;

    memset(table, 0, sizeof table);
    for (i = 0; i < 2; i++)
        asbp_log_at(&lg, T0, ASBP_LOG_WARN, "x");
    is_int(s.n, 2, "no table: nothing suppressed");
    lg.recent = table;
    lg.nrecent = 0;
    for (i = 0; i < 2; i++)
        asbp_log_at(&lg, T0, ASBP_LOG_WARN, "x");
    is_int(s.n, 4, "a table of 0 slots: nothing suppressed");
    lg.nrecent = 4;
    lg.dedupe_ms = 0;
    for (i = 0; i < 2; i++)
        asbp_log_at(&lg, T0, ASBP_LOG_WARN, "x");
    is_int(s.n, 6, "a window of 0: nothing suppressed");
    lg.dedupe_ms = -5;
    for (i = 0; i < 2; i++)
        asbp_log_at(&lg, T0, ASBP_LOG_WARN, "x");
    is_int(s.n, 8, "a negative window: nothing suppressed");
    ok(table[0].hash == 0 && table[3].hash == 0, "and the table was not touched");
}

static void test_long_and_real_clock(void)
{
    static sink s;
    static char big[3000];
    asbp_log_recent table[4];
    asbp_logger lg = { keep, &s, 0, table, 4, 10000 };

    memset(table, 0, sizeof table);
    memset(big, 'x', sizeof big - 1);
    asbp_log_at(&lg, T0, ASBP_LOG_WARN, "%s", big);
    is_int(strlen(last(&s)), 2047, "a long message is cut to 2047 bytes");
    asbp_log_at(&lg, T0 + 1, ASBP_LOG_WARN, "%s", big);
    asbp_log_at(&lg, T0 + 20000, ASBP_LOG_WARN, "%s", big);
    is_int(s.n, 2, "a long message is suppressed like a short one");
    is_int(strlen(last(&s)), 2047, "no room for the count: the text stays whole");

    /* asbp_log reads the real clock: two calls are well within an hour. */
    lg.dedupe_ms = 3600 * 1000;
    asbp_log(&lg, ASBP_LOG_WARN, "real %d", 1);
    asbp_log(&lg, ASBP_LOG_WARN, "real %d", 1);
    is_int(s.n, 3, "asbp_log: printed once on the real clock");
    is_str(last(&s), "real 1", "its text");
}

/* Keys: a lone number is one placeholder; names and addresses are not. */
static void test_key(void)
{
    static const char *const same[][2] = {
        { "Circuit breaker active (Patroni API not asked for 29s more)",
          "Circuit breaker active (Patroni API not asked for 28s more)" },
        { "waiting 29 s more", "waiting 28 s more" },
        { "using cached leader 10.0.0.1:5432 (3s old)",
          "using cached leader 10.0.0.1:5432 (12s old)" },
        { "operation succeeded after 96 ms (first error: x)",
          "operation succeeded after 1500 ms (first error: x)" },
        { "restart 1 of at most 3", "restart 2 of at most 3" },
        { "took 1.5 s.", "took 12.25 s." },
        { "12", "3" },
    };
    static const char *const differ[][2] = {
        { "API down", "API up" },
        { "reconnected to 10.0.0.1:5432", "reconnected to 10.0.0.2:5432" },
        { "reconnected to h1:5432", "reconnected to h1:5433" },
        { "dbi:Pg:host=a;port=5432", "dbi:Pg:host=a;port=5433" },
        { "Bad response from http://h:8008/cluster", "Bad response from http://h:8009/cluster" },
        { "host1 down", "host2 down" },
        { "error 57P01", "error 08P01" },
        { "at 2001:db8::1 now", "at 2001:db8::2 now" },
        { "node-1 down", "node-2 down" },
        { "29 s more", "29 s less" },
        { "29 s more", "29 ms more" },
    };
    size_t i;
    for (i = 0; i < sizeof same / sizeof same[0]; i++)
        ok(asbp_log_key(same[i][0]) == asbp_log_key(same[i][1]),
           "same key: '%s' and '%s'", same[i][0], same[i][1]);
    for (i = 0; i < sizeof differ / sizeof differ[0]; i++)
        ok(asbp_log_key(differ[i][0]) != asbp_log_key(differ[i][1]),
           "different keys: '%s' and '%s'", differ[i][0], differ[i][1]);
    ok(asbp_log_key("") != 0, "never 0, even for an empty text");
}

/* The rate limit uses that key; the printed text keeps its numbers. */
static void test_window_numbers(void)
{
    static sink s;
    asbp_log_recent table[4];
    asbp_logger lg = { keep, &s, 0, table, 4, 10000 };

    memset(table, 0, sizeof table);
    asbp_log_at(&lg, T0, ASBP_LOG_WARN, "breaker active (%ds more)", 30);
    asbp_log_at(&lg, T0 + 1000, ASBP_LOG_WARN, "breaker active (%ds more)", 29);
    asbp_log_at(&lg, T0 + 2000, ASBP_LOG_WARN, "breaker active (%ds more)", 28);
    is_int(s.n, 1, "a line whose number changes is suppressed within the window");
    is_str(last(&s), "breaker active (30s more)", "the first one printed, numbers kept");
    asbp_log_at(&lg, T0 + 10000, ASBP_LOG_WARN, "breaker active (%ds more)", 20);
    is_int(s.n, 2, "printed again after the window");
    is_str(last(&s), "breaker active (20s more) (and 2 more times in 10s)",
           "with its own number and the count");
    asbp_log_at(&lg, T0 + 11000, ASBP_LOG_WARN, "reconnected to 10.0.0.%d:5432", 2);
    asbp_log_at(&lg, T0 + 11000, ASBP_LOG_WARN, "reconnected to 10.0.0.%d:5432", 3);
    is_int(s.n, 4, "lines about two addresses are both printed");
}

/* The queue: order, bound, dropped count, clearing. */
static void test_queue(void)
{
    asbp_log_queue *q = asbp_log_queue_new(3);
    asbp_logger lg = { asbp_log_queue_sink, NULL, 0, NULL, 0, 0 };
    asbp_log_level level = ASBP_LOG_TRACE;
    char buf[64], small[5];
    int i;

    ok(q != NULL, "a queue of 3");
    lg.ud = q;
    is_int(asbp_log_queue_take(q, &level, buf, sizeof buf), 0, "empty: nothing to take");
    asbp_log(&lg, ASBP_LOG_WARN, "one %d", 1);
    asbp_log(&lg, ASBP_LOG_INFO, "two");
    is_int(asbp_log_queue_count(q), 2, "two queued");
    ok(asbp_log_queue_take(q, &level, buf, sizeof buf), "taken");
    is_str(buf, "one 1", "oldest first");
    is_int(level, ASBP_LOG_WARN, "with its level");
    ok(asbp_log_queue_take(q, &level, buf, sizeof buf), "taken again");
    is_str(buf, "two", "then the next");
    is_int(level, ASBP_LOG_INFO, "its level");
    is_int(asbp_log_queue_count(q), 0, "empty again");
    is_int(asbp_log_queue_take_dropped(q), 0, "nothing dropped");

    for (i = 1; i <= 5; i++)
        asbp_log(&lg, ASBP_LOG_WARN, "m%d", i);
    is_int(asbp_log_queue_count(q), 3, "bounded: 3 kept of 5");
    is_int(asbp_log_queue_take_dropped(q), 2, "2 dropped");
    is_int(asbp_log_queue_take_dropped(q), 0, "the count was reset");
    asbp_log_queue_take(q, &level, small, sizeof small);
    is_str(small, "m3", "the oldest ones went: m3 is first");
    asbp_log(&lg, ASBP_LOG_ERROR, "a long message");
    asbp_log_queue_take(q, &level, small, sizeof small);
    asbp_log_queue_take(q, &level, small, sizeof small);
    asbp_log_queue_take(q, &level, small, sizeof small);
    is_str(small, "a lo", "cut to the buffer, NUL-terminated");
    is_int(level, ASBP_LOG_ERROR, "error level kept");

    asbp_log(&lg, ASBP_LOG_WARN, "x");
    asbp_log(&lg, ASBP_LOG_WARN, "y");
    asbp_log(&lg, ASBP_LOG_WARN, "z");
    asbp_log(&lg, ASBP_LOG_WARN, "w");
    asbp_log_queue_clear(q);
    is_int(asbp_log_queue_count(q), 0, "clear empties it");
    is_int(asbp_log_queue_take_dropped(q), 0, "and forgets the dropped count");
    asbp_log(&lg, ASBP_LOG_WARN, "after");
    asbp_log_queue_take(q, &level, buf, sizeof buf);
    is_str(buf, "after", "usable after clear");
    asbp_log(&lg, ASBP_LOG_WARN, "left for free");
    asbp_log_queue_free(q);   /* frees what is left (valgrind checks) */
    asbp_log_queue_free(NULL);
    is_int(asbp_log_queue_count(NULL), 0, "a NULL queue holds nothing");
}

int main(void)
{
    test_key();
    test_window_numbers();
    test_queue();
    test_sink_and_levels();
    test_window();
    test_table_full();
    test_disabled();
    test_long_and_real_clock();
    return tap_done();
}
