#!/bin/sh
# tutorial_check.sh TMPDIR — what tests/test_tutorial.c runs: every ```c
# block of docs/tutorial.md is compiled against the built library and run
# (and its output compared with the ```output block after it, where there
# is one); every line of every ```sh block is run with nabla on the PATH,
# in TMPDIR, where examples/ is reachable. BUILD, NB_CC and NB_LDFLAGS come
# from `make test`.
set -eu
tmp=$1
repo=$(pwd)
build=$repo/${BUILD:-build}
cc=${NB_CC:-cc}
ldflags=${NB_LDFLAGS:-}
fail() { echo "tutorial_check: $*" >&2; exit 1; }
awk -v dir="$tmp" '
    /^```c$/      { n++; f = dir "/snippet" n ".c"; on = 1; next }
    /^```output$/ { f = dir "/snippet" n ".expected"; on = 1; next }
    /^```sh$/     { k++; f = dir "/commands" k ".sh"; on = 1; next }
    /^```/        { on = 0; next }
    on            { print > f }' docs/tutorial.md
# Run from inside `make check` the environment carries the parent make's flags
# (jobserver, print-directory), which would leak into the output read here.
libs=$(pkg-config --libs $(env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s --no-print-directory CC="$cc" BUILD="${BUILD:-build}" pkg-deps))
count=0
for src in "$tmp"/snippet*.c; do
    exe=${src%.c}
    # shellcheck disable=SC2086
    $cc -std=c11 -Wall -Wextra -Werror -Iinclude -o "$exe" "$src" "$build/libnabla.a" -fopenmp $libs -lm $ldflags \
        || fail "$src does not compile"
    "$exe" > "$exe.out" || fail "$src exited with an error"
    if [ -f "$exe.expected" ]; then
        diff -u "$exe.expected" "$exe.out" || fail "$src printed something else than the tutorial shows"
    fi
    count=$((count + 1))
done
[ "$count" -ge 3 ] || fail "only $count programs found in docs/tutorial.md"
ln -sf "$repo/examples" "$tmp/examples"
for script in "$tmp"/commands*.sh; do
    (cd "$tmp" && PATH="$build:$PATH" sh -e -x "$script" > "$script.out" 2>&1) \
        || { cat "$script.out" >&2; fail "a command of $script failed"; }
done
[ -s "$tmp/confusion.png" ] && [ -s "$tmp/curves.png" ] || fail "the LeNet-5 commands drew no pictures"
echo "tutorial_check: ok ($count programs)"
