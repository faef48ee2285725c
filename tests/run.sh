#!/bin/sh
# Run each test program, show its cmocka report, and close with one
# "N passed, N failed" line counting test cases over all programs.
# TEST_RUNNER, if set, starts each program (scripts/test-arm64.sh: qemu).
passed=0 failed=0 broken=""
for t in "$@"; do
    out=$($TEST_RUNNER "$t" 2>&1); rc=$?
    printf '%s\n' "$out"
    p=$(printf '%s\n' "$out" | sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' | tail -n 1)
    f=$(printf '%s\n' "$out" | sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' | tail -n 1)
    passed=$((passed + ${p:-0}))
    failed=$((failed + ${f:-0}))
    if [ "$rc" -ne 0 ] && [ -z "$f" ]; then failed=$((failed + 1)); broken="$broken $t"; fi
done
[ -n "$broken" ] && echo "crashed or failed outside a test case:$broken"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
