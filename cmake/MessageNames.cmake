#  Writes msg_names.h from schemas/messages.def: one constant per message
#  type, service, event or frame name and field name, so that code names a
#  message or a field through the declaration and a misspelling does not
#  compile.  Run at build time: cmake -DDEF=<messages.def> -DOUT=<header> -P
#
#    MT_<TYPE>      "<TYPE>"          every declared message
#    MS_<TYPE>      "<service>"       requests: the service they go to
#    MN_<TYPE>      "<wire name>"     events, WebSocket frames and methods
#    MK_<field>     "<field>"         every declared field name

file (READ "${DEF}" text)
set (out "/*  Generated from schemas/messages.def by cmake/MessageNames.cmake.\n    Do not edit: edit messages.def.  */\n#ifndef CG_MSG_NAMES_H\n#define CG_MSG_NAMES_H\n\n")

string (REGEX MATCHALL "CG_MSG \\(([A-Z0-9_]+), \"([a-z.]+)\"" msgs "${text}")
foreach (m IN LISTS msgs)
    string (REGEX REPLACE "CG_MSG \\(([A-Z0-9_]+), \"([a-z.]+)\"" "\\1;\\2" parts "${m}")
    list (GET parts 0 type)
    list (GET parts 1 service)
    string (APPEND out "#define MT_${type} \"${type}\"\n")
    if (NOT service STREQUAL "reply")
        string (APPEND out "#define MS_${type} \"${service}\"\n")
    endif ()
endforeach ()

string (REGEX MATCHALL "CG_(EVENT|FRAME|METHOD) \\(([A-Z0-9_]+), \"([a-z.]+)\"" named "${text}")
foreach (m IN LISTS named)
    string (REGEX REPLACE "CG_(EVENT|FRAME|METHOD) \\(([A-Z0-9_]+), \"([a-z.]+)\"" "\\2;\\3" parts "${m}")
    list (GET parts 0 type)
    list (GET parts 1 name)
    string (APPEND out "#define MT_${type} \"${type}\"\n#define MN_${type} \"${name}\"\n")
endforeach ()

string (REGEX MATCHALL "CG_FIELD \\(([A-Za-z0-9_]+)," fields "${text}")
set (names "")
foreach (f IN LISTS fields)
    string (REGEX REPLACE "CG_FIELD \\(([A-Za-z0-9_]+)," "\\1" name "${f}")
    list (APPEND names "${name}")
endforeach ()
list (REMOVE_DUPLICATES names)
list (SORT names)
string (APPEND out "\n")
foreach (name IN LISTS names)
    string (APPEND out "#define MK_${name} \"${name}\"\n")
endforeach ()
string (APPEND out "\n#endif\n")

#  Only touch the header when it changes, so dependants do not rebuild.
if (EXISTS "${OUT}")
    file (READ "${OUT}" old)
    if (old STREQUAL out)
        return ()
    endif ()
endif ()
file (WRITE "${OUT}" "${out}")
