/*
 * XS glue for Apache::Session::Browseable::Patroni.
 *
 * Only marshalling lives here: Perl values become C structs and calls into
 * the core (c_src/), C errors become Perl exceptions after every C resource
 * is released.  The one per-interpreter context (connection pool, cluster
 * states) is kept in MY_CXT.
 */
#define PERL_NO_GET_CONTEXT
#include "EXTERN.h"
#include "perl.h"
#include "XSUB.h"
#include "ppport.h"

#include <string.h>
#include <sys/time.h>
#include <curl/curl.h>

#include "asbp_browse.h"
#include "asbp_ctx.h"
#include "asbp_discovery.h"
#include "asbp_options.h"
#include "asbp_random.h"
#include "asbp_schema.h"
#include "asbp_source.h"
#include "asbp_store.h"

#define MY_CXT_KEY "Apache::Session::Browseable::Patroni::_guts" XS_VERSION

typedef struct {
    asbp_ctx *ctx;
} my_cxt_t;

START_MY_CXT

#define LOG_PREFIX "Apache::Session::Browseable::Patroni"

/* ---- logging ----------------------------------------------------------
 *
 * The core's messages wait in the context's queue (c_src/asbp_log.h) and
 * reach Perl only once the core call has returned: flush_log hands each to
 * the module's _emit (warn, or the program's logger) inside an eval, so
 * that a __WARN__ handler or a logger that dies can never unwind through C
 * code nor change the outcome of the operation.  Traces (ASBP_TRACE=1), a
 * debugging aid printed in bulk, go straight to STDERR with the time. */

static const char *const level_names[] = { "error", "warn", "info", "trace" };
static const char *const level_words[] = { "error", "warning", "info", "trace" };

static const char *level_word(asbp_log_level level)
{
    return level_words[level <= ASBP_LOG_TRACE ? level : 0];
}

static void print_direct(pTHX_ asbp_log_level level, const char *msg)
{
    PerlIO_printf(PerlIO_stderr(), "%s[%ld] %s: %s\n", LOG_PREFIX, (long)getpid(),
                  level_word(level), msg);
    PerlIO_flush(PerlIO_stderr());
}

/* The core's logger callback (ud: the context's queue).  Runs inside the
 * core: it calls no Perl code. */
static void xs_log(void *ud, asbp_log_level level, const char *msg)
{
    dTHX;
    dMY_CXT;
    if (level == ASBP_LOG_TRACE) {
        /* traces carry the wall-clock time, to follow a failover */
        struct timeval tv;
        gettimeofday(&tv, NULL);
        PerlIO_printf(PerlIO_stderr(), "%s[%ld] %ld.%06ld trace: %s\n", LOG_PREFIX,
                      (long)getpid(), (long)tv.tv_sec, (long)tv.tv_usec, msg);
        PerlIO_flush(PerlIO_stderr());
    } else if (!MY_CXT.ctx) {
        /* the interpreter is going away: nobody will empty the queue */
        print_direct(aTHX_ level, msg);
    } else {
        asbp_log_queue_sink(ud, level, msg);
    }
}

/* One message through Perl: _emit(level, text) in an eval, with $@ kept.
 * A handler or logger that dies: the message and the reason are printed
 * on STDERR directly, and the caller goes on. */
static void emit_one(pTHX_ asbp_log_level level, const char *msg)
{
    dSP;
    ENTER;
    SAVETMPS;
    save_scalar(PL_errgv);   /* local $@ */
    PUSHMARK(SP);
    EXTEND(SP, 2);
    mPUSHs(newSVpv(level_names[level <= ASBP_LOG_TRACE ? level : 0], 0));
    mPUSHs(newSVpv(msg, 0));   /* bytes, as they were printed */
    PUTBACK;
    (void)call_pv("Apache::Session::Browseable::Patroni::_emit", G_EVAL | G_DISCARD);
    if (SvTRUE(ERRSV)) {
        STRLEN l;
        const char *why = SvPV(ERRSV, l);
        print_direct(aTHX_ level, msg);
        PerlIO_printf(PerlIO_stderr(), "%s[%ld] error: the message above could not go "
                      "through warn or the logger, which died: %.*s\n", LOG_PREFIX,
                      (long)getpid(), (int)(l && why[l - 1] == '\n' ? l - 1 : l), why);
        PerlIO_flush(PerlIO_stderr());
    }
    FREETMPS;
    LEAVE;
}

/* Emits the queued messages, oldest first.  Called after each core call
 * returns and before an error is raised; never while the core runs.
 * Returns the number emitted: Perl code ran when it is not 0. */
static unsigned long flush_log(pTHX)
{
    dMY_CXT;
    asbp_log_queue *q;
    unsigned long dropped;
    asbp_log_level level;
    char text[2048];
    unsigned long n = 0;
    if (!MY_CXT.ctx)
        return 0;
    q = asbp_ctx_log_queue(MY_CXT.ctx);
    if (!asbp_log_queue_count(q))
        return 0;           /* the common case: nothing to say */
    dropped = asbp_log_queue_take_dropped(q);
    if (dropped) {
        snprintf(text, sizeof text, "%lu older message%s dropped (%lu in one call; "
                 "the last %lu follow)", dropped, dropped == 1 ? "" : "s",
                 (unsigned long)(dropped + asbp_log_queue_count(q)),
                 (unsigned long)asbp_log_queue_count(q));
        emit_one(aTHX_ ASBP_LOG_WARN, text);
        n++;
    }
    /* taken one at a time: a logger that uses the module empties the
     * queue further itself, and nothing is emitted twice */
    while (asbp_log_queue_take(q, &level, text, sizeof text)) {
        emit_one(aTHX_ level, text);
        n++;
    }
    return n;
}

static asbp_ctx *new_ctx(pTHX)
{
    asbp_ctx *ctx = asbp_ctx_new();
    const char *trace;
    if (!ctx)
        croak("%s: out of memory", LOG_PREFIX);
    asbp_ctx_logger(ctx)->fn = xs_log;
    asbp_ctx_logger(ctx)->ud = asbp_ctx_log_queue(ctx);
    trace = getenv("ASBP_TRACE");
    asbp_ctx_logger(ctx)->trace = trace && *trace && strcmp(trace, "0") != 0;
    return ctx;
}

/* Runs at interpreter destruction: drop the interpreter's reference; the
 * context goes when the last tied store holding it is freed. */
static void release_ctx(pTHX_ void *p)
{
    dMY_CXT;
    asbp_log_level level;
    char text[2048];
    PERL_UNUSED_ARG(p);
    /* too late for Perl code: what is still queued goes to STDERR */
    while (MY_CXT.ctx && asbp_log_queue_take(asbp_ctx_log_queue(MY_CXT.ctx), &level,
                                             text, sizeof text))
        print_direct(aTHX_ level, text);
    asbp_ctx_release(MY_CXT.ctx);
    MY_CXT.ctx = NULL;
}

static asbp_ctx *the_ctx(pTHX)
{
    dMY_CXT;
    if (!MY_CXT.ctx)
        croak("%s: used after interpreter shutdown", LOG_PREFIX);
    return MY_CXT.ctx;
}

/* ---- errors --------------------------------------------------------- */

/*
 * An error while Perl runs a destructor (Apache::Session's DESTROY saves
 * the session at untie; the store's DESTROY commits) would become Perl's
 * "(in cleanup)" warning -- which Perl prints only when the 'misc' warnings
 * are enabled where the error was raised, and Apache/Session.pm does not
 * enable them: the caller would never learn that its change was not saved.
 * So there, and only there, the error is printed as that warning
 * unconditionally, and the destructor goes on.
 */
