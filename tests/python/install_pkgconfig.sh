#!/usr/bin/env bash
# cmake --install into a fresh PREFIX, then a C program built with
# `pkg-config --cflags --libs llmrt` runs against the installed libllmrt.so,
# which exports only llmrt_* symbols.
# Usage: install_pkgconfig.sh BUILD_DIR WORK_DIR
set -euo pipefail
build=$1 work=$2
rm -rf "$work" && mkdir -p "$work"
cmake --install "$build" --prefix "$work/prefix" >/dev/null
export PKG_CONFIG_PATH="$work/prefix/lib/pkgconfig"
cat > "$work/hello.c" <<'C'
#include <stdio.h>
#include <string.h>
#include <llmrt/llmrt.h>
int main(void) {
    llmrt_engine *engine = NULL;
    if (llmrt_engine_load("/nonexistent.engine", NULL, &engine) == LLMRT_OK) return 1;
    printf("llmrt %s: %s\n", llmrt_version(), llmrt_last_error());
    return strcmp(llmrt_version(), LLMRT_VERSION_STRING) != 0;
}
C
cc -Wall -Wextra -o "$work/hello" "$work/hello.c" $(pkg-config --cflags --libs llmrt)
LD_LIBRARY_PATH="$work/prefix/lib" "$work/hello"
# ldd's output read whole: `ldd | grep -q` can kill ldd with SIGPIPE, which
# pipefail turns into a failure whenever grep finds the line early.
libs=$(LD_LIBRARY_PATH="$work/prefix/lib" ldd "$work/hello")
grep -q "=> $work/prefix/lib/libllmrt.so" <<<"$libs" || { echo "hello did not link the installed libllmrt.so" >&2; exit 1; }
[ -x "$work/prefix/bin/llmrt" ] && [ -f "$work/prefix/lib/libllmrt.a" ] && [ -f "$work/prefix/include/llmrt/runtime.h" ]
others=$(nm -D --defined-only "$work/prefix/lib/libllmrt.so" | awk '{print $3}' | grep -v '^llmrt_' || true)
[ -z "$others" ] || { echo "libllmrt.so exports non-llmrt symbols: $others" >&2; exit 1; }
echo "install_pkgconfig: ok"
