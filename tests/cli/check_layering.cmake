# The library's modules form layers; a file may include headers of its own
# module, of modules below it, and the public headers (llmrt/...), never of
# a module above it. Data flows one way (docs/ARCHITECTURE.md, "Layers").
#
# usage: cmake -DSOURCE_DIR=<repo> -P check_layering.cmake
# Fails listing every upward or unknown include as file:line.

# Lowest first. The tokenizer needs only core; a loaded engine holds a
# backend instance, so engine sits above backends. The communicator (comm)
# moves bytes between ranks and needs only core.
set(layers core plugins comm tokenizer graph layers models import compiler backends engine runtime api server)

file(GLOB_RECURSE files RELATIVE ${SOURCE_DIR}/src
     ${SOURCE_DIR}/src/*.c ${SOURCE_DIR}/src/*.h ${SOURCE_DIR}/src/*.cu ${SOURCE_DIR}/src/*.cuh)
set(violations "")
set(checked 0)
foreach(file ${files})
  string(REGEX REPLACE "/.*" "" module ${file})
  list(FIND layers ${module} module_rank)
  if(module_rank LESS 0)
    string(APPEND violations "\n  src/${file}: module '${module}' has no place in the layer list")
    continue()
  endif()
  file(STRINGS ${SOURCE_DIR}/src/${file} lines REGEX "^[ \t]*#[ \t]*include[ \t]*\"")
  foreach(line ${lines})
    string(REGEX REPLACE "^[ \t]*#[ \t]*include[ \t]*\"([^\"]*)\".*" "\\1" header "${line}")
    math(EXPR checked "${checked} + 1")
    if(header MATCHES "^llmrt/")
      continue()
    endif()
    string(REGEX REPLACE "/.*" "" target ${header})
    list(FIND layers ${target} target_rank)
    if(target_rank LESS 0 OR NOT header MATCHES "/")
      string(APPEND violations "\n  src/${file}: \"${header}\" is not a module path (module/file.h)")
    elseif(target_rank GREATER module_rank)
      string(APPEND violations "\n  src/${file}: ${module} includes \"${header}\" from ${target}, a layer above it")
    endif()
  endforeach()
endforeach()

string(REPLACE ";" " < " order "${layers}")
if(violations)
  message(FATAL_ERROR "layering: includes against the order ${order}:${violations}")
endif()
message(STATUS "layering: ${checked} includes in src/ follow the order ${order}")
