# Helpers that give every module the same shape:
#   sluice_add_library(NAME [SRCS ...] [DEPS ...] [ASIO])
#   sluice_add_test(NAME SRCS ... [DEPS ...] [ASIO])
#   sluice_add_benchmark(NAME SRCS ... [DEPS ...] [ASIO])
# ASIO marks a target whose sources include Asio: it gets the precompiled Asio header.

set(SLUICE_WARNINGS -Wall -Wextra -Wpedantic -Werror)

# Every module library is added to this list; the umbrella `sluice` target links them all.
set_property(GLOBAL PROPERTY SLUICE_MODULE_LIBS "")

function(_sluice_common target visibility)
  target_compile_options(${target} ${visibility} ${SLUICE_WARNINGS})
  target_include_directories(${target} ${visibility} ${PROJECT_SOURCE_DIR})
endfunction()

function(_sluice_asio_pch target)
  target_compile_definitions(${target} PUBLIC BOOST_ASIO_NO_DEPRECATED)
  # GCC 12 warns (-Wtsan) that TSan does not instrument atomic_thread_fence, which Asio uses;
  # the warning is about Asio's headers, not our code, and -Werror would make it fatal.
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_FLAGS MATCHES "sanitize=thread")
    target_compile_options(${target} PRIVATE -Wno-tsan)
  endif()
  if(SLUICE_USE_PCH)
    target_precompile_headers(${target} PRIVATE
      <boost/asio/awaitable.hpp> <boost/asio/co_spawn.hpp> <boost/asio/io_context.hpp>
      <boost/asio/steady_timer.hpp> <boost/asio/use_awaitable.hpp> <boost/asio/post.hpp>
      <boost/asio/strand.hpp> <boost/asio/detached.hpp> <boost/asio/experimental/channel.hpp>)
  endif()
endfunction()

function(sluice_add_library name)
  cmake_parse_arguments(ARG "ASIO" "" "SRCS;DEPS" ${ARGN})
  if(ARG_SRCS)
    add_library(${name} STATIC ${ARG_SRCS})
    _sluice_common(${name} PUBLIC)
    target_link_libraries(${name} PUBLIC ${ARG_DEPS} Threads::Threads)
    if(ARG_ASIO)
      _sluice_asio_pch(${name})
    endif()
  else()
    add_library(${name} INTERFACE)
    target_include_directories(${name} INTERFACE ${PROJECT_SOURCE_DIR})
    target_link_libraries(${name} INTERFACE ${ARG_DEPS} Threads::Threads)
  endif()
  set_property(GLOBAL APPEND PROPERTY SLUICE_MODULE_LIBS ${name})
endfunction()

function(sluice_add_test name)
  if(NOT SLUICE_BUILD_TESTS)
    return()
  endif()
  cmake_parse_arguments(ARG "ASIO" "" "SRCS;DEPS" ${ARGN})
  add_executable(${name} ${ARG_SRCS})
  _sluice_common(${name} PRIVATE)
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} GTest::gtest GTest::gmock GTest::gtest_main)
  if(ARG_ASIO)
    _sluice_asio_pch(${name})
  endif()
  # DISCOVERY_MODE PRE_TEST: listing tests at build time would run every sanitizer binary
  # once more during the build.
  gtest_discover_tests(${name} DISCOVERY_MODE PRE_TEST DISCOVERY_TIMEOUT 60
                       PROPERTIES TIMEOUT 300)
endfunction()

function(sluice_add_benchmark name)
  if(NOT SLUICE_BUILD_BENCHMARKS)
    return()
  endif()
  cmake_parse_arguments(ARG "ASIO" "" "SRCS;DEPS" ${ARGN})
  add_executable(${name} ${ARG_SRCS})
  _sluice_common(${name} PRIVATE)
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} benchmark::benchmark benchmark::benchmark_main)
  if(ARG_ASIO)
    _sluice_asio_pch(${name})
  endif()
  set_property(GLOBAL APPEND PROPERTY SLUICE_BENCHMARKS ${name})
endfunction()
