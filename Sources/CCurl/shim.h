/* Layer-0 shim for CCurl: the C headers Swift imports, plus static inline helpers for macros and varargs. */
#pragma once
#include <curl/curl.h>