static int in_destructor(pTHX)
{
    return (PL_in_eval & EVAL_KEEPERR) != 0;
}

static void croak_err(pTHX_ const asbp_err *e);

/* croak_err, or the warning above when called from a destructor. */
static void report_err(pTHX_ const asbp_err *e)
{
    flush_log(aTHX);
    if (!in_destructor(aTHX))
        croak_err(aTHX_ e);
    if (e->sqlstate[0])
        warn("\t(in cleanup) %s: %s [SQLSTATE %s]", LOG_PREFIX, e->msg, e->sqlstate);
    else
        warn("\t(in cleanup) %s: %s", LOG_PREFIX, e->msg);
}

static void croak_err(pTHX_ const asbp_err *e)
{
    flush_log(aTHX);
    if (e->code == ASBP_E_NOTFOUND)
        croak("Object does not exist in the data store");
    if (e->sqlstate[0])
        croak("%s: %s [SQLSTATE %s]", LOG_PREFIX, e->msg, e->sqlstate);
    croak("%s: %s", LOG_PREFIX, e->msg);
}

/* ---- options: their names, parsing and checks are the core's
 *      (c_src/asbp_options.c); here each value becomes text ------------ */

/* Room for the text of a number, and for the options of one call. */
#define NUM_TEXT 48
#define XS_OPTIONS_MAX 32

typedef struct xs_options {
    asbp_options o;
    char num[XS_OPTIONS_MAX][NUM_TEXT];   /* numbers as text (option_text) */
} xs_options;

/* The core's option names with their hash values, computed once at boot
 * (the hash seed is the process's): each tie looks every name up. */
static struct {
    const char *name;
    I32 len;
    U32 hash;
} opt_keys[XS_OPTIONS_MAX];
static size_t n_opt_keys;

static void opt_keys_init(pTHX)
{
    size_t i, n = asbp_options_count();
    if (n > XS_OPTIONS_MAX)
        croak("%s: built with room for %d options, the core has %lu", LOG_PREFIX,
              XS_OPTIONS_MAX, (unsigned long)n);
    for (i = 0; i < n; i++) {
        size_t len;
        opt_keys[i].name = asbp_options_name(i, &len);
        opt_keys[i].len = (I32)len;
        PERL_HASH(opt_keys[i].hash, opt_keys[i].name, len);
    }
    n_opt_keys = n;
}

/* n in decimal at the end of buf (NUM_TEXT bytes), NUL-terminated; returns
 * where it starts.  (snprintf would cost more than the rest of an
 * option's handling: options are read on every tie.) */
static char *uv_text(char *buf, UV n, int neg)
{
    char *p = buf + NUM_TEXT - 1;
    *p = '\0';
    do {
        *--p = (char)('0' + n % 10);
        n /= 10;
    } while (n);
    if (neg)
        *--p = '-';
    return p;
}

/*
 * A string option as UTF-8 bytes, whatever Perl's internal form: a TableName
 * or a UserName with non-ASCII characters reaches libpq the same from a
 * downgraded (Latin-1) or an upgraded copy.  A non-ASCII Latin-1 string is
 * upgraded on a (mortal) copy: the caller's value is left as it is.
 */
static const char *string_text(pTHX_ SV *sv, STRLEN *len)
{
    const char *p = SvPV_nomg(sv, *len);
    if (!SvUTF8(sv) && !is_utf8_invariant_string((const U8 *)p, *len)) {
        SV *copy = sv_2mortal(newSVpvn(p, *len));
        p = SvPVutf8(copy, *len);
    }
    return p;
}

/*
 * The text of an option's value, as Perl prints it.  A number that is not
 * also a string is written into buf, so that nothing is cached in the
 * caller's value (a number stays a number for whoever serializes the
 * options later).  Zero is "0" whatever its sign: false, as Perl's.
 */
static const char *option_text(pTHX_ SV *sv, char *buf, STRLEN *len)
{
    int n = -1;
    if (!SvPOKp(sv) && !SvROK(sv)) {
        if (SvIOK(sv) || (SvIOKp(sv) && !SvNOKp(sv))) {
            IV iv = SvIVX(sv);
            char *p = SvIsUV(sv) ? uv_text(buf, SvUVX(sv), 0)
                    : iv < 0 ? uv_text(buf, (UV)0 - (UV)iv, 1) : uv_text(buf, (UV)iv, 0);
            *len = (STRLEN)(buf + NUM_TEXT - 1 - p);
            return p;
        }
        if (SvNOKp(sv)) {
            NV nv = SvNVX(sv);
            n = Perl_isnan(nv) ? snprintf(buf, NUM_TEXT, "NaN")
              : Perl_isinf(nv) ? snprintf(buf, NUM_TEXT, "%s", nv < 0 ? "-Inf" : "Inf")
              : nv == 0 ? snprintf(buf, NUM_TEXT, "0")
              : snprintf(buf, NUM_TEXT, "%.*" NVgf, NV_DIG, nv);
        }
    }
    if (n >= 0 && n < NUM_TEXT) {
        *len = (STRLEN)n;
        return buf;
    }
    return string_text(aTHX_ sv, len);
}

/* Every option the core knows, taken from args in the core's order; an
 * option the core refuses or a bad value croaks with the core's message. */
static void fill_options(pTHX_ HV *args, xs_options *x)
{
    size_t i;
    asbp_err e;
    asbp_options_init(&x->o);
    asbp_err_clear(&e);
    for (i = 0; i < n_opt_keys; i++) {
        SV **svp = (SV **)hv_common_key_len(args, opt_keys[i].name, opt_keys[i].len,
                                            HV_FETCH_JUST_SV, NULL, opt_keys[i].hash);
        const char *p = NULL;
        STRLEN len = 0;
        if (!svp)
            continue;
        SvGETMAGIC(*svp);
        if (SvOK(*svp))
            p = option_text(aTHX_ *svp, x->num[i], &len);
        if (asbp_options_set_at(&x->o, i, p, len, &e) != ASBP_OK)
            croak_err(aTHX_ &e);
    }
}

static HV *hash_arg(pTHX_ SV *sv, const char *what)
{
    if (!sv || !SvROK(sv) || SvTYPE(SvRV(sv)) != SVt_PVHV)
        croak("%s: %s must be a hash reference", LOG_PREFIX, what);
    return (HV *)SvRV(sv);
}

/* The source of the options in args; *commit (when not NULL) gets the
 * Commit option (1 by default). */
static asbp_source *source_for(pTHX_ HV *args, int *commit)
{
    xs_options x;
    asbp_source *src;
    asbp_err e;
    fill_options(aTHX_ args, &x);
    asbp_err_clear(&e);
    if (asbp_source_get(the_ctx(aTHX), &x.o, &src, &e) != ASBP_OK)
        croak_err(aTHX_ &e);
    if (commit)
        *commit = x.o.commit < 0 ? 1 : x.o.commit;
    return src;
}

/* ---- the store object: a blessed hash with the C store as magic ------ */

static int store_mg_free(pTHX_ SV *sv, MAGIC *mg)
{
    PERL_UNUSED_ARG(sv);
    asbp_store_free((asbp_store *)mg->mg_ptr);   /* ROLLBACK if still open */
    mg->mg_ptr = NULL;
    return 0;
}

static int store_mg_dup(pTHX_ MAGIC *mg, CLONE_PARAMS *param)
{
    PERL_UNUSED_ARG(param);
    mg->mg_ptr = NULL;   /* a new thread never shares the C store */
    return 0;
}

