# cg_test (NAME SOURCE...) builds one criterion binary and registers it
# with ctest.  Integration tests find the clawgate binary through the
# CLAWGATE_BIN environment variable set here.
function (cg_test name)
    add_executable (${name} ${ARGN})
    target_link_libraries (${name} PRIVATE cg_testsupport ${CRITERION_LIB})
    add_test (NAME ${name} COMMAND ${name})
    set_tests_properties (${name} PROPERTIES
        ENVIRONMENT "CLAWGATE_BIN=$<TARGET_FILE:clawgate>;CLAWGATE_STANDIN=$<TARGET_FILE:cg_standin>;CLAWGATE_CLIENTS=${PROJECT_SOURCE_DIR}/tests/clients"
        TIMEOUT 600)
endfunction ()
