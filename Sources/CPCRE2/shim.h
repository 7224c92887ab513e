/* Layer-0 shim for CPCRE2: 8-bit code units. */
#pragma once
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