static MGVTBL store_vtbl = {
    NULL, NULL, NULL, NULL, store_mg_free, NULL, store_mg_dup, NULL
};

static HV *store_hv(pTHX_ SV *self)
{
    if (!self || !SvROK(self) || SvTYPE(SvRV(self)) != SVt_PVHV)
        croak("%s: not a store object", LOG_PREFIX);
    return (HV *)SvRV(self);
}

/* The C store of self; created from args (the options of the tie) on
 * first use. */
static asbp_store *store_of(pTHX_ SV *self, SV *args)
{
    HV *hv = store_hv(aTHX_ self);
    MAGIC *mg = mg_findext((SV *)hv, PERL_MAGIC_ext, &store_vtbl);
    asbp_source *src;
    asbp_store *st;
    int commit;

    if (mg) {
        if (!mg->mg_ptr)
            croak("%s: this store object belongs to another thread", LOG_PREFIX);
        return (asbp_store *)mg->mg_ptr;
    }
    if (!args)
        return NULL;
    src = source_for(aTHX_ hash_arg(aTHX_ args, "the session's args"), &commit);
    st = asbp_store_new(src, commit);
    if (!st)
        croak("%s: out of memory", LOG_PREFIX);
    mg = sv_magicext((SV *)hv, NULL, PERL_MAGIC_ext, &store_vtbl, (const char *)st, 0);
    mg->mg_flags |= MGf_DUP;
    return st;
}

/* True for a store object cloned into another thread (see store_mg_dup):
 * its transaction belongs to the thread that opened it. */
static int store_foreign(pTHX_ SV *self)
{
    MAGIC *mg;
    if (!self || !SvROK(self) || SvTYPE(SvRV(self)) != SVt_PVHV)
        return 0;
    mg = mg_findext(SvRV(self), PERL_MAGIC_ext, &store_vtbl);
    return mg && !mg->mg_ptr;
}

/* A problem with the session object itself: croaks, or from a destructor
 * prints it (see report_err) and returns. */
static void report_msg(pTHX_ const char *msg)
{
    asbp_err e;
    asbp_err_clear(&e);
    asbp_err_set(&e, ASBP_E_USAGE, ASBP_EC_REPORT, "%s", msg);
    report_err(aTHX_ &e);
}

/* The session's id as the C core takes it: NULL (reported) when there is
 * none or it cannot be one. */
static const char *id_arg(pTHX_ SV *id)
{
    STRLEN len;
    const char *p;
    SvGETMAGIC(id);
    if (!SvOK(id)) {
        report_msg(aTHX_ "the session has no _session_id: not saved");
        return NULL;
    }
    p = SvPV_nomg(id, len);
    if (len == 0 || strlen(p) != len) {
        report_msg(aTHX_ "invalid session id: not saved");
        return NULL;
    }
    return p;
}

/* The serialized session as UTF-8 text: NULL (reported) when it is
 * undefined or holds a NUL. */
static const char *serialized_arg(pTHX_ SV *s)
{
    STRLEN len;
    const char *p;
    SvGETMAGIC(s);
    if (!SvOK(s)) {
        report_msg(aTHX_ "the session was not serialized: not saved");
        return NULL;
    }
    /* Characters to UTF-8 bytes (upgrading a Latin-1 string if needed),
     * on a copy: the caller's value is left as it is. */
    if (!SvUTF8(s)) {
        SV *copy = sv_2mortal(newSVsv_nomg(s));
        p = SvPVutf8(copy, len);
    } else {
        p = SvPV_nomg(s, len);
    }
    if (strlen(p) != len) {
        report_msg(aTHX_ "session data contains a NUL character: not saved");
        return NULL;
    }
    return p;
}

/* ---- browse: searchOn, searchOnExpr, get_key_from_all_sessions,
 *      deleteIfLowerThan (the loops over rows live here; the SQL and the
 *      streaming in c_src/asbp_browse.c) ------------------------------- */

#define CURSOR_CLASS "Apache::Session::Browseable::Patroni::Cursor"

/* The iterator object: a blessed hash carrying the C iterator as magic. */
static int cursor_mg_free(pTHX_ SV *sv, MAGIC *mg)
{
    PERL_UNUSED_ARG(sv);
    asbp_browse_free((asbp_browse *)mg->mg_ptr);   /* closes an unfinished stream */
    mg->mg_ptr = NULL;
    return 0;
}

static int cursor_mg_dup(pTHX_ MAGIC *mg, CLONE_PARAMS *param)
{
    PERL_UNUSED_ARG(param);
    mg->mg_ptr = NULL;   /* a new thread never shares the stream */
    return 0;
}

static MGVTBL cursor_vtbl = {
    NULL, NULL, NULL, NULL, cursor_mg_free, NULL, cursor_mg_dup, NULL
};

/* Wraps b in a new (mortal) object: whatever happens next, even a croak,
 * the iterator is freed with it. */
static SV *cursor_new(pTHX_ asbp_browse *b)
{
    HV *hv = newHV();
    SV *rv = sv_2mortal(newRV_noinc((SV *)hv));
    MAGIC *mg = sv_magicext((SV *)hv, NULL, PERL_MAGIC_ext, &cursor_vtbl,
                            (const char *)b, 0);
    mg->mg_flags |= MGf_DUP;
    sv_bless(rv, gv_stashpv(CURSOR_CLASS, GV_ADD));
    return rv;
}

static MAGIC *cursor_mg(pTHX_ SV *self)
{
    if (!self || !SvROK(self) || SvTYPE(SvRV(self)) != SVt_PVHV)
        croak("%s: not a cursor object", LOG_PREFIX);
    return mg_findext(SvRV(self), PERL_MAGIC_ext, &cursor_vtbl);
}

static asbp_browse *cursor_of(pTHX_ SV *self)
{
    MAGIC *mg = cursor_mg(aTHX_ self);
    if (!mg)
        croak("%s: not a cursor object", LOG_PREFIX);
    if (!mg->mg_ptr)
        croak("%s: this cursor is closed (or belongs to another thread)", LOG_PREFIX);
    return (asbp_browse *)mg->mg_ptr;
}

/* Frees the C iterator now (before a croak, or when done). */
static void cursor_dispose(pTHX_ SV *self)
{
    MAGIC *mg = cursor_mg(aTHX_ self);
    if (mg && mg->mg_ptr) {
        asbp_browse_free((asbp_browse *)mg->mg_ptr);
        mg->mg_ptr = NULL;
    }
}

/* A Perl string as UTF-8 for the C core (Latin-1 strings are upgraded on a
 * copy); refuses NUL characters, which libpq cannot carry.  NULL for undef. */
static const char *utf8_arg(pTHX_ SV *sv, const char *what)
{
    STRLEN len;
    const char *p;
    if (!sv)
        return NULL;
    SvGETMAGIC(sv);
    if (!SvOK(sv))
        return NULL;
    if (SvUTF8(sv)) {
        p = SvPV_nomg(sv, len);
    } else {
        SV *copy = sv_2mortal(newSVsv_nomg(sv));
        p = SvPVutf8(copy, len);
    }
    if (strlen(p) != len)
        croak("%s: %s contains a NUL character", LOG_PREFIX, what);
    return p;
}

/* A hash key with its hash computed once (shared with PL_strtab). */
static SV *shared_key(pTHX_ const char *p, STRLEN len, int utf8)
{
    return sv_2mortal(newSVpvn_share(p, utf8 ? -(I32)len : (I32)len, 0));
}

static int is_ascii(const char *p, size_t len)
{
    return is_utf8_invariant_string((const U8 *)p, len);
}

