// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * test_exec.bpf.c - used only by Tests/BPFTests.
 *
 * Emits one PATROL_RECORD_EXEC per sched_process_exec, through three programs
 * (tp, raw_tp, tp_btf flavours) so the tests attach every kind of section.
 * Only the tracepoint one writes records; the others count into a map.
 * A filter map (watched_comm) lets tests check map updates from user space.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include "sensor_abi.h"

char LICENSE[] SEC("license") = "GPL";

/* The test's own record (the v1 exec layout, 312 bytes); the sensor's records are in sensor_abi.h. */
struct test_exec_record {
	struct patrol_record_header header;
	__u32 ppid;
	__u32 uid;
	__u64 cgroup_id;
	char comm[PATROL_COMM_LEN];
	char filename[PATROL_FILENAME_LEN];
};

_Static_assert(sizeof(struct test_exec_record) == 312, "test exec record size");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} events SEC(".maps");

/* Counters: key 0 = raw_tp hits, key 1 = tp_btf hits, key 2 = reserve failures. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

/* Filter map: when non-empty, only comms present here are reported. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, char[PATROL_COMM_LEN]);
	__type(value, __u8);
} watched_comm SEC(".maps");

/* Config map: key 0 value 1 enables comm filtering. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} test_config SEC(".maps");

static __always_inline void bump(__u32 key)
{
	__u64 *value = bpf_map_lookup_elem(&counters, &key);

	if (value)
		__sync_fetch_and_add(value, 1);
}

SEC("tracepoint/sched/sched_process_exec")
int handle_exec(struct trace_event_raw_sched_process_exec *ctx)
{
	struct test_exec_record *rec;
	struct task_struct *task;
	char comm[PATROL_COMM_LEN] = {};
	__u32 zero = 0, *filtering;
	__u64 id = bpf_get_current_pid_tgid();
	unsigned int offset;

	bpf_get_current_comm(comm, sizeof(comm));
	filtering = bpf_map_lookup_elem(&test_config, &zero);
	if (filtering && *filtering && !bpf_map_lookup_elem(&watched_comm, comm))
		return 0;

	rec = bpf_ringbuf_reserve(&events, sizeof(*rec), 0);
	if (!rec) {
		bump(2);
		return 0;
	}
	rec->header.kind = PATROL_RECORD_EXEC;
	rec->header.version = 1;
	rec->header.size = sizeof(*rec);
	rec->header.timestamp_ns = bpf_ktime_get_boot_ns();
	rec->header.pid = id >> 32;
	rec->header.tid = (__u32)id;
	task = (struct task_struct *)bpf_get_current_task();
	rec->ppid = BPF_CORE_READ(task, real_parent, tgid);
	rec->uid = (__u32)bpf_get_current_uid_gid();
	rec->cgroup_id = bpf_get_current_cgroup_id();
	__builtin_memcpy(rec->comm, comm, sizeof(comm));
	offset = ctx->__data_loc_filename & 0xFFFF;
	bpf_probe_read_str(rec->filename, sizeof(rec->filename), (void *)ctx + offset);
	/*
	 * Never wakes the reader, as the sensor submits most records: the test then shows that RingBufferReader
	 * reads records it was not woken for (within a poll timeout).
	 */
	bpf_ringbuf_submit(rec, BPF_RB_NO_WAKEUP);
	return 0;
}

SEC("raw_tp/sched_process_exec")
int count_exec_raw(void *ctx)
{
	bump(0);
	return 0;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(count_exec_btf, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	bump(1);
	return 0;
}
