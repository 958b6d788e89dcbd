# One engine on either backend: built for cuda, run with --backend cpu (the
# same tokens and logits as a cpu build), inspect, the load log and bad
# --backend values; and on a GPU, built for cpu and run with --backend cuda
# (skipped, 77, without one).
add_test(NAME cli_retarget COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/cli_retarget.sh $<TARGET_FILE:llmrt_cli>
                                   ${PROJECT_SOURCE_DIR})
set_tests_properties(cli_retarget PROPERTIES LABELS cli TIMEOUT 600)
if(LLMRT_HAVE_CUDA)
  add_test(NAME cli_retarget_cuda COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/cli_retarget.sh $<TARGET_FILE:llmrt_cli>
                                          ${PROJECT_SOURCE_DIR} cuda)
  set_tests_properties(cli_retarget_cuda PROPERTIES LABELS "cli;gpu" TIMEOUT 600 SKIP_RETURN_CODE 77)
endif()
