#!/bin/sh
# The example plugin's engine through the command line: `llmrt run --plugin`
# runs it; without --plugin the error names the plugin; inspect lists it.
# usage: plugin_cli.sh LLMRT LIB.so ENGINE
set -u
llmrt=$1 lib=$2 engine=$3
out=$("$llmrt" run --engine "$engine" --plugin "$lib" --prompt-ids 3,1,4 --max-tokens 3 --threads 1 2>&1) || {
    echo "FAIL: run with --plugin: $out"; exit 1; }
echo "run --plugin: $out"
if out=$("$llmrt" run --engine "$engine" --prompt-ids 3,1,4 --max-tokens 3 --threads 1 2>&1); then
    echo "FAIL: run without --plugin succeeded"; exit 1
fi
case $out in
*example.scaled_residual*"not loaded"*) echo "run without --plugin: $out" ;;
*) echo "FAIL: the error does not name the plugin: $out"; exit 1 ;;
esac
out=$("$llmrt" inspect "$engine" --plugin "$lib" 2>&1) || { echo "FAIL: inspect --plugin: $out"; exit 1; }
case $out in
*"plugins       example.scaled_residual v1"*) echo "inspect lists the plugin" ;;
*) echo "FAIL: inspect does not list the plugin: $out"; exit 1 ;;
esac
echo "ok"
