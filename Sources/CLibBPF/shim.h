/* Layer-0 shim for CLibBPF: the C headers Swift imports, plus static inline helpers for macros and varargs. */
#pragma once
#include <stdio.h>
#include <stdarg.h>
#include <errno.h>
#include <bpf/libbpf.h>
#include <bpf/bpf.h>

/*
 * libbpf's print callback receives a va_list. Swift sees it as CVaListPointer; this formats it
 * into buf (always NUL-terminated) and returns the untruncated length like vsnprintf.
 */
static inline int patrol_libbpf_vformat(char *buf, size_t len, const char *fmt, va_list args)
{
	return vsnprintf(buf, len, fmt, args);
}

/* errno is a macro (a function call on glibc); read it right after a failing libbpf call. */
static inline int patrol_errno(void)
{
	return errno;
}

/* LIBBPF_OPTS is a macro: build the options struct with its sz field set. */
static inline struct bpf_object_open_opts patrol_bpf_object_open_opts(const char *object_name)
{
	LIBBPF_OPTS(bpf_object_open_opts, opts, .object_name = object_name);
	return opts;
}
