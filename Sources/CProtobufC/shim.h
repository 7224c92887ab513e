/* Layer-0 shim for CProtobufC: the C headers Swift imports, plus static inline helpers for macros and varargs. */
#pragma once
#include <protobuf-c/protobuf-c.h>
