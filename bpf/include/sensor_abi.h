/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * sensor_abi.h - the one kernel/user ABI of the Patrol sensor.
 *
 * Every record written to a ring buffer starts with struct patrol_record_header.
 * Kind numbers are explicit and never reused; sizes and offsets are pinned with
 * _Static_assert so the BPF side and the Swift decoder cannot drift silently.
 *
 * Included both from BPF programs (after vmlinux.h) and from user space (CSensorABI),
 * so it uses only fixed-width types declared below.
 */
#ifndef PATROL_SENSOR_ABI_H
#define PATROL_SENSOR_ABI_H

#ifndef __VMLINUX_H__
#include <stdint.h>
typedef uint8_t __u8;
typedef uint16_t __u16;
typedef uint32_t __u32;
typedef uint64_t __u64;
#endif

#define PATROL_ABI_VERSION 1

#define PATROL_COMM_LEN 16
#define PATROL_FILENAME_LEN 256

/* Record kinds. Explicit values: append only, never renumber. */
enum patrol_record_kind {
	PATROL_RECORD_EXEC = 1,
};

/* Common header of every record (24 bytes). */
struct patrol_record_header {
	__u16 kind;		/* enum patrol_record_kind */
	__u16 version;		/* PATROL_ABI_VERSION */
	__u32 size;		/* total record size in bytes, header included */
	__u64 timestamp_ns;	/* bpf_ktime_get_boot_ns() */
	__u32 pid;		/* tgid */
	__u32 tid;		/* pid (thread id) */
};

_Static_assert(sizeof(struct patrol_record_header) == 24, "header size");
_Static_assert(__builtin_offsetof(struct patrol_record_header, kind) == 0, "kind offset");
_Static_assert(__builtin_offsetof(struct patrol_record_header, version) == 2, "version offset");
_Static_assert(__builtin_offsetof(struct patrol_record_header, size) == 4, "size offset");
_Static_assert(__builtin_offsetof(struct patrol_record_header, timestamp_ns) == 8, "timestamp offset");
_Static_assert(__builtin_offsetof(struct patrol_record_header, pid) == 16, "pid offset");
_Static_assert(__builtin_offsetof(struct patrol_record_header, tid) == 20, "tid offset");

/* PATROL_RECORD_EXEC: sched/sched_process_exec. */
struct patrol_exec_record {
	struct patrol_record_header header;
	__u32 ppid;
	__u32 uid;
	__u64 cgroup_id;
	char comm[PATROL_COMM_LEN];		/* NUL-terminated */
	char filename[PATROL_FILENAME_LEN];	/* NUL-terminated, may be truncated */
};

_Static_assert(sizeof(struct patrol_exec_record) == 312, "exec record size");
_Static_assert(__builtin_offsetof(struct patrol_exec_record, ppid) == 24, "ppid offset");
_Static_assert(__builtin_offsetof(struct patrol_exec_record, uid) == 28, "uid offset");
_Static_assert(__builtin_offsetof(struct patrol_exec_record, cgroup_id) == 32, "cgroup_id offset");
_Static_assert(__builtin_offsetof(struct patrol_exec_record, comm) == 40, "comm offset");
_Static_assert(__builtin_offsetof(struct patrol_exec_record, filename) == 56, "filename offset");

#endif /* PATROL_SENSOR_ABI_H */
