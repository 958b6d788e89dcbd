# The 8-bit KV cache from the command line: --kv-cache builds, its bad
# input, inspect and serve naming it, the blocks a byte budget buys, and the
# demo model's validation perplexity per mode against the f32 cache (fp8
# within +1%, int8 within +2%).
add_test(NAME cli_kv_cache8 COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/cli_kv_cache8.sh $<TARGET_FILE:llmrt_cli>
                                    ${PROJECT_SOURCE_DIR})
set_tests_properties(cli_kv_cache8 PROPERTIES LABELS cli TIMEOUT 600)
