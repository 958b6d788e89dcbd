# Weight-only quantization from the command line: --quant builds, its bad
# input, refit of a quantized engine, and the demo model's validation
# perplexity per mode against its 16-bit engine (int8-wo within +0.5%,
# int4-wo with groups of 128 within +6%).
add_test(NAME cli_quant COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/cli_quant.sh $<TARGET_FILE:llmrt_cli>
                                ${PROJECT_SOURCE_DIR})
set_tests_properties(cli_quant PROPERTIES LABELS cli TIMEOUT 600)
