#!/bin/sh
# Runs each libFuzzer target of fuzz/ for a bounded time; fails (exit 1)
# when a target finds a crash, a broken property, a leak or a timeout.
#
#   fuzz/run.sh [SECONDS] [TARGET...]    (default 60 s, every target)
#
# Builds the targets first (fuzz/build.sh) when they are missing or older
# than their sources.  Each target starts from its seed corpus
# (fuzz/corpus/<target>/) and its regression cases
# (fuzz/regressions/<target>/), and grows a working corpus in
# fuzz/corpus-work/<target>/ (not versioned; kept between runs, so longer
# campaigns resume).  A crash input is written to fuzz/artifacts/<target>/:
# once the bug is fixed, move it to fuzz/regressions/<target>/ so
# t/90-fuzz-regressions.t replays it in every `make test`.
#
# Run it niced on a shared machine:  nice -n 19 fuzz/run.sh 600
set -eu
cd "$(dirname "$0")/.."

SECS=${1:-60}
[ $# -gt 0 ] && shift
TARGETS=${*:-"patroni dsn"}

stale=0
for t in $TARGETS; do
  bin=fuzz/bin/fuzz_$t
  if [ ! -x "$bin" ]; then stale=1; continue; fi
  for src in fuzz/*.c fuzz/*.h c_src/*.c c_src/*.h; do
    # -nt: not POSIX, but in dash and bash (every /bin/sh of Debian).
    # shellcheck disable=SC3013
    if [ "$src" -nt "$bin" ]; then stale=1; fi
  done
done
[ $stale = 0 ] || sh fuzz/build.sh

# Leaks are bugs too (libFuzzer's -detect_leaks, on by default with ASan);
# UBSan reports abort (built with -fno-sanitize-recover=undefined).
export ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:allocator_may_return_null=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

failed=""
for t in $TARGETS; do
  case $t in
    patroni) maxlen=1100000 ;;   # 1 MiB limit plus a margin
    *) maxlen=4096 ;;
  esac
  work=fuzz/corpus-work/$t
  art=fuzz/artifacts/$t
  mkdir -p "$work" "$art"
  seeds="fuzz/corpus/$t"
  [ -d "fuzz/regressions/$t" ] && seeds="$seeds fuzz/regressions/$t"
  log=fuzz/artifacts/$t.log
  echo "fuzz/run.sh: fuzz_$t for ${SECS}s (log $log)"
  start=$(date +%s)
  rc=0
  # shellcheck disable=SC2086
  fuzz/bin/fuzz_$t -max_total_time="$SECS" -max_len=$maxlen -timeout=10 \
    -rss_limit_mb=2048 -dict="fuzz/$t.dict" -use_value_profile=1 \
    -artifact_prefix="$art/" -print_final_stats=1 \
    "$work" $seeds >"$log" 2>&1 || rc=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
  echo "fuzz/run.sh: fuzz_$t: exit $rc after $(( $(date +%s) - start ))s, ${runs:-?} runs, ${cov:-cov: ?}, corpus $(ls "$work" | wc -l) files"
  if [ $rc != 0 ]; then
    grep -E '^(==[0-9]+==ERROR|SUMMARY|.*property broken|.*runtime error)' "$log" | head -5 || true
    ls -t "$art" | head -3 | sed "s,^,fuzz/run.sh:   crash input: $art/,"
    failed="$failed $t"
  fi
done
if [ -n "$failed" ]; then
  echo "fuzz/run.sh: FAILED:$failed"
  exit 1
fi
echo "fuzz/run.sh: no crash"
