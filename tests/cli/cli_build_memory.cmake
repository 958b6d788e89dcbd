# The build's peak host memory against the engine's size (streamed weights).
add_test(NAME cli_build_memory COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/cli_build_memory.sh
                                       $<TARGET_FILE:llmrt_cli> ${PROJECT_SOURCE_DIR})
set_tests_properties(cli_build_memory PROPERTIES LABELS cli TIMEOUT 300 SKIP_RETURN_CODE 77)
