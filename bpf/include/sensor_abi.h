/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * sensor_abi.h - the one kernel/user ABI of the Patrol sensor.
 *
 * Every record written to the ring buffer starts with struct patrol_record_header,
 * followed by struct patrol_task (who did it), followed by the kind's own fields.
 * Kind numbers are explicit and never reused; sizes and offsets are pinned with
 * _Static_assert so the BPF side and the Swift decoder (Tests/KernelEventsTests
 * mirrors every assert) cannot drift silently. Records have a fixed size per kind;
 * header.size says it, and the decoder refuses a record whose size does not match.
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
typedef int32_t __s32;
typedef int64_t __s64;
#endif

#define PATROL_ABI_VERSION 2

#define PATROL_COMM_LEN 16
#define PATROL_FILENAME_LEN 256
#define PATROL_PATH_LEN 256
#define PATROL_ARGS_LEN 512
#define PATROL_ENV_LEN 256
#define PATROL_DNS_LEN 256
#define PATROL_NAME_LEN 64
#define PATROL_MOUNT_LEN 128

/* Syscall-set bitmaps cover syscall numbers 0 ..< PATROL_SYSCALL_BITS. */
#define PATROL_SYSCALL_BITS 512
#define PATROL_SYSCALL_WORDS (PATROL_SYSCALL_BITS / 64)

/* Record kinds. Explicit values: append only, never renumber. */
enum patrol_record_kind {
	PATROL_RECORD_EXEC = 1,
	PATROL_RECORD_EXIT = 2,
	PATROL_RECORD_OPEN = 3,
	PATROL_RECORD_CONNECT = 4,
	PATROL_RECORD_ACCEPT = 5,
	PATROL_RECORD_DNS = 6,
	PATROL_RECORD_CAPABILITY = 7,
	PATROL_RECORD_MODULE = 8,
	PATROL_RECORD_NAMESPACE = 9,
	PATROL_RECORD_PTRACE = 10,
	PATROL_RECORD_MEMFD = 11,
	PATROL_RECORD_LINK = 12,
	PATROL_RECORD_BPF = 13,
	/* Never in the ring buffer: the per-cgroup bitmaps of map syscall_sets. Its bit enables them. */
	PATROL_RECORD_SYSCALLS = 14,
	PATROL_RECORD_KIND_MAX = 15,	/* one past the last kind; sizes the drop counters */
};

