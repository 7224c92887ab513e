/* Layer-0 shim for CNNG: the C headers Swift imports, plus static inline helpers for macros and varargs. */
#pragma once
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/supplemental/tls/tls.h>
#include <nng/supplemental/util/platform.h>
#include <nng/supplemental/http/http.h>