/* What a browse call reads, from its Perl arguments.  The field list (an
 * array of names, or undef for whole sessions) also gives the result's
 * keys, with the caller's spelling. */
typedef struct browse_req {
    asbp_browse_spec spec;
    const char **names;   /* SAVEFREEPV'd */
    SV **keys;            /* SAVEFREEPV'd; mortal shared keys */
} browse_req;

static void browse_req_fill(pTHX_ browse_req *r, const char *kind, SV *field,
                            SV *value, SV *fields)
{
    memset(r, 0, sizeof *r);
    if (strEQ(kind, "eq"))
        r->spec.filter = ASBP_BROWSE_EQ;
    else if (strEQ(kind, "like"))
        r->spec.filter = ASBP_BROWSE_LIKE;
    else if (strEQ(kind, "all"))
        r->spec.filter = ASBP_BROWSE_ALL;
    else
        croak("%s: unknown browse kind '%s'", LOG_PREFIX, kind);
    if (r->spec.filter != ASBP_BROWSE_ALL) {
        r->spec.field = utf8_arg(aTHX_ field, "the field name");
        if (!r->spec.field)
            croak("%s: no field name given", LOG_PREFIX);
        r->spec.value = utf8_arg(aTHX_ value, "the value");
    }
    if (fields && SvOK(fields)) {
        AV *av;
        SSize_t i, j, n;
        if (!SvROK(fields) || SvTYPE(SvRV(fields)) != SVt_PVAV)
            croak("%s: the field list must be an array reference", LOG_PREFIX);
        av = (AV *)SvRV(fields);
        n = av_len(av) + 1;
        Newxz(r->names, n ? n : 1, const char *);
        SAVEFREEPV(r->names);
        Newxz(r->keys, n ? n : 1, SV *);
        SAVEFREEPV(r->keys);
        for (i = 0; i < n; i++) {
            SV **svp = av_fetch(av, i, 0);
            STRLEN len;
            const char *p;
            if (!svp || !SvOK(*svp))
                croak("%s: field name %ld of the list is undefined", LOG_PREFIX,
                      (long)i + 1);
            r->names[i] = utf8_arg(aTHX_ *svp, "a field name");
            p = SvPV(*svp, len);
            /* "id" is the row's id in every result: a field of that name
             * is not read from the session; a name given twice is stored
             * once (keys[i] NULL: skipped) */
            r->keys[i] = strEQ(r->names[i], "id") ? NULL
                       : shared_key(aTHX_ p, len, SvUTF8(*svp) ? 1 : 0);
            for (j = 0; r->keys[i] && j < i; j++)
                if (strEQ(r->names[j], r->names[i]))
                    r->keys[i] = NULL;
        }
        r->spec.whole = 0;
        r->spec.fields = r->names;
        r->spec.nfields = (size_t)n;
    } else {
        r->spec.whole = 1;
    }
}

/* The decode method of the module's JSON::XS object (resolved once). */
static CV *json_decoder(pTHX_ SV *json)
{
    GV *gv;
    if (!json || !SvROK(json) || !SvOBJECT(SvRV(json)))
        croak("%s: no JSON decoder given", LOG_PREFIX);
    gv = gv_fetchmethod_autoload(SvSTASH(SvRV(json)), "decode", 0);
    if (!gv || !isGV(gv) || !GvCV(gv))
        croak("%s: the JSON object has no decode method", LOG_PREFIX);
    return GvCV(gv);
}

/*
 * Decodes a_session into a hash reference, within the caller's temps
 * scope.  NULL when the row is not a session (SQL NULL, JSON null, not a
 * JSON object, or a decoder error), with the reason in *why.
 */
static SV *decode_session(pTHX_ CV *decode, SV *json, SV *text, const char *p,
                          size_t len, const char **why)
{
    dSP;
    int n;
    SV *ret = NULL;
    if (!p) {
        *why = "a_session is NULL";
        return NULL;
    }
    sv_setpvn(text, p, len);
    SvUTF8_on(text);
    PUSHMARK(SP);
    EXTEND(SP, 2);
    PUSHs(json);
    PUSHs(text);
    PUTBACK;
    n = call_sv((SV *)decode, G_SCALAR | G_EVAL);
    SPAGAIN;
    if (n == 1)
        ret = POPs;
    PUTBACK;
    if (SvTRUE(ERRSV)) {
        *why = SvPV_nolen(ERRSV);
        return NULL;
    }
    if (!ret || !SvOK(ret)) {
        *why = "JSON null";
        return NULL;
    }
    if (!SvROK(ret) || SvTYPE(SvRV(ret)) != SVt_PVHV || SvOBJECT(SvRV(ret))) {
        *why = "not a JSON object";
        return NULL;
    }
    return ret;
}

/* Rows are reported by a prefix of their id (asbp_id_text): an id is a
 * bearer token. */
static void skip_session(pTHX_ const char *id, const char *why)
{
    size_t l = strlen(why);
    char shown[ASBP_ID_TEXT];
    PerlIO_printf(PerlIO_stderr(), "Error in session %s: Session could not be "
                  "unserialized (%.*s)\n", asbp_id_text(id, strlen(id), shown),
                  (int)(l && why[l - 1] == '\n' ? l - 1 : l), why);
    PerlIO_flush(PerlIO_stderr());
}

/* The id of the current row as a hash key (shared string). */
static SV *row_id_key(pTHX_ asbp_browse *b, const char **idp)
{
    size_t len;
    const char *id = asbp_browse_id(b, &len);
    *idp = id;
    return newSVpvn_share(id, is_ascii(id, len) ? (I32)len : -(I32)len, 0);
}

static SV *text_sv(pTHX_ const char *p, size_t len)
{
    if (!p)
        return newSV(0);
    return newSVpvn_flags(p, len, is_ascii(p, len) ? 0 : SVf_UTF8);
}

/*
 * Builds { id => session } (whole) or { id => { id => id, field => text } }
 * from every row.  A stream that fails after some rows is started again
 * (its partial result discarded) when the failure is a failover case, at
 * most ASBP_BROWSE_MAX_RESTARTS times; otherwise the error is raised.
 */
