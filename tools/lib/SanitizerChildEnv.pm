package SanitizerChildEnv;

# Loaded by tools/sanitize into each test's perl (perl -MSanitizerChildEnv),
# whose sanitizer runtime came from LD_PRELOAD.  The programs a test runs
# (initdb, psql, df, openssl, patroni...) are not ours and must not inherit
# the runtime: LeakSanitizer would report their own exit-time leaks.  Forked
# copies of the test keep the runtime (it is in the process image).

delete $ENV{LD_PRELOAD};

1;
