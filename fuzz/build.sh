#!/bin/sh
# Builds the libFuzzer targets of fuzz/ with clang into fuzz/bin/:
#   fuzz/bin/fuzz_patroni   asbp_patroni_parse + asbp_topology_leader
#   fuzz/bin/fuzz_dsn       asbp_dsn_parse/_mask, asbp_table_quote,
#                           asbp_url_mask
# Every c_src/*.c is compiled here directly (not through Makefile.PL),
# instrumented for libFuzzer's coverage and with AddressSanitizer and
# UndefinedBehaviorSanitizer (UB aborts: -fno-sanitize-recover).
#
# Needs clang and libFuzzer (Debian: clang libclang-rt-14-dev), and the
# -dev packages of libpq, libcurl and yajl.  CC overrides the compiler.
# Run from anywhere; prints what it builds.
set -eu
cd "$(dirname "$0")/.."

CC=${CC:-clang}
if ! command -v "$CC" >/dev/null 2>&1; then
  for c in clang-16 clang-15 clang-14; do
    if command -v "$c" >/dev/null 2>&1; then CC=$c; break; fi
  done
fi
command -v "$CC" >/dev/null 2>&1 || {
  echo "fuzz/build.sh: clang not found (Debian: apt-get install clang libclang-rt-14-dev)" >&2
  exit 1
}
LIBCFLAGS=$(pkg-config --cflags libpq libcurl yajl)
LIBS=$(pkg-config --libs libpq libcurl yajl)
SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined"
CFLAGS="-g -O1 -fno-omit-frame-pointer -Wall -Wextra -Wno-unused-parameter $SAN"

OUT=fuzz/bin
mkdir -p "$OUT/obj"
for src in c_src/*.c; do
  obj="$OUT/obj/$(basename "$src" .c).o"
  $CC $CFLAGS -fsanitize=fuzzer-no-link $LIBCFLAGS -Ic_src -c "$src" -o "$obj"
done
for t in fuzz_patroni fuzz_dsn; do
  echo "fuzz/build.sh: $OUT/$t ($CC)"
  $CC $CFLAGS -fsanitize=fuzzer $LIBCFLAGS -Ic_src -Ifuzz -o "$OUT/$t" \
    "fuzz/$t.c" "$OUT"/obj/*.o $LIBS
done