static SV *browse_collect(pTHX_ HV *args, browse_req *r, SV *json)
{
    asbp_source *src = source_for(aTHX_ args, NULL);
    HV *res = newHV();
    SV *res_rv = sv_2mortal(newRV_noinc((SV *)res));
    CV *decode = r->spec.whole ? json_decoder(aTHX_ json) : NULL;
    SV *text = sv_2mortal(newSV(0));
    SV *idkey = shared_key(aTHX_ "id", 2, 0);
    asbp_browse *b;
    asbp_err e;
    SV *cursor;
    size_t i, nf = r->spec.nfields;
    SV **prev;   /* each field's value in the previous row (owned by res) */

    Newxz(prev, nf ? nf : 1, SV *);
    SAVEFREEPV(prev);
    asbp_err_clear(&e);
    if (asbp_browse_open(src, &r->spec, &b, &e) != ASBP_OK)
        croak_err(aTHX_ &e);
    cursor = cursor_new(aTHX_ b);
    for (;;) {
        int row;
        const char *id;
        SV *key;
        if (asbp_browse_next(b, &row, &e) != ASBP_OK) {
            if (asbp_browse_can_restart(b, &e)) {
                hv_clear(res);
                Zero(prev, nf ? nf : 1, SV *);
                asbp_err_clear(&e);
                if (asbp_browse_restart(b, &e) == ASBP_OK)
                    continue;
            }
            cursor_dispose(aTHX_ cursor);
            croak_err(aTHX_ &e);
        }
        if (!row)
            break;
        key = row_id_key(aTHX_ b, &id);
        if (r->spec.whole) {
            const char *why = NULL;
            size_t len;
            const char *p = asbp_browse_col(b, 0, &len);
            SV *sess;
            ENTER;
            SAVETMPS;
            sess = decode_session(aTHX_ decode, json, text, p, len, &why);
            if (sess)
                (void)hv_store_ent(res, key, newRV_inc(SvRV(sess)), 0);
            else
                skip_session(aTHX_ id, why);
            FREETMPS;
            LEAVE;
            SvREFCNT_dec(key);
        } else {
            HV *h = newHV();
            /* the inner id shares its string with the outer key */
            (void)hv_store_ent(h, idkey, key, 0);
            for (i = 0; i < nf; i++) {
                size_t len;
                const char *p;
                SV *v;
                if (!r->keys[i])
                    continue;
                p = asbp_browse_col(b, i, &len);
                if (p && prev[i] && len < 256 && SvCUR(prev[i]) == len
                    && memcmp(SvPVX(prev[i]), p, len) == 0)
                    /* The same as the row before (a kind, an empty string,
                     * a common attribute): share one string buffer, as
                     * Perl does for hash keys, instead of a copy per row. */
                    v = newSVpvn_share(p, is_ascii(p, len) ? (I32)len : -(I32)len, 0);
                else
                    v = text_sv(aTHX_ p, len);
                prev[i] = p ? v : NULL;
                (void)hv_store_ent(h, r->keys[i], v, 0);
            }
            (void)hv_store_ent(res, key, newRV_noinc((SV *)h), 0);
        }
    }
    cursor_dispose(aTHX_ cursor);
    flush_log(aTHX);
    return res_rv;
}

/*
 * Calls code->(session, id) for every row, keeping defined results.  Rows
 * passed to the code cannot be taken back: a failure in the middle of the
 * stream is raised, never restarted.  As with the pure-Perl module, an
 * exception from the code (or an undecodable row) is reported on STDERR
 * as "Error in session <id prefix>...: ..." and the iteration goes on.
 */
static SV *browse_each(pTHX_ HV *args, SV *code, SV *json)
{
    asbp_source *src = source_for(aTHX_ args, NULL);
    HV *res = newHV();
    SV *res_rv = sv_2mortal(newRV_noinc((SV *)res));
    CV *decode = json_decoder(aTHX_ json);
    SV *text = sv_2mortal(newSV(0));
    asbp_browse_spec spec;
    asbp_browse *b;
    asbp_err e;
    SV *cursor;

    memset(&spec, 0, sizeof spec);
    spec.filter = ASBP_BROWSE_ALL;
    spec.whole = 1;
    asbp_err_clear(&e);
    if (asbp_browse_open(src, &spec, &b, &e) != ASBP_OK)
        croak_err(aTHX_ &e);
    cursor = cursor_new(aTHX_ b);
    flush_log(aTHX);   /* before the code runs */
    for (;;) {
        int row;
        const char *id, *why = NULL, *p;
        size_t len, idlen;
        SV *idsv, *sess;
        if (asbp_browse_next(b, &row, &e) != ASBP_OK) {
            unsigned long done = asbp_browse_count(b);
            cursor_dispose(aTHX_ cursor);
            if (done)
                asbp_err_prefix(&e, "get_key_from_all_sessions: %lu session%s had "
                                "already been passed to the code reference, so the "
                                "read was not restarted", done, done == 1 ? "" : "s");
            croak_err(aTHX_ &e);
        }
        if (!row)
            break;
        ENTER;
        SAVETMPS;
        id = asbp_browse_id(b, &idlen);
        idsv = sv_2mortal(text_sv(aTHX_ id, idlen));
        p = asbp_browse_col(b, 0, &len);
        sess = decode_session(aTHX_ decode, json, text, p, len, &why);
        if (!sess) {
            skip_session(aTHX_ id, why);
        } else {
            dSP;
            int n;
            SV *ret = NULL;
            PUSHMARK(SP);
            EXTEND(SP, 2);
            PUSHs(sess);
            PUSHs(idsv);
            PUTBACK;
            n = call_sv(code, G_SCALAR | G_EVAL);
            SPAGAIN;
            if (n == 1)
                ret = POPs;
            PUTBACK;
            if (SvTRUE(ERRSV)) {
                const char *m = SvPV_nolen(ERRSV);
                size_t l = strlen(m);
                char shown[ASBP_ID_TEXT];
                PerlIO_printf(PerlIO_stderr(), "Error in session %s: %.*s\n",
                              asbp_id_text(id, strlen(id), shown),
                              (int)(l && m[l - 1] == '\n' ? l - 1 : l), m);
                PerlIO_flush(PerlIO_stderr());
            } else if (ret && SvOK(ret)) {
                (void)hv_store_ent(res, idsv, newSVsv(ret), 0);
            }
        }
        FREETMPS;
        LEAVE;
    }
    cursor_dispose(aTHX_ cursor);
    flush_log(aTHX);
    return res_rv;
}

/* One group of a purge rule (sv: { field => value, ... } or undef), keys
 * sorted so that the SQL text does not depend on hash order. */
static size_t purge_items(pTHX_ SV *sv, const char *group, asbp_purge_item **out)
{
    HV *hv;
    HE *he;
    SV **keys;
    size_t n = 0, i;
    asbp_purge_item *it;

    *out = NULL;
    SvGETMAGIC(sv);
    if (!SvOK(sv))
        return 0;
    if (!SvROK(sv) || SvTYPE(SvRV(sv)) != SVt_PVHV)
        croak("%s: deleteIfLowerThan: '%s' must be a hash reference "
              "({ field => value, ... })", LOG_PREFIX, group);
    hv = (HV *)SvRV(sv);
    n = (size_t)HvUSEDKEYS(hv);
    if (!n)
        return 0;
    Newxz(keys, n, SV *);
    SAVEFREEPV(keys);
    Newxz(it, n, asbp_purge_item);
    SAVEFREEPV(it);
    i = 0;
    hv_iterinit(hv);
    while ((he = hv_iternext(hv)) != NULL && i < n)
        keys[i++] = sv_2mortal(newSVsv(hv_iterkeysv(he)));
    n = i;
    sortsv(keys, n, Perl_sv_cmp);
    for (i = 0; i < n; i++) {
        HE *v = hv_fetch_ent(hv, keys[i], 0, 0);
        SV *val = v ? HeVAL(v) : NULL;
        it[i].field = utf8_arg(aTHX_ keys[i], "a field name of the rule");
        it[i].value = utf8_arg(aTHX_ val, "a value of the rule");
    }
    *out = it;
    return n;
}

/* insert (update 0) and update (1): the session's serialized form under its
 * id, in the tie's transaction. */
static void store_write(pTHX_ SV *self, SV *args, SV *idsv, SV *text, int update)
{
    asbp_store *st = store_of(aTHX_ self, args);
    const char *id = id_arg(aTHX_ idsv);
    const char *data = id ? serialized_arg(aTHX_ text) : NULL;
    asbp_err e;
    asbp_code rc;
    if (!id || !data)
        return;
    asbp_err_clear(&e);
    rc = update ? asbp_store_update(st, id, data, &e)
                : asbp_store_insert(st, id, data, &e);
    if (rc != ASBP_OK)
        report_err(aTHX_ &e);
    flush_log(aTHX);
}

/* close and DESTROY: ends the transaction, COMMIT of what was written
 * (Commit option, default 1) or ROLLBACK. */
