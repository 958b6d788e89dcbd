# llmrt embed: encoder engines (BERT) against a plain-Python reference, the
# pooling choices, and every bad input and engine kind named in the error.
add_test(NAME cli_embed COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/cli_embed.sh $<TARGET_FILE:llmrt_cli>
                                ${PROJECT_SOURCE_DIR})
set_tests_properties(cli_embed PROPERTIES LABELS cli TIMEOUT 300)
