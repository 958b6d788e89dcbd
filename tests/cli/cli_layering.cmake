# No module of src/ includes a header of a module above it (check_layering.cmake).
add_test(NAME layering COMMAND ${CMAKE_COMMAND} -DSOURCE_DIR=${PROJECT_SOURCE_DIR}
                               -P ${CMAKE_CURRENT_SOURCE_DIR}/check_layering.cmake)
set_tests_properties(layering PROPERTIES LABELS cli TIMEOUT 60)
