# Calibration from the command line (--calib, SmoothQuant, static fp8
# scales): bad options, progress, and the demo model's perplexity with
# w8a8 (within +3% of bf16) and fp8 static scales (within +1.5%).
add_test(NAME cli_calib COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/cli_calib.sh $<TARGET_FILE:llmrt_cli>
                                ${PROJECT_SOURCE_DIR})
set_tests_properties(cli_calib PROPERTIES LABELS cli TIMEOUT 600)
