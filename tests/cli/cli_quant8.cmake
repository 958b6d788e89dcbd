# 8-bit weights and activations from the command line (--quant fp8|w8a8):
# bad input, every mode builds and runs, corrupted weights, refit, and the
# demo model's perplexity per mode against its 16-bit engine (fp8 within
# +1.5%, w8a8 within +3%).
add_test(NAME cli_quant8 COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/cli_quant8.sh $<TARGET_FILE:llmrt_cli>
                                 ${PROJECT_SOURCE_DIR})
set_tests_properties(cli_quant8 PROPERTIES LABELS cli TIMEOUT 600)
