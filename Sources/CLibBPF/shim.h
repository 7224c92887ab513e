/* Layer-0 shim for CLibBPF: the C headers Swift imports, plus static inline helpers for macros and varargs. */
#pragma once
#include <bpf/libbpf.h>
#include <bpf/bpf.h>