static void store_end(pTHX_ SV *self)
{
    asbp_store *st = store_of(aTHX_ self, NULL);
    asbp_err e;
    if (!st)
        return;
    asbp_err_clear(&e);
    if (asbp_store_close(st, &e) != ASBP_OK)
        report_err(aTHX_ &e);
    flush_log(aTHX);
}

/* _discover_now's "endpoints": what each endpoint did, in URL order;
 * seconds is undef for an endpoint that did not finish. */
static SV *endpoints_av(pTHX_ const asbp_endpoint_result *per, size_t n)
{
    AV *av = newAV();
    size_t i;
    for (i = 0; i < n; i++) {
        HV *h = newHV();
        (void)hv_stores(h, "endpoint", newSVpv(per[i].endpoint, 0));
        (void)hv_stores(h, "finished", newSViv(per[i].finished));
        (void)hv_stores(h, "valid", newSViv(per[i].valid));
        (void)hv_stores(h, "seconds", per[i].elapsed_us >= 0
                        ? newSVnv(per[i].elapsed_us / 1e6) : newSV(0));
        av_push(av, newRV_noinc((SV *)h));
    }
    return newRV_noinc((SV *)av);
}

MODULE = Apache::Session::Browseable::Patroni    PACKAGE = Apache::Session::Browseable::Patroni

PROTOTYPES: DISABLE

BOOT:
{
    MY_CXT_INIT;
    opt_keys_init(aTHX);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    MY_CXT.ctx = new_ctx(aTHX);
    Perl_call_atexit(aTHX_ release_ctx, NULL);
}

void
CLONE(...)
CODE:
{
    /* A new interpreter (thread) gets its own context: connections and
     * cluster states are never shared between threads. */
    MY_CXT_CLONE;
    MY_CXT.ctx = new_ctx(aTHX);
    Perl_call_atexit(aTHX_ release_ctx, NULL);
}

SV *
_random_hex(len)
    IV len
CODE:
{
    asbp_err e;
    char *buf;
    if (len < 1 || len > 4096)
        croak("%s: invalid IDLength %" IVdf ": expected 1 to 4096", LOG_PREFIX, len);
    RETVAL = newSV((STRLEN)len + 1);
    SvPOK_on(RETVAL);
    buf = SvPVX(RETVAL);
    asbp_err_clear(&e);
    if (asbp_random_hex(buf, (size_t)len, &e) != ASBP_OK) {
        SvREFCNT_dec(RETVAL);
        croak_err(aTHX_ &e);
    }
    SvCUR_set(RETVAL, (STRLEN)len);
}
OUTPUT:
    RETVAL

SV *
_id_text(id)
    SV *id
CODE:
{
    /* A session id as messages show it (asbp_id_text): a short prefix,
     * control characters and non-ASCII bytes as '?'.  Characters are
     * taken as their UTF-8 bytes; undef is "undef". */
    char shown[ASBP_ID_TEXT];
    STRLEN len;
    const char *p;
    SvGETMAGIC(id);
    if (!SvOK(id))
        XSRETURN_PV("undef");
    p = SvPV_nomg(id, len);
    RETVAL = newSVpv(asbp_id_text(p, len, shown), 0);
}
OUTPUT:
    RETVAL

IV
_test_hooks()
CODE:
    /* 1 in a test build (the two hooks below exist), 0 otherwise. */
#ifdef ASBP_TEST_HOOKS
    RETVAL = 1;
#else
    RETVAL = 0;
#endif
OUTPUT:
    RETVAL

#ifdef ASBP_TEST_HOOKS

void
_clock_offset_ms(ms)
    IV ms
CODE:
    asbp_ctx_clock(the_ctx(aTHX))->offset_ms = (int64_t)ms;

void
_inject_commit_lost(n)
    IV n
CODE:
    asbp_ctx_inject_commit_lost(the_ctx(aTHX), (int)n);

#endif

IV
_now_ms()
CODE:
    RETVAL = (IV)asbp_ctx_now(the_ctx(aTHX));
OUTPUT:
    RETVAL

IV
_pool_idle()
CODE:
    RETVAL = (IV)asbp_pool_idle_count(asbp_ctx_pool(the_ctx(aTHX)));
OUTPUT:
    RETVAL

void
_pool_conns()
PPCODE:
{
    /* [server, pid, statements prepared] of each idle pooled connection. */
    asbp_pool *pool = asbp_ctx_pool(the_ctx(aTHX));
    size_t i;
    asbp_conn *c;
    for (i = 0; (c = asbp_pool_idle_at(pool, i)) != NULL; i++) {
        AV *av = newAV();
        av_push(av, newSVpv(asbp_conn_server(c), 0));
        av_push(av, newSViv((IV)asbp_conn_pid(c)));
        av_push(av, newSVuv((UV)asbp_conn_prepare_count(c)));
        mXPUSHs(newRV_noinc((SV *)av));
    }
}

SV *
_status(args)
    SV *args
CODE:
{
    /* This process's view of a DataSource: the per-process state the
     * class method status() documents. */
    asbp_source *src = source_for(aTHX_ hash_arg(aTHX_ args, "the options"), NULL);
    asbp_ctx *ctx = the_ctx(aTHX);
    asbp_cluster *cl = asbp_source_cluster(src);
    asbp_cluster_stats stats, *st = &stats;
    int64_t now = asbp_ctx_now(ctx), age, left, at;
    const char *h;
    int port;
    HV *hv = newHV(), *cnt = newHV();
    AV *members = newAV(), *urls = newAV();
    size_t i;
    char buf[600];

    asbp_cluster_stats_get(cl, st);
    (void)hv_stores(hv, "datasource", newSVpv(asbp_source_display(src), 0));
    (void)hv_stores(hv, "table", newSVpv(asbp_source_table(src), 0));
    for (i = 0; i < asbp_source_url_count(src); i++)
        av_push(urls, newSVpv(asbp_url_mask(asbp_source_url(src, i), buf, sizeof buf), 0));
    (void)hv_stores(hv, "patroni_urls", newRV_noinc((SV *)urls));
    (void)hv_stores(hv, "cache_ttl", newSVnv(asbp_source_cache_ttl(src) / 1000.0));
    (void)hv_stores(hv, "breaker_delay", newSVnv(asbp_source_breaker_delay(src) / 1000.0));
    if (asbp_cluster_last_leader(cl, &h, &port, &at)) {
        snprintf(buf, sizeof buf, "%s:%d", h, port);
        (void)hv_stores(hv, "leader", newSVpv(buf, 0));
        age = now - at;
        (void)hv_stores(hv, "leader_age", newSVnv(age / 1000.0));
        (void)hv_stores(hv, "leader_cached",
                        newSViv(asbp_cluster_leader(cl, now, asbp_source_cache_ttl(src), NULL, NULL, NULL)));
    } else {
        (void)hv_stores(hv, "leader", newSV(0));
        (void)hv_stores(hv, "leader_age", newSV(0));
        (void)hv_stores(hv, "leader_cached", newSViv(0));
    }
    if (asbp_cluster_breaker_open(cl, now, asbp_source_breaker_delay(src), &left)) {
        (void)hv_stores(hv, "breaker_open", newSViv(1));
        (void)hv_stores(hv, "breaker_remaining", newSVnv(left / 1000.0));
    } else {
        (void)hv_stores(hv, "breaker_open", newSViv(0));
        (void)hv_stores(hv, "breaker_remaining", newSViv(0));
    }
    for (i = 0; i < asbp_cluster_member_count(cl); i++) {
        snprintf(buf, sizeof buf, "%s:%d", asbp_cluster_member_host(cl, i),
                 asbp_cluster_member_port(cl, i));
        av_push(members, newSVpv(buf, 0));
    }
    (void)hv_stores(hv, "members_last_seen", newRV_noinc((SV *)members));
    (void)hv_stores(cnt, "discoveries", newSVuv(st->discoveries));
    (void)hv_stores(cnt, "api_failures", newSVuv(st->api_failures));
    (void)hv_stores(cnt, "transitions", newSVuv(st->transitions));
    (void)hv_stores(cnt, "leader_changes", newSVuv(st->leader_changes));
    (void)hv_stores(cnt, "failovers", newSVuv(st->failovers));
    (void)hv_stores(cnt, "retries", newSVuv(st->retries));
    (void)hv_stores(cnt, "breaker_skips", newSVuv(st->breaker_skips));
    (void)hv_stores(hv, "counters", newRV_noinc((SV *)cnt));
    (void)hv_stores(hv, "pool_idle", newSVuv(asbp_pool_idle_count(asbp_ctx_pool(ctx))));
    (void)hv_stores(hv, "pid", newSViv((IV)getpid()));
    RETVAL = newRV_noinc((SV *)hv);
    flush_log(aTHX);
}
OUTPUT:
    RETVAL

