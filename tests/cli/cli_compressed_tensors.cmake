# compressed-tensors FP8 checkpoints (RedHatAI / neuralmagic "-FP8" and
# "-FP8-dynamic") written by make_compressed_tensors.py from two golden
# families: the engine against --quant fp8 of the dequantized weights, and
# the quantization_config errors. Skipped without python3 + numpy.
add_test(NAME cli_compressed_tensors COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/cli_compressed_tensors.sh
                                             $<TARGET_FILE:llmrt_cli> ${PROJECT_SOURCE_DIR})
set_tests_properties(cli_compressed_tensors PROPERTIES LABELS cli TIMEOUT 300 SKIP_RETURN_CODE 77)
