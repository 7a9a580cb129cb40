# Finds onnxruntime's C/C++ headers, in this order:
#   1. ONNXRUNTIME_INCLUDE_DIR (CMake variable or environment variable), used as given;
#   2. the system include directories (e.g. Debian's libonnxruntime-dev);
#   3. a cached download of Debian trixie's libonnxruntime-dev (fetched by fetch_ort_headers.sh on first use).
# Stops with a message saying how to provide them when none works.
set(_ort_header onnxruntime_cxx_api.h)
if(NOT ONNXRUNTIME_INCLUDE_DIR AND DEFINED ENV{ONNXRUNTIME_INCLUDE_DIR})
  set(ONNXRUNTIME_INCLUDE_DIR "$ENV{ONNXRUNTIME_INCLUDE_DIR}")
endif()

if(ONNXRUNTIME_INCLUDE_DIR)
  if(NOT EXISTS "${ONNXRUNTIME_INCLUDE_DIR}/${_ort_header}")
    message(FATAL_ERROR "ONNXRUNTIME_INCLUDE_DIR=${ONNXRUNTIME_INCLUDE_DIR} has no ${_ort_header}")
  endif()
  set(ORT_INCLUDE_DIR "${ONNXRUNTIME_INCLUDE_DIR}")
else()
  find_path(ORT_SYSTEM_INCLUDE_DIR ${_ort_header} PATH_SUFFIXES onnxruntime onnxruntime/core/session)
  if(ORT_SYSTEM_INCLUDE_DIR)
    set(ORT_INCLUDE_DIR "${ORT_SYSTEM_INCLUDE_DIR}")
  else()
    if(DEFINED ENV{BNN2ONNX_CACHE_DIR})
      set(_cache "$ENV{BNN2ONNX_CACHE_DIR}")
    elseif(DEFINED ENV{XDG_CACHE_HOME})
      set(_cache "$ENV{XDG_CACHE_HOME}/bnn2onnx")
    else()
      set(_cache "$ENV{HOME}/.cache/bnn2onnx")
    endif()
    set(ORT_INCLUDE_DIR "${_cache}/onnxruntime-headers")
    if(NOT EXISTS "${ORT_INCLUDE_DIR}/${_ort_header}")
      message(STATUS "onnxruntime headers not found; fetching Debian's libonnxruntime-dev into ${ORT_INCLUDE_DIR}")
      execute_process(
        COMMAND bash "${CMAKE_CURRENT_LIST_DIR}/fetch_ort_headers.sh" "${ORT_INCLUDE_DIR}"
        RESULT_VARIABLE _fetch_result)
      if(NOT _fetch_result EQUAL 0 OR NOT EXISTS "${ORT_INCLUDE_DIR}/${_ort_header}")
        message(FATAL_ERROR
          "Could not obtain onnxruntime headers (>= 1.21). Install Debian/Ubuntu's libonnxruntime-dev, or unpack "
          "onnxruntime's release headers and set ONNXRUNTIME_INCLUDE_DIR to the directory holding ${_ort_header}.")
      endif()
    endif()
  endif()
endif()

file(STRINGS "${ORT_INCLUDE_DIR}/onnxruntime_c_api.h" _ort_api_line REGEX "^#define ORT_API_VERSION [0-9]+")
string(REGEX REPLACE "^#define ORT_API_VERSION ([0-9]+).*" "\\1" ORT_HEADER_API_VERSION "${_ort_api_line}")
if(NOT ORT_HEADER_API_VERSION OR ORT_HEADER_API_VERSION LESS 21)
  message(FATAL_ERROR "onnxruntime headers in ${ORT_INCLUDE_DIR} have API version '${ORT_HEADER_API_VERSION}'; "
                      "bnn2onnx needs >= 21 (onnxruntime 1.21)")
endif()
message(STATUS "onnxruntime headers: ${ORT_INCLUDE_DIR} (API ${ORT_HEADER_API_VERSION})")
