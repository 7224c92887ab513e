/* Layer-0 shim for CClamAV: the C headers Swift imports, plus static inline helpers for macros and varargs. */
#pragma once
#include <clamav.h>
