#!/bin/sh
# install_check.sh TMPDIR — what tests/test_install.c runs: `make install`
# staged in a DESTDIR lays out every file (shared library under its soname
# and version, symlinks, header, tool, nabla.pc, man page) and `make
# uninstall` removes them all; then a real PREFIX install, against which
# examples/installed.c is built with pkg-config dynamically and statically,
# and both run. BUILD, NB_CC and NB_LDFLAGS come from `make test`.
set -eu
tmp=$1
build=${BUILD:-build}
cc=${NB_CC:-cc}
ldflags=${NB_LDFLAGS:-}
mk() { make -s --no-print-directory BUILD="$build" CC="$cc" "$@"; }
fail() { echo "install_check: $*" >&2; exit 1; }
version=$(sed -n 's/^#define NB_VERSION "\(.*\)"/\1/p' include/nabla.h)

# ---- staged: every file where it belongs, then gone again
stage=$tmp/stage
mk install PREFIX=/opt/nabla DESTDIR="$stage"
p=$stage/opt/nabla
for f in bin/nabla lib/libnabla.a lib/libnabla.so.$version lib/libnabla.so.0 lib/libnabla.so \
         include/nabla.h lib/pkgconfig/nabla.pc share/man/man1/nabla.1; do
    [ -e "$p/$f" ] || fail "make install did not install $f"
done
[ "$(readlink "$p/lib/libnabla.so.0")" = "libnabla.so.$version" ] || fail "libnabla.so.0 does not point to libnabla.so.$version"
[ "$(readlink "$p/lib/libnabla.so")" = "libnabla.so.0" ] || fail "libnabla.so does not point to libnabla.so.0"
readelf -d "$p/lib/libnabla.so.$version" | grep -q 'SONAME.*\[libnabla\.so\.0\]' || fail "the shared library's soname is not libnabla.so.0"
grep -q '^prefix=/opt/nabla$' "$p/lib/pkgconfig/nabla.pc" || fail "nabla.pc does not name PREFIX /opt/nabla"
grep -q "^\.TH NABLA 1 .*\"nabla $version\"" "$p/share/man/man1/nabla.1" || fail "the man page does not carry version $version"
mk uninstall PREFIX=/opt/nabla DESTDIR="$stage"
left=$(find "$stage" ! -type d)
[ -z "$left" ] || fail "make uninstall left: $left"

# ---- a real prefix, used through pkg-config
prefix=$tmp/prefix
mk install PREFIX="$prefix"
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
[ "$(pkg-config --modversion nabla)" = "$version" ] || fail "pkg-config --modversion nabla is not $version"
for dep in zlib libpng libcjson; do
    pkg-config --print-requires-private nabla | grep -qx "$dep" || fail "nabla.pc's Requires.private lacks $dep"
done
"$prefix/bin/nabla" --version | grep -qx "nabla $version" || fail "the installed nabla does not print its version"

# Dynamic: needs libnabla.so.0 and finds it on LD_LIBRARY_PATH.
# shellcheck disable=SC2046,SC2086
$cc -o "$tmp/installed_shared" examples/installed.c $(pkg-config --cflags --libs nabla) $ldflags
readelf -d "$tmp/installed_shared" | grep -q 'NEEDED.*\[libnabla\.so\.0\]' || fail "the dynamic build does not need libnabla.so.0"
out=$(LD_LIBRARY_PATH="$prefix/lib" "$tmp/installed_shared")
[ "$out" = "nabla $version: d(x^3)/dx at 2 = 12" ] || fail "dynamic build printed: $out"

# Static: libnabla.a linked in, the system libraries from Libs.private and
# Requires.private; it runs with the shared library out of reach.
# shellcheck disable=SC2046,SC2086
$cc -o "$tmp/installed_static" examples/installed.c \
    $(pkg-config --cflags --libs --static nabla | sed 's/-lnabla/-l:libnabla.a/') $ldflags
if readelf -d "$tmp/installed_static" | grep -q 'NEEDED.*libnabla'; then fail "the static build needs libnabla.so"; fi
out=$(LD_LIBRARY_PATH=/nonexistent "$tmp/installed_static")
[ "$out" = "nabla $version: d(x^3)/dx at 2 = 12" ] || fail "static build printed: $out"

mk uninstall PREFIX="$prefix"
left=$(find "$prefix" ! -type d)
[ -z "$left" ] || fail "make uninstall left: $left"
echo "install_check: ok"
