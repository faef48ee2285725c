#!/bin/sh
# readme_check.sh TMPDIR — what tests/test_readme.c runs: README.md as a
# user follows it.
#
# 1. Every ```sh block is run, line by line (sh -e, in document order, in
#    TMPDIR, so a later block sees the files an earlier one wrote), exactly
#    as written: build/, examples/ and scripts/ are reachable there as in a
#    checkout. ```console blocks (long training recipes, installs, the
#    benchmarks, what needs sudo or other data) and ```text blocks (output,
#    file formats) are shown, not run; the text beside each console block
#    says where its figures come from. A console block whose files later
#    commands need is marked, on the line before it, with
#        <!-- readme_check: --steps N -->
#    (invisible on the rendered page), and is run with each `nabla train`'s
#    --epochs replaced by those options: the same command, a few steps long.
# 2. The command-line reference lists every option `nabla CMD --help`
#    prints, in that command's section (### `nabla CMD`), and the tool's own
#    options (nabla --help) in the reference.
# BUILD comes from `make test`.
set -eu
tmp=$1
repo=$(pwd)
build=$repo/${BUILD:-build}
fail() { echo "readme_check: $*" >&2; exit 1; }

# ---- 1. the runnable blocks ----
awk -v dir="$tmp" '
    /^<!-- readme_check: .* -->$/ { quick = $0; sub(/^<!-- readme_check: /, "", quick); sub(/ -->$/, "", quick); next }
    /^```sh$/ || (/^```console$/ && quick != "") {
              k++; f = sprintf("%s/block%02d.sh", dir, k); on = 1; opts = quick; quick = ""; next }
    /^```/    { on = 0; quick = ""; next }
    on && opts != "" && /\.\/build\/nabla train / { gsub(/ --epochs [0-9]+/, ""); $0 = $0 " " opts }
    on        { print > f }' README.md
ls "$tmp"/block*.sh > /dev/null 2>&1 || fail "no \`\`\`sh blocks in README.md"
ln -sfn "$build" "$tmp/build"
ln -sfn "$repo/examples" "$tmp/examples"
ln -sfn "$repo/scripts" "$tmp/scripts"
blocks=0
for script in "$tmp"/block*.sh; do
    (cd "$tmp" && sh -e -x "$script" > "$script.out" 2>&1) \
        || { tail -n 40 "$script.out" >&2; fail "a command of README.md's ${script##*/} failed:
$(cat "$script")"; }
    blocks=$((blocks + 1))
done
[ -s "$tmp/curves.png" ] && [ -s "$tmp/confusion.png" ] && [ -s "$tmp/errors.png" ] \
    || fail "the Pictures commands drew no pictures"

# ---- 2. the command-line reference ----
reference=$tmp/reference.md
sed -n '/^## Command-line reference/,/^## Building/p' README.md > "$reference"
[ -s "$reference" ] || fail "README.md has no '## Command-line reference' section"
options() { grep -o -- '--[a-z][a-z0-9-]*' | sort -u; }
missing=""
for opt in $("$build/nabla" --help | options); do
    grep -Eq -- "$opt([^a-z0-9-]|$)" "$reference" || missing="$missing nabla $opt;"
done
commands=$("$build/nabla" --help | awk '/^commands:/ { on = 1; next } on && NF == 0 { exit } on { print $1 }')
[ -n "$commands" ] || fail "nabla --help lists no commands"
for cmd in $commands; do
    # This command's section: from its heading to the next one.
    section=$(awk -v h="### \`nabla $cmd\`" '$0 == h { on = 1; next } on && /^#/ { exit } on' "$reference")
    [ -n "$section" ] || { missing="$missing the section ### \`nabla $cmd\`;"; continue; }
    for opt in $("$build/nabla" "$cmd" --help | options); do
        printf '%s\n' "$section" | grep -Eq -- "$opt([^a-z0-9-]|$)" || missing="$missing nabla $cmd $opt;"
    done
done
[ -z "$missing" ] || fail "README.md's command-line reference lacks:$missing"
echo "readme_check: ok ($blocks blocks run; the reference has every option of: $(echo $commands))"