SV *
_discover_now(args, detail = 0)
    SV *args
    int detail
CODE:
{
    /* detail: also what each endpoint did ("endpoints"), waiting for all
     * of them (the tool's metrics). */
    asbp_source *src = source_for(aTHX_ hash_arg(aTHX_ args, "the options"), NULL);
    asbp_discovery_result res;
    asbp_endpoint_result *per = NULL;
    asbp_err e;
    HV *hv;
    AV *members;
    static const char *const outcomes[] = { "leader", "transition", "split", "failed" };
    char buf[300];
    size_t i, nurls = asbp_source_url_count(src);
    if (detail && nurls) {
        Newxz(per, nurls, asbp_endpoint_result);
        SAVEFREEPV(per);   /* freed when the XSUB returns or croaks */
    }
    hv = newHV();
    members = newAV();
    asbp_err_clear(&e);
    if (asbp_source_discover_now(src, per, &res, &e) != ASBP_OK) {
        asbp_discovery_result_clear(&res);
        SvREFCNT_dec((SV *)hv);
        SvREFCNT_dec((SV *)members);
        croak_err(aTHX_ &e);
    }
    (void)hv_stores(hv, "outcome", newSVpv(outcomes[res.outcome <= ASBP_DISC_FAILED ? res.outcome : 3], 0));
    if (res.outcome == ASBP_DISC_LEADER) {
        snprintf(buf, sizeof buf, "%s:%d", res.leader_host, res.leader_port);
        (void)hv_stores(hv, "leader", newSVpv(buf, 0));
    }
    (void)hv_stores(hv, "endpoint", newSVpv(res.endpoint, 0));
    (void)hv_stores(hv, "elapsed_ms", newSViv((IV)res.elapsed_ms));
    (void)hv_stores(hv, "answered", newSVuv(res.answered));
    (void)hv_stores(hv, "requests", newSVuv(res.requests));
    if (e.msg[0])
        (void)hv_stores(hv, "error", newSVpv(e.msg, 0));
    for (i = 0; res.topology && i < res.topology->n; i++) {
        const asbp_member *m = &res.topology->members[i];
        HV *mh = newHV();
        (void)hv_stores(mh, "name", m->name ? newSVpv(m->name, 0) : newSV(0));
        (void)hv_stores(mh, "role", m->role ? newSVpv(m->role, 0) : newSV(0));
        (void)hv_stores(mh, "state", m->state ? newSVpv(m->state, 0) : newSV(0));
        (void)hv_stores(mh, "host", m->host ? newSVpv(m->host, 0) : newSV(0));
        (void)hv_stores(mh, "port", m->port ? newSViv(m->port) : newSV(0));
        (void)hv_stores(mh, "lag", m->lag < 0 ? newSV(0)
                        : sizeof(IV) >= sizeof m->lag ? newSViv((IV)m->lag) : newSVnv((NV)m->lag));
        av_push(members, newRV_noinc((SV *)mh));
    }
    (void)hv_stores(hv, "members", newRV_noinc((SV *)members));
    if (per)
        (void)hv_stores(hv, "endpoints", endpoints_av(aTHX_ per, nurls));
    asbp_discovery_result_clear(&res);
    RETVAL = newRV_noinc((SV *)hv);
    flush_log(aTHX);
}
OUTPUT:
    RETVAL

SV *
_schema(args, kind, dry_run, fix_unlogged)
    SV *args
    const char *kind
    int dry_run
    int fix_unlogged
CODE:
{
    asbp_source *src = source_for(aTHX_ hash_arg(aTHX_ args, "the options"), NULL);
    int k = asbp_schema_kind_of(kind);
    asbp_schema_report rep;
    asbp_err e;
    HV *hv;
    AV *items;
    size_t i;
    char pers[2] = { 0, 0 };
    if (k < 0)
        croak("%s: unknown session kind '%s' (global, persistent, saml, oidc or cas)",
              LOG_PREFIX, kind);
    asbp_err_clear(&e);
    if (asbp_schema_apply(src, (asbp_schema_kind)k, dry_run, fix_unlogged, &rep, &e) != ASBP_OK) {
        asbp_schema_report_clear(&rep);
        croak_err(aTHX_ &e);
    }
    hv = newHV();
    items = newAV();
    (void)hv_stores(hv, "table", newSVpv(asbp_source_table(src), 0));
    (void)hv_stores(hv, "table_existed", newSViv(rep.table_existed));
    pers[0] = rep.persistence;
    (void)hv_stores(hv, "persistence", newSVpv(pers, 0));
    (void)hv_stores(hv, "made_logged", newSViv(rep.made_logged));
    for (i = 0; i < rep.n; i++) {
        HV *ih = newHV();
        (void)hv_stores(ih, "what", newSVpv(rep.items[i].what, 0));
        (void)hv_stores(ih, "sql", newSVpv(rep.items[i].sql, 0));
        (void)hv_stores(ih, "existed", newSViv(rep.items[i].existed));
        (void)hv_stores(ih, "done", newSViv(rep.items[i].done));
        av_push(items, newRV_noinc((SV *)ih));
    }
    (void)hv_stores(hv, "items", newRV_noinc((SV *)items));
    asbp_schema_report_clear(&rep);
    RETVAL = newRV_noinc((SV *)hv);
    flush_log(aTHX);
}
OUTPUT:
    RETVAL

void
_check_options(args)
    SV *args
CODE:
    (void)source_for(aTHX_ hash_arg(aTHX_ args, "the options"), NULL);
    flush_log(aTHX);

SV *
_browse_collect(args, kind, field, value, fields, json)
    SV *args
    const char *kind
    SV *field
    SV *value
    SV *fields
    SV *json
CODE:
{
    /* searchOn, searchOnExpr, get_key_from_all_sessions without a code
     * reference: the whole result as a hash reference. */
    browse_req r;
    HV *a = hash_arg(aTHX_ args, "the options");
    browse_req_fill(aTHX_ &r, kind, field, value, fields);
    RETVAL = browse_collect(aTHX_ a, &r, json);
    SvREFCNT_inc_simple_void_NN(RETVAL);
}
OUTPUT:
    RETVAL

SV *
_browse_each(args, code, json)
    SV *args
    SV *code
    SV *json
