# cmake -DDIR=<path> [-DALLOW=<regex>;...] -P CheckEmptyDir.cmake
# Fails, listing what is there, unless DIR exists and holds nothing but
# paths (relative to DIR) matching one of the ALLOW regular expressions.
# The home_guard fixture's cleanup (tests/CMakeLists.txt): the tests' HOME
# must still be empty after the suite.
if (NOT IS_DIRECTORY "${DIR}")
    message (FATAL_ERROR "home guard: ${DIR} is gone")
endif ()
file (GLOB_RECURSE found LIST_DIRECTORIES true RELATIVE "${DIR}" "${DIR}/*")
list (SORT found)
set (bad "")
set (allowed "")
foreach (path ${found})
    set (ok FALSE)
    foreach (re ${ALLOW})
        if (path MATCHES "${re}")
            set (ok TRUE)
        endif ()
    endforeach ()
    if (ok)
        list (APPEND allowed "${path}")
    else ()
        list (APPEND bad "${path}")
    endif ()
endforeach ()
if (allowed)
    list (LENGTH allowed n)
    message (STATUS "home guard: ${n} known path(s) tolerated (see ALLOW in "
             "tests/CMakeLists.txt)")
endif ()
if (bad)
    string (REPLACE ";" "\n  " shown "${bad}")
    message (FATAL_ERROR "home guard: the suite wrote into its HOME (${DIR}); "
             "a test or a process it started would have written these into "
             "the invoking user's home:\n  ${shown}")
endif ()
message (STATUS "home guard: ${DIR} holds nothing unexpected")
