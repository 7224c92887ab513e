// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * test_attach_fail.bpf.c - used only by Tests/BPFTests.
 *
 * One program attaches fine; the other names a tracepoint that does not exist,
 * so it loads (tracepoint programs are not checked against tracefs at load) but
 * its attach fails. The wrapper must report the failure by name and still
 * attach the good one.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} hits SEC(".maps");

SEC("tracepoint/sched/sched_process_exec")
int good_exec(void *ctx)
{
	__u32 key = 0;
	__u64 *value = bpf_map_lookup_elem(&hits, &key);

	if (value)
		__sync_fetch_and_add(value, 1);
	return 0;
}

SEC("tracepoint/patrol_bogus/no_such_event")
int bogus_tracepoint(void *ctx)
{
	return 0;
}
