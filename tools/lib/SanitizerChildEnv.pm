package SanitizerChildEnv;

# Loaded by tools/sanitize into each test's perl (perl -MSanitizerChildEnv),
# whose sanitizer runtime came from LD_PRELOAD.  The programs a test runs
# (initdb, psql, df, openssl, patroni...) are not ours and must not inherit
# the runtime: LeakSanitizer would report their own exit-time leaks.  Forked
# copies of the test keep the runtime (it is in the process image).
#
# A perl the test starts through $^X (the operator tool, LL::NG's command
# line and purge script, a traced one-liner) loads the sanitized Patroni.so,
# which needs the runtime loaded first: $^X becomes tools/sanitize's wrapper
# (ASBP_SANITIZER_PERL), which preloads it and loads this module again.

delete $ENV{LD_PRELOAD};
$^X = $ENV{ASBP_SANITIZER_PERL} if $ENV{ASBP_SANITIZER_PERL};

1;
