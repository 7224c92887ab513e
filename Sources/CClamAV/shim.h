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

/* Scanner threads run at idle IO priority so a full scan does not slow the node's workloads. ioprio_set(2) has
 * no glibc wrapper and syscall(2) is variadic, so Swift cannot call it directly; it lives here because scanning is
 * its only user. Returns 0 or -1 with errno set. */
#include <sys/syscall.h>
#include <unistd.h>

static inline int patrol_ioprio_set_idle_current_thread(void)
{
	/* IOPRIO_WHO_PROCESS = 1 with a thread id applies to that thread; class IDLE = 3 in bits 13..15. */
	return (int)syscall(SYS_ioprio_set, 1, (int)syscall(SYS_gettid), 3 << 13);
}

/* The IO priority of the calling thread (class << 13 | level), or -1. */
static inline int patrol_ioprio_get_current_thread(void)
{
	return (int)syscall(SYS_ioprio_get, 1, (int)syscall(SYS_gettid));
}

/* The calling thread's id, for setpriority(2) on one scanner thread (glibc declares gettid only with _GNU_SOURCE). */
static inline int patrol_current_thread_id(void)
{
	return (int)syscall(SYS_gettid);
}

/* O_NOATIME keeps scans from touching every file's atime; glibc defines it only with _GNU_SOURCE. The value is
 * the kernel's (asm-generic/fcntl.h) on x86-64 and arm64. */
#include <fcntl.h>
#ifndef O_NOATIME
#define O_NOATIME 01000000
#endif
static inline int patrol_open_flag_noatime(void)
{
	return O_NOATIME;
}
