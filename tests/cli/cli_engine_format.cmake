# Engine format versions (issue 28): the engines kept in tests/cli/data, one
# per format version this llmrt has written, still load and answer as a
# fresh build does; other versions are refused saying why.
add_test(NAME cli_engine_format COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/cli_engine_format.sh
                                        $<TARGET_FILE:llmrt_cli> ${PROJECT_SOURCE_DIR})
set_tests_properties(cli_engine_format PROPERTIES LABELS cli TIMEOUT 300)
