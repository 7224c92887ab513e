/* Layer-0 shim for CSQLite: the C headers Swift imports, plus static inline helpers for macros and varargs. */
#pragma once
#include <sqlite3.h>
