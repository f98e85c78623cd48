#!/bin/bash
# Runs every test binary in BUILD/tests, each bounded in time, and prints one
# closing line "N passed, N failed" counting Criterion tests across binaries.
set -u
build=${1:-build}
per_binary_timeout=${BT_TEST_TIMEOUT:-600}
pass=0; fail=0; bad_bins=""
user_tsan_options=${TSAN_OPTIONS:-}
for t in "$build"/tests/test_*; do
    [ -x "$t" ] || continue
    name=$(basename "$t")
    out=$(mktemp)
    # ThreadSanitizer build (tests run by the tests/shim harness): a report
    # ends the test process (exit 66), so the race fails the test that hit it,
    # and any report in the output fails the binary.
    tsan=0
    if grep -qa __tsan_init "$t"; then
        tsan=1
        export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 $user_tsan_options"
    fi
    timeout -k 10 "$per_binary_timeout" "$t" --jobs 2 >"$out" 2>&1
    rc=$?
    reports=0
    [ $tsan -eq 1 ] && reports=$(grep -a -c -E "^(WARNING|==[0-9]+==ERROR): ThreadSanitizer" "$out")
    synth=$(grep -a "Synthesis:" "$out" | tail -1)
    p=$(echo "$synth" | sed -n 's/.*Passing: \([0-9]*\).*/\1/p')
    f=$(echo "$synth" | sed -n 's/.*Failing: \([0-9]*\).*/\1/p')
    c=$(echo "$synth" | sed -n 's/.*Crashing: \([0-9]*\).*/\1/p')
    p=${p:-0}; f=${f:-0}; c=${c:-0}
    if [ $rc -ne 0 ] || [ -z "$synth" ] || [ "$reports" -ne 0 ]; then
        cat "$out"
        [ "$f" -eq 0 ] && [ "$c" -eq 0 ] && f=1
        bad_bins="$bad_bins $name(rc=$rc)"
        [ "$reports" -ne 0 ] && bad_bins="$bad_bins($reports TSan reports)"
    else
        grep -a -E "^\[(----|FAIL|ERR)" "$out" | head -20
    fi
    echo "$name: $synth"
    pass=$((pass + p)); fail=$((fail + f + c))
    rm -f "$out"
done
[ -n "$bad_bins" ] && echo "failing binaries:$bad_bins"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ] && [ -z "$bad_bins" ]
