#!/usr/bin/env bash
# The compiled core once more, built with AddressSanitizer and UBSan into a temporary directory
# (its line engine reads untrusted JSON): the core's differential tests and a seeded fuzz of its
# JSON Lines reader (tests/engine/test_fuzz_lines.py, STS_FUZZ_RUNS lines per job) run against
# that build.  Any sanitizer report aborts the process and fails the run.  Where it cannot run
# (no C compiler, no sanitizer runtime, no Python headers): a loud warning, and under CI=true a
# failure.  Part of `./run test` (scripts/test.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

ci=false
case "${CI:-}" in 1 | true | TRUE | True | yes) ci=true ;; esac
cannot() {
    if $ci; then
        echo "FAIL: the sanitizer run cannot run here: $*" >&2
        exit 1
    fi
    echo "WARNING: sanitizer run SKIPPED: $*" >&2
    exit 0
}

python=$(uv run --frozen --no-sync python -c 'import sys; print(sys.executable)')
include=$("$python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
suffix=$("$python" -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')
cc=${CC:-cc}
command -v "$cc" >/dev/null 2>&1 || cannot "no C compiler ($cc)"
[ -f "$include/Python.h" ] || cannot "no Python headers ($include/Python.h)"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
flags=(-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer -g -O1)
echo 'int main(void) { return 0; }' >"$tmp/probe.c"
"$cc" "${flags[@]}" -o "$tmp/probe" "$tmp/probe.c" 2>/dev/null \
    || cannot "$cc cannot build with -fsanitize=address,undefined"

# warnings are errors here: the core must stay -Wall -Wextra clean
so="$tmp/_native$suffix"
"$cc" "${flags[@]}" -shared -fPIC -Wall -Wextra -Werror -I"$include" -o "$so" src/sts/crypto/_native.c
asan=$(ldd "$so" | awk '/libasan/ { print $3 }')
[ -n "$asan" ] && [ -f "$asan" ] || cannot "no AddressSanitizer runtime linked into the build"

# Python itself is not instrumented: short allocation stacks keep its many mallocs cheap.
# AddressSanitizer writes its reports to files (a test's subprocess has no terminal): any
# report fails the run, whatever the tests said.  UBSan (which ignores log_path) stops the
# process with its report on stderr, which pytest's -s leaves on the terminal.
logs="$tmp/report"
san_env=(env LD_PRELOAD="$asan" STS_NATIVE_MODULE="$so" STS_FUZZ_RUNS="${STS_FUZZ_RUNS:-20000}"
         ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:malloc_context_size=4:log_path=$logs"
         UBSAN_OPTIONS=print_stacktrace=1 STS_NATIVE=1)
# the tests below must run this very build, not the installed one
"${san_env[@]}" "$python" -c '
import sys
from sts.crypto.native import native, where
assert native() is not None and where() == sys.argv[1], where()
' "$so"
# (the vector files through the command, and its option parsing, run in the main suite: here
# they would mostly measure Python starting under the sanitizer runtime)
status=0
"${san_env[@]}" "$python" -m pytest -q -s -p no:cacheprovider -n 2 \
    tests/engine/test_native.py tests/engine/test_line_engine.py tests/engine/test_fuzz_lines.py \
    --deselect tests/engine/test_line_engine.py::test_every_vector_file_through_the_command \
    --deselect tests/engine/test_line_engine.py::test_command_lines_without_click "$@" || status=$?
if compgen -G "$logs.*" >/dev/null; then
    echo "FAIL: sanitizer reports:" >&2
    cat "$logs".* >&2
    exit 1
fi
exit "$status"