/* Which syscall a module / namespace record came from. */
enum patrol_syscall_id {
	PATROL_SYSCALL_INIT_MODULE = 1,
	PATROL_SYSCALL_FINIT_MODULE = 2,
	PATROL_SYSCALL_UNSHARE = 3,
	PATROL_SYSCALL_SETNS = 4,
	PATROL_SYSCALL_MOUNT = 5,
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

/* The task that caused a record (48 bytes); follows the header in every record. */
struct patrol_task {
	__u64 cgroup_id;	/* bpf_get_current_cgroup_id() (cgroup v2) */
	__u64 mntns;		/* mount namespace inode */
	__u32 ppid;		/* real parent's tgid */
	__u32 uid;
	__u32 gid;
	__u32 flags;		/* reserved, 0 */
	char comm[PATROL_COMM_LEN];	/* NUL-terminated */
};

_Static_assert(sizeof(struct patrol_task) == 48, "task size");
_Static_assert(__builtin_offsetof(struct patrol_task, cgroup_id) == 0, "task.cgroup_id offset");
_Static_assert(__builtin_offsetof(struct patrol_task, mntns) == 8, "task.mntns offset");
_Static_assert(__builtin_offsetof(struct patrol_task, ppid) == 16, "task.ppid offset");
_Static_assert(__builtin_offsetof(struct patrol_task, uid) == 20, "task.uid offset");
_Static_assert(__builtin_offsetof(struct patrol_task, gid) == 24, "task.gid offset");
_Static_assert(__builtin_offsetof(struct patrol_task, flags) == 28, "task.flags offset");
_Static_assert(__builtin_offsetof(struct patrol_task, comm) == 32, "task.comm offset");

/* Value of map `config` (one entry, key 0), written by user space. */
struct patrol_config {
	__u32 enabled_kinds;	/* bit (1 << kind) set: the kind is reported */
	__u32 ignore_tgid;	/* the sensor's own tgid: never reported; 0 = none */
};

_Static_assert(sizeof(struct patrol_config) == 8, "config size");
_Static_assert(__builtin_offsetof(struct patrol_config, enabled_kinds) == 0, "config.enabled_kinds offset");
_Static_assert(__builtin_offsetof(struct patrol_config, ignore_tgid) == 4, "config.ignore_tgid offset");

/* Value of map `syscall_sets` (key: cgroup id): bit n of words[n / 64] = syscall n was seen. */
struct patrol_syscall_bitmap {
	__u64 words[PATROL_SYSCALL_WORDS];
};

_Static_assert(sizeof(struct patrol_syscall_bitmap) == 64, "syscall bitmap size");

/* PATROL_RECORD_EXEC: sched/sched_process_exec. */
struct patrol_exec_record {
	struct patrol_record_header header;
	struct patrol_task task;
	__u32 args_size;	/* bytes of args used (NUL-separated argv) */
	__u32 env_size;	/* bytes of env used (NUL-separated NAME=value, LD_* only) */
	__u8 stdio_socket;	/* fd 0 or 1 is a socket */
	__u8 args_truncated;
	__u8 env_truncated;
	__u8 pad[5];
	char filename[PATROL_PATH_LEN];	/* NUL-terminated, may be truncated */
	char args[PATROL_ARGS_LEN];
	char env[PATROL_ENV_LEN];
};

_Static_assert(sizeof(struct patrol_exec_record) == 1112, "patrol_exec_record size");
_Static_assert(__builtin_offsetof(struct patrol_exec_record, task) == 24, "patrol_exec_record.task offset");
_Static_assert(__builtin_offsetof(struct patrol_exec_record, args_size) == 72, "patrol_exec_record.args_size offset");
_Static_assert(__builtin_offsetof(struct patrol_exec_record, env_size) == 76, "patrol_exec_record.env_size offset");
_Static_assert(__builtin_offsetof(struct patrol_exec_record, stdio_socket) == 80, "patrol_exec_record.stdio_socket offset");
_Static_assert(__builtin_offsetof(struct patrol_exec_record, args_truncated) == 81, "patrol_exec_record.args_truncated offset");
_Static_assert(__builtin_offsetof(struct patrol_exec_record, env_truncated) == 82, "patrol_exec_record.env_truncated offset");
_Static_assert(__builtin_offsetof(struct patrol_exec_record, pad) == 83, "patrol_exec_record.pad offset");
_Static_assert(__builtin_offsetof(struct patrol_exec_record, filename) == 88, "patrol_exec_record.filename offset");
_Static_assert(__builtin_offsetof(struct patrol_exec_record, args) == 344, "patrol_exec_record.args offset");
_Static_assert(__builtin_offsetof(struct patrol_exec_record, env) == 856, "patrol_exec_record.env offset");

/* PATROL_RECORD_EXIT: sched/sched_process_exit (thread-group leaders only). */
struct patrol_exit_record {
	struct patrol_record_header header;
	struct patrol_task task;
	__s32 code;	/* exit status (exit_code >> 8) */
	__s32 signal;	/* terminating signal, 0 if none */
};

_Static_assert(sizeof(struct patrol_exit_record) == 80, "patrol_exit_record size");
_Static_assert(__builtin_offsetof(struct patrol_exit_record, task) == 24, "patrol_exit_record.task offset");
_Static_assert(__builtin_offsetof(struct patrol_exit_record, code) == 72, "patrol_exit_record.code offset");
_Static_assert(__builtin_offsetof(struct patrol_exit_record, signal) == 76, "patrol_exit_record.signal offset");

/* PATROL_RECORD_OPEN: sys_exit_openat/openat2, paired with sys_enter by tid. */
struct patrol_open_record {
	struct patrol_record_header header;
	struct patrol_task task;
	__u32 flags;	/* open(2) flags */
	__s32 result;	/* fd or -errno */
	__s32 dfd;
	__u32 pad;
	char path[PATROL_PATH_LEN];	/* as passed by the caller */
};

_Static_assert(sizeof(struct patrol_open_record) == 344, "patrol_open_record size");
_Static_assert(__builtin_offsetof(struct patrol_open_record, task) == 24, "patrol_open_record.task offset");
_Static_assert(__builtin_offsetof(struct patrol_open_record, flags) == 72, "patrol_open_record.flags offset");
_Static_assert(__builtin_offsetof(struct patrol_open_record, result) == 76, "patrol_open_record.result offset");
_Static_assert(__builtin_offsetof(struct patrol_open_record, dfd) == 80, "patrol_open_record.dfd offset");
_Static_assert(__builtin_offsetof(struct patrol_open_record, pad) == 84, "patrol_open_record.pad offset");
_Static_assert(__builtin_offsetof(struct patrol_open_record, path) == 88, "patrol_open_record.path offset");

/* PATROL_RECORD_CONNECT / PATROL_RECORD_ACCEPT: sys_exit_connect/accept4. */
struct patrol_net_record {
	struct patrol_record_header header;
	struct patrol_task task;
	__u16 family;	/* AF_INET or AF_INET6 */
	__u16 protocol;	/* IPPROTO_TCP / IPPROTO_UDP, 0 if unknown */
	__u16 local_port;	/* host order */
	__u16 remote_port;	/* host order */
	__s32 result;	/* 0, fd (accept) or -errno */
	__u32 pad;
	__u8 local_addr[16];	/* IPv4 in the first 4 bytes */
	__u8 remote_addr[16];
};

_Static_assert(sizeof(struct patrol_net_record) == 120, "patrol_net_record size");
_Static_assert(__builtin_offsetof(struct patrol_net_record, task) == 24, "patrol_net_record.task offset");
_Static_assert(__builtin_offsetof(struct patrol_net_record, family) == 72, "patrol_net_record.family offset");
_Static_assert(__builtin_offsetof(struct patrol_net_record, protocol) == 74, "patrol_net_record.protocol offset");
_Static_assert(__builtin_offsetof(struct patrol_net_record, local_port) == 76, "patrol_net_record.local_port offset");
_Static_assert(__builtin_offsetof(struct patrol_net_record, remote_port) == 78, "patrol_net_record.remote_port offset");
_Static_assert(__builtin_offsetof(struct patrol_net_record, result) == 80, "patrol_net_record.result offset");
_Static_assert(__builtin_offsetof(struct patrol_net_record, pad) == 84, "patrol_net_record.pad offset");
_Static_assert(__builtin_offsetof(struct patrol_net_record, local_addr) == 88, "patrol_net_record.local_addr offset");
_Static_assert(__builtin_offsetof(struct patrol_net_record, remote_addr) == 104, "patrol_net_record.remote_addr offset");

/* PATROL_RECORD_DNS: UDP sendto/sendmsg/sendmmsg/write to port 53; user space parses the query. */
struct patrol_dns_record {
	struct patrol_record_header header;
	struct patrol_task task;
	__u16 family;
	__u16 remote_port;	/* host order */
	__u32 payload_size;	/* bytes copied to payload */
	__u8 remote_addr[16];
	__u8 payload[PATROL_DNS_LEN];	/* first bytes of the datagram */
};

_Static_assert(sizeof(struct patrol_dns_record) == 352, "patrol_dns_record size");
_Static_assert(__builtin_offsetof(struct patrol_dns_record, task) == 24, "patrol_dns_record.task offset");
_Static_assert(__builtin_offsetof(struct patrol_dns_record, family) == 72, "patrol_dns_record.family offset");
_Static_assert(__builtin_offsetof(struct patrol_dns_record, remote_port) == 74, "patrol_dns_record.remote_port offset");
_Static_assert(__builtin_offsetof(struct patrol_dns_record, payload_size) == 76, "patrol_dns_record.payload_size offset");
_Static_assert(__builtin_offsetof(struct patrol_dns_record, remote_addr) == 80, "patrol_dns_record.remote_addr offset");
_Static_assert(__builtin_offsetof(struct patrol_dns_record, payload) == 96, "patrol_dns_record.payload offset");

/* PATROL_RECORD_CAPABILITY: capability/cap_capable. */
struct patrol_capability_record {
	struct patrol_record_header header;
	struct patrol_task task;
	__u32 cap;
	__u32 syscall;	/* syscall nr of the current task, or ~0 if none */
	__u8 granted;
	__u8 pad[7];
};

_Static_assert(sizeof(struct patrol_capability_record) == 88, "patrol_capability_record size");
_Static_assert(__builtin_offsetof(struct patrol_capability_record, task) == 24, "patrol_capability_record.task offset");
_Static_assert(__builtin_offsetof(struct patrol_capability_record, cap) == 72, "patrol_capability_record.cap offset");
_Static_assert(__builtin_offsetof(struct patrol_capability_record, syscall) == 76, "patrol_capability_record.syscall offset");
_Static_assert(__builtin_offsetof(struct patrol_capability_record, granted) == 80, "patrol_capability_record.granted offset");
_Static_assert(__builtin_offsetof(struct patrol_capability_record, pad) == 81, "patrol_capability_record.pad offset");

/* PATROL_RECORD_MODULE: init_module / finit_module, seen by raw_tp/sys_enter. */
struct patrol_module_record {
	struct patrol_record_header header;
	struct patrol_task task;
	__u32 syscall;	/* PATROL_SYSCALL_INIT_MODULE or PATROL_SYSCALL_FINIT_MODULE */
	__u32 pad;
	char name[PATROL_NAME_LEN];	/* finit_module: the file's name; init_module: empty */
};

_Static_assert(sizeof(struct patrol_module_record) == 144, "patrol_module_record size");
_Static_assert(__builtin_offsetof(struct patrol_module_record, task) == 24, "patrol_module_record.task offset");
_Static_assert(__builtin_offsetof(struct patrol_module_record, syscall) == 72, "patrol_module_record.syscall offset");
_Static_assert(__builtin_offsetof(struct patrol_module_record, pad) == 76, "patrol_module_record.pad offset");
_Static_assert(__builtin_offsetof(struct patrol_module_record, name) == 80, "patrol_module_record.name offset");

/* PATROL_RECORD_NAMESPACE: sys_enter_unshare / setns / mount. */
struct patrol_namespace_record {
	struct patrol_record_header header;
	struct patrol_task task;
	__u32 syscall;	/* PATROL_SYSCALL_UNSHARE, _SETNS or _MOUNT */
	__u32 pad;
	__u64 flags;	/* CLONE_NEW* for unshare/setns, mount flags for mount */
	char source[PATROL_MOUNT_LEN];	/* mount source; setns: "uts:[<inum>]", else the fd's file name */
	char target[PATROL_MOUNT_LEN];
	char fstype[PATROL_NAME_LEN];
};

_Static_assert(sizeof(struct patrol_namespace_record) == 408, "patrol_namespace_record size");
_Static_assert(__builtin_offsetof(struct patrol_namespace_record, task) == 24, "patrol_namespace_record.task offset");
_Static_assert(__builtin_offsetof(struct patrol_namespace_record, syscall) == 72, "patrol_namespace_record.syscall offset");
_Static_assert(__builtin_offsetof(struct patrol_namespace_record, pad) == 76, "patrol_namespace_record.pad offset");
_Static_assert(__builtin_offsetof(struct patrol_namespace_record, flags) == 80, "patrol_namespace_record.flags offset");
_Static_assert(__builtin_offsetof(struct patrol_namespace_record, source) == 88, "patrol_namespace_record.source offset");
_Static_assert(__builtin_offsetof(struct patrol_namespace_record, target) == 216, "patrol_namespace_record.target offset");
_Static_assert(__builtin_offsetof(struct patrol_namespace_record, fstype) == 344, "patrol_namespace_record.fstype offset");

/* PATROL_RECORD_PTRACE: sys_enter_ptrace with ATTACH, SEIZE, POKETEXT, POKEDATA, POKEUSER. */
struct patrol_ptrace_record {
	struct patrol_record_header header;
	struct patrol_task task;
	__s64 request;
	__s32 target_pid;
	__u32 pad;
};

_Static_assert(sizeof(struct patrol_ptrace_record) == 88, "patrol_ptrace_record size");
_Static_assert(__builtin_offsetof(struct patrol_ptrace_record, task) == 24, "patrol_ptrace_record.task offset");
_Static_assert(__builtin_offsetof(struct patrol_ptrace_record, request) == 72, "patrol_ptrace_record.request offset");
_Static_assert(__builtin_offsetof(struct patrol_ptrace_record, target_pid) == 80, "patrol_ptrace_record.target_pid offset");
_Static_assert(__builtin_offsetof(struct patrol_ptrace_record, pad) == 84, "patrol_ptrace_record.pad offset");

/* PATROL_RECORD_MEMFD: sys_enter_memfd_create. */
struct patrol_memfd_record {
	struct patrol_record_header header;
	struct patrol_task task;
	__u32 flags;
	__u32 pad;
	char name[PATROL_NAME_LEN];
};

_Static_assert(sizeof(struct patrol_memfd_record) == 144, "patrol_memfd_record size");
_Static_assert(__builtin_offsetof(struct patrol_memfd_record, task) == 24, "patrol_memfd_record.task offset");
_Static_assert(__builtin_offsetof(struct patrol_memfd_record, flags) == 72, "patrol_memfd_record.flags offset");
_Static_assert(__builtin_offsetof(struct patrol_memfd_record, pad) == 76, "patrol_memfd_record.pad offset");
_Static_assert(__builtin_offsetof(struct patrol_memfd_record, name) == 80, "patrol_memfd_record.name offset");

/* PATROL_RECORD_LINK: sys_enter_symlink/symlinkat/link/linkat. */
struct patrol_link_record {
	struct patrol_record_header header;
	struct patrol_task task;
	__u8 symbolic;
	__u8 pad[7];
	char target[PATROL_PATH_LEN];	/* existing path (oldname) */
	char link_path[PATROL_PATH_LEN];	/* new path (newname) */
};

_Static_assert(sizeof(struct patrol_link_record) == 592, "patrol_link_record size");
_Static_assert(__builtin_offsetof(struct patrol_link_record, task) == 24, "patrol_link_record.task offset");
_Static_assert(__builtin_offsetof(struct patrol_link_record, symbolic) == 72, "patrol_link_record.symbolic offset");
_Static_assert(__builtin_offsetof(struct patrol_link_record, pad) == 73, "patrol_link_record.pad offset");
_Static_assert(__builtin_offsetof(struct patrol_link_record, target) == 80, "patrol_link_record.target offset");
_Static_assert(__builtin_offsetof(struct patrol_link_record, link_path) == 336, "patrol_link_record.link_path offset");

/* PATROL_RECORD_BPF: sys_enter_bpf. */
struct patrol_bpf_record {
	struct patrol_record_header header;
	struct patrol_task task;
	__s32 command;
	__u32 pad;
};

_Static_assert(sizeof(struct patrol_bpf_record) == 80, "patrol_bpf_record size");
_Static_assert(__builtin_offsetof(struct patrol_bpf_record, task) == 24, "patrol_bpf_record.task offset");
_Static_assert(__builtin_offsetof(struct patrol_bpf_record, command) == 72, "patrol_bpf_record.command offset");
_Static_assert(__builtin_offsetof(struct patrol_bpf_record, pad) == 76, "patrol_bpf_record.pad offset");

#endif /* PATROL_SENSOR_ABI_H */
