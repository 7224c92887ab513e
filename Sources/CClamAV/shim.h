/* Layer-0 shim for CClamAV: the C headers Swift imports, plus static inline helpers for macros and varargs. */
#pragma once
#include <string.h>
#include <clamav.h>

/* CL_DB_STDOPT is a macro of macros. */
static inline unsigned int patrol_cl_db_stdopt(void)
{
	return CL_DB_STDOPT;
}

static inline unsigned int patrol_cl_init_default(void)
{
	return CL_INIT_DEFAULT;
}

/* Scan options: general flags as given (heuristics optional), every parser enabled. */
static inline struct cl_scan_options patrol_cl_scan_options(int heuristics)
{
	struct cl_scan_options options;

	memset(&options, 0, sizeof(options));
	options.general = heuristics ? CL_SCAN_GENERAL_HEURISTICS : 0;
	options.parse = ~0u;
	return options;
}
