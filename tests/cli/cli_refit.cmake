# llmrt refit (issue 28): a random-weight engine refit from a checkpoint
# equals a fresh build of it; every bad checkpoint is an error naming the
# tensor and leaves the engine byte for byte as it was.
add_test(NAME cli_refit COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/cli_refit.sh $<TARGET_FILE:llmrt_cli>
                                ${PROJECT_SOURCE_DIR})
set_tests_properties(cli_refit PROPERTIES LABELS cli TIMEOUT 300)
