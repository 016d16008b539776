# cg_test (NAME SOURCE...) builds one criterion binary and registers it
# with ctest.  Integration tests find the clawgate binary through the
# CLAWGATE_BIN environment variable set here.
#
# Every test runs with HOME and the XDG base directories pointed into
# CG_TEST_HOME (set by tests/CMakeLists.txt), inside the build tree, and
# requires the home_guard fixture: its setup empties that directory and
# its cleanup fails, listing them, if any test left a file there.  A test
# that would have written into the invoking user's home (a process started
# without --state-dir falls back to ~/.clawgate) fails the run instead.
function (cg_test name)
    add_executable (${name} ${ARGN})
    target_link_libraries (${name} PRIVATE cg_testsupport ${CRITERION_LIB})
    add_test (NAME ${name} COMMAND ${name})
    set_tests_properties (${name} PROPERTIES
        ENVIRONMENT "CLAWGATE_BIN=$<TARGET_FILE:clawgate>;CLAWGATE_STANDIN=$<TARGET_FILE:cg_standin>;CLAWGATE_TG_STANDIN=$<TARGET_FILE:cg_tgstandin>;CLAWGATE_STANDIN_DIR=$<TARGET_FILE_DIR:cg_standin>;CLAWGATE_CLIENTS=${PROJECT_SOURCE_DIR}/tests/clients;HOME=${CG_TEST_HOME};XDG_CONFIG_HOME=${CG_TEST_HOME}/.config;XDG_DATA_HOME=${CG_TEST_HOME}/.local/share;XDG_STATE_HOME=${CG_TEST_HOME}/.local/state;XDG_CACHE_HOME=${CG_TEST_HOME}/.cache"
        FIXTURES_REQUIRED home_guard
        TIMEOUT 600)
endfunction ()

# cg_fuzz (NAME SOURCE...) builds one libFuzzer target (CLAWGATE_FUZZ
# builds only) against the gateway's libraries, which that build compiles
# with -fsanitize=fuzzer-no-link,address,undefined.  Its seeds are
# tests/fuzz/corpus/NAME, its dictionary tests/fuzz/NAME.dict if present;
# tests/fuzz/run.sh runs it.
function (cg_fuzz name)
    add_executable (${name} ${ARGN})
    target_link_libraries (${name} PRIVATE cg_gateway)
    target_compile_options (${name} PRIVATE -fsanitize=fuzzer)
    target_link_options (${name} PRIVATE -fsanitize=fuzzer)
endfunction ()
