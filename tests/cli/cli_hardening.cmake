# Hostile input: special files, clobbered outputs, unbounded reads, non-finite
# weights, silently wrong answers (issue 22). Each case wants a message naming
# the culprit and a non-zero exit.
add_test(NAME cli_hardening COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/cli_hardening.sh $<TARGET_FILE:llmrt_cli>
                                    ${PROJECT_SOURCE_DIR})
set_tests_properties(cli_hardening PROPERTIES LABELS cli TIMEOUT 300)