CODE:
{
    HV *a = hash_arg(aTHX_ args, "the options");
    if (!SvROK(code) || SvTYPE(SvRV(code)) != SVt_PVCV)
        croak("%s: not a code reference", LOG_PREFIX);
    RETVAL = browse_each(aTHX_ a, code, json);
    SvREFCNT_inc_simple_void_NN(RETVAL);
}
OUTPUT:
    RETVAL

SV *
_browse_open(args, kind, field, value, fields)
    SV *args
    const char *kind
    SV *field
    SV *value
    SV *fields
CODE:
{
    /* An iterator over the rows (see the Cursor class below). */
    browse_req r;
    HV *a = hash_arg(aTHX_ args, "the options");
    asbp_source *src;
    asbp_browse *b;
    asbp_err e;
    browse_req_fill(aTHX_ &r, kind, field, value, fields);
    src = source_for(aTHX_ a, NULL);
    asbp_err_clear(&e);
    if (asbp_browse_open(src, &r.spec, &b, &e) != ASBP_OK)
        croak_err(aTHX_ &e);
    RETVAL = cursor_new(aTHX_ b);
    flush_log(aTHX);
    SvREFCNT_inc_simple_void_NN(RETVAL);
}
OUTPUT:
    RETVAL

void
_browse_delete(args, or_group, and_group, not_group)
    SV *args
    SV *or_group
    SV *and_group
    SV *not_group
PPCODE:
{
    /* deleteIfLowerThan, given the rule's three groups (each a hash
     * reference or undef): () for an empty rule, (rows) when done,
     * (undef, message) when the database failed; croaks on a bad group. */
    HV *a = hash_arg(aTHX_ args, "the options");
    asbp_purge_rule pr;
    asbp_source *src;
    asbp_err e;
    long long deleted = 0;

    memset(&pr, 0, sizeof pr);
    pr.n_or = purge_items(aTHX_ or_group, "or", (asbp_purge_item **)&pr.or_items);
    pr.n_and = purge_items(aTHX_ and_group, "and", (asbp_purge_item **)&pr.and_items);
    pr.n_not = purge_items(aTHX_ not_group, "not", (asbp_purge_item **)&pr.not_items);
    if (!pr.n_or && !pr.n_and)
        XSRETURN_EMPTY;
    src = source_for(aTHX_ a, NULL);
    asbp_err_clear(&e);
    if (asbp_browse_delete_lower(src, &pr, &deleted, &e) != ASBP_OK) {
        if (e.code == ASBP_E_USAGE)
            croak_err(aTHX_ &e);
        flush_log(aTHX);
        EXTEND(SP, 2);
        PUSHs(&PL_sv_undef);
        if (e.sqlstate[0])
            mPUSHs(newSVpvf("%s [SQLSTATE %s]", e.msg, e.sqlstate));
        else
            mPUSHs(newSVpv(e.msg, 0));
        XSRETURN(2);
    }
    flush_log(aTHX);
    mXPUSHs(newSViv((IV)deleted));
    XSRETURN(1);
}

MODULE = Apache::Session::Browseable::Patroni    PACKAGE = Apache::Session::Browseable::Store::Patroni

# The methods insert, update, materialize and remove are in
# lib/Apache/Session/Browseable/Store/Patroni.pm: they take from the session
# object what these need.

void
_write(self, args, id, serialized, update)
    SV *self
    SV *args
    SV *id
    SV *serialized
    int update
CODE:
    store_write(aTHX_ self, args, id, serialized, update);

SV *
_materialize(self, args, id)
    SV *self
    SV *args
    SV *id
CODE:
{
    /* The serialized session (text), or undef when id was reported. */
    asbp_store *st = store_of(aTHX_ self, args);
    const char *p = id_arg(aTHX_ id);
    const char *data;
    size_t len;
    asbp_err e;
    if (!p)
        XSRETURN_UNDEF;
    asbp_err_clear(&e);
    if (asbp_store_materialize(st, p, &data, &len, &e) != ASBP_OK)
        croak_err(aTHX_ &e);
    RETVAL = newSVpvn_utf8(data, len, 1);
    flush_log(aTHX);
}
OUTPUT:
    RETVAL

void
_remove(self, args, id)
    SV *self
    SV *args
    SV *id
CODE:
{
    asbp_store *st = store_of(aTHX_ self, args);
    const char *p = id_arg(aTHX_ id);
    asbp_err e;
    if (!p)
        XSRETURN_EMPTY;
    asbp_err_clear(&e);
    if (asbp_store_remove(st, p, &e) != ASBP_OK)
        report_err(aTHX_ &e);
    flush_log(aTHX);
}

void
_report(msg)
    const char *msg
CODE:
    /* A problem with the session object: an error, or a warning when
     * called from a destructor (see report_err). */
    report_msg(aTHX_ msg);

void
close(self, ...)
    SV *self
CODE:
    store_end(aTHX_ self);

void
DESTROY(self)
    SV *self
CODE:
    /* Same as close, as Apache::Session::Store::Postgres does; an error
     * here becomes Perl's "(in cleanup)" warning.  A copy cloned into
     * another thread has nothing to end there: it goes silently. */
    if (!store_foreign(aTHX_ self))
        store_end(aTHX_ self);

SV *
server(self)
    SV *self
CODE:
{
    asbp_store *st = store_of(aTHX_ self, NULL);
    RETVAL = st && asbp_store_in_transaction(st)
           ? newSVpv(asbp_store_server(st), 0) : &PL_sv_undef;
}
OUTPUT:
    RETVAL

MODULE = Apache::Session::Browseable::Patroni    PACKAGE = Apache::Session::Browseable::Patroni::Cursor

void
next(self)
    SV *self
PPCODE:
{
    /* (id, column, ...) of the next row, () at the end.  Columns are
     * text (undef for SQL NULL): a_session as JSON text, or the fields. */
    asbp_browse *b = cursor_of(aTHX_ self);
    asbp_err e;
    int row;
    size_t i, n, len;
    const char *p;
    asbp_err_clear(&e);
    if (asbp_browse_next(b, &row, &e) != ASBP_OK) {
        cursor_dispose(aTHX_ self);
        croak_err(aTHX_ &e);
    }
    /* before anything is pushed; if Perl code ran, the cursor may have
     * been closed meanwhile */
    if (flush_log(aTHX) && row)
        b = cursor_of(aTHX_ self);
    if (!row)
        XSRETURN_EMPTY;
    n = asbp_browse_ncols(b);
    EXTEND(SP, (SSize_t)n + 1);
    p = asbp_browse_id(b, &len);
    mPUSHs(text_sv(aTHX_ p, len));
    for (i = 0; i < n; i++) {
        p = asbp_browse_col(b, i, &len);
        mPUSHs(text_sv(aTHX_ p, len));
    }
}

IV
count(self)
    SV *self
CODE:
    RETVAL = (IV)asbp_browse_count(cursor_of(aTHX_ self));
OUTPUT:
    RETVAL

void
sql(self)
    SV *self
PPCODE:
{
    /* The SQL text sent and its parameters (for tests and EXPLAIN). */
    asbp_browse *b = cursor_of(aTHX_ self);
    size_t i, n = asbp_browse_nparams(b);
    const char *s = asbp_browse_sql(b);
    EXTEND(SP, (SSize_t)n + 1);
    mPUSHs(newSVpvn_utf8(s, strlen(s), 1));
    for (i = 0; i < n; i++) {
        const char *v = asbp_browse_param(b, i);
        mPUSHs(v ? newSVpvn_utf8(v, strlen(v), 1) : newSV(0));
    }
}

void
close(self)
    SV *self
CODE:
    cursor_dispose(aTHX_ self);

void
DESTROY(self)
    SV *self
CODE:
    cursor_dispose(aTHX_ self);
