// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * sensor.bpf.c - the Patrol sensor's eBPF programs (CO-RE, tracepoints only).
 *
 * Every program emits fixed-size records of include/sensor_abi.h into one ring
 * buffer, `events`. Work per event is kept small: a config lookup, an ignore
 * lookup, one reservation and a few reads. Syscalls whose arguments are only
 * meaningful with their result (openat, connect, accept) stash their arguments
 * in a per-thread map on sys_enter and emit on sys_exit.
 *
 * raw_tp/sys_enter also reports init_module/finit_module and DNS queries
 * written with write() to a connected UDP socket (no tracepoint of their own
 * is attached for them; see NR_INIT_MODULE).
 *
 * Filtering: `sensor_config` (enabled kinds, the sensor's own tgid) and
 * `ignored_cgroups`. Syscall sets are never sent per syscall: raw_tp/sys_enter
 * sets a bit in the per-cgroup bitmap `syscall_sets`, which user space reads
 * and clears once per window. Reservation failures are counted per kind in the
 * per-CPU array `drops`.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>
#include "sensor_abi.h"

char LICENSE[] SEC("license") = "GPL";

#define AF_INET 2
#define AF_INET6 10
#define S_IFMT 00170000
#define S_IFSOCK 0140000
#define IPPROTO_UDP 17
#define PF_KTHREAD 0x00200000
#define NSFS_MAGIC 0x6e736673
#define DNS_PORT 53

#define PTRACE_POKETEXT 4
#define PTRACE_POKEDATA 5
#define PTRACE_POKEUSER 6
#define PTRACE_ATTACH 16
#define PTRACE_SEIZE 0x4206

/*
 * Syscall numbers the raw sys_enter program recognises. Module loading is seen there because kernels
 * built without CONFIG_MODULES have no sys_enter_(f)init_module tracepoints, yet the syscalls still
 * enter (and fail): the attempt is what matters. write() carries DNS queries of resolvers that connect
 * a UDP socket first (BusyBox nslookup), which the sendto/sendmsg hooks never see.
 */
#if defined(__TARGET_ARCH_x86)
#define NR_WRITE 1
#define NR_INIT_MODULE 175
#define NR_FINIT_MODULE 313
#elif defined(__TARGET_ARCH_arm64)
#define NR_WRITE 64
#define NR_INIT_MODULE 105
#define NR_FINIT_MODULE 273
#else
#error "syscall numbers for this architecture are missing"
#endif

/* A write longer than this is not a DNS query over UDP (a query is one name; EDNS0 caps at 512+). */
#define DNS_WRITE_MAX 1232

/* How many environment strings an exec scans for LD_* variables. */
#define ENV_SCAN_MAX 64
#define ENV_CHUNK 256

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 * 1024 * 1024);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct patrol_config);
} sensor_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, __u8);
} ignored_cgroups SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, PATROL_RECORD_KIND_MAX);
	__type(key, __u32);
	__type(value, __u64);
} drops SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, struct patrol_syscall_bitmap);
} syscall_sets SEC(".maps");

struct open_args {
	__u64 path;
	__u32 flags;
	__s32 dfd;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, struct open_args);
} pending_open SEC(".maps");

struct connect_args {
	__u8 addr[28];		/* struct sockaddr_in or sockaddr_in6 */
	__s32 fd;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, __u32);
	__type(value, struct connect_args);
} pending_connect SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, __u32);
	__type(value, __u8);
} pending_accept SEC(".maps");

/* Per-CPU scratch for exec's environment scan. */
struct env_scratch {
	char chunk[ENV_CHUNK];
	char out[PATROL_ENV_LEN * 2];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct env_scratch);
} env_scratch SEC(".maps");

/* ---- common helpers ---- */

/* Whether events of `kind` from the current task are wanted; sets *cgid. */
static __always_inline bool wanted(__u32 kind, __u64 pid_tgid, __u64 *cgid)
{
	__u32 zero = 0;
	struct patrol_config *cfg = bpf_map_lookup_elem(&sensor_config, &zero);

	if (!cfg || !(cfg->enabled_kinds & (1U << kind)))
		return false;
	if (cfg->ignore_tgid && cfg->ignore_tgid == (__u32)(pid_tgid >> 32))
		return false;
	*cgid = bpf_get_current_cgroup_id();
	return !bpf_map_lookup_elem(&ignored_cgroups, cgid);
}

static __always_inline void count_drop(__u32 kind)
{
	__u64 *value = bpf_map_lookup_elem(&drops, &kind);

	if (value)
		*value += 1;
}

static __always_inline void fill(struct patrol_record_header *h, struct patrol_task *t, __u32 kind, __u32 size,
				 __u64 pid_tgid, __u64 cgid)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	__u64 ugid = bpf_get_current_uid_gid();

	h->kind = kind;
	h->version = PATROL_ABI_VERSION;
	h->size = size;
	h->timestamp_ns = bpf_ktime_get_boot_ns();
	h->pid = pid_tgid >> 32;
	h->tid = (__u32)pid_tgid;
	t->cgroup_id = cgid;
	t->mntns = BPF_CORE_READ(task, nsproxy, mnt_ns, ns.inum);
	t->ppid = BPF_CORE_READ(task, real_parent, tgid);
	t->uid = (__u32)ugid;
	t->gid = ugid >> 32;
	t->flags = 0;
	bpf_get_current_comm(t->comm, sizeof(t->comm));
}

/*
 * Wake-ups of the reader are batched. With flags 0 the kernel wakes the reader for every record it submits while
 * the reader is caught up, and at tens of thousands of records a second that wake-up (irq_work, then a context
 * switch on the reader's CPU) costs the traced task more than the rest of the program. So records are submitted
 * without a wake-up, and the reader is woken once WAKEUP_BYTES are waiting (the submit that crosses the mark);
 * the reader's poll timeout (10 ms, LiveCapture) bounds how long a record waits below the mark. Records that
 * must not wait (exec, which starts the exec-to-alert clock) use submit_now.
 */
#define WAKEUP_BYTES (256 * 1024)

static __always_inline void submit(void *rec, __u32 size)
{
	__u64 waiting = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA);

	bpf_ringbuf_submit(rec, waiting >= WAKEUP_BYTES && waiting < WAKEUP_BYTES + size ? BPF_RB_FORCE_WAKEUP
											  : BPF_RB_NO_WAKEUP);
}

static __always_inline void submit_now(void *rec)
{
	bpf_ringbuf_submit(rec, 0);
}

/* Reserves a record of rec's type, counting a failure; fills header and task. */
#define RESERVE_OR_RETURN(rec, kind, pid_tgid, cgid)					\
	do {										\
		rec = bpf_ringbuf_reserve(&events, sizeof(*rec), 0);			\
		if (!rec) {								\
			count_drop(kind);						\
			return 0;							\
		}									\
		fill(&rec->header, &rec->task, kind, sizeof(*rec), pid_tgid, cgid);	\
	} while (0)

/* The file behind descriptor `fd` of `task`, or NULL. */
static __always_inline struct file *fd_file(struct task_struct *task, int fd)
{
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	struct file **fds;
	struct file *file = NULL;

	if (!fdt || fd < 0 || (unsigned int)fd >= BPF_CORE_READ(fdt, max_fds))
		return NULL;
	fds = BPF_CORE_READ(fdt, fd);
	bpf_core_read(&file, sizeof(file), &fds[fd]);
	return file;
}

static __always_inline bool file_is_socket(struct file *file)
{
	umode_t mode;

	if (!file)
		return false;
	mode = BPF_CORE_READ(file, f_inode, i_mode);
	return (mode & S_IFMT) == S_IFSOCK;
}

/* The kernel address of the name of the file's dentry (its last path component). */
static __always_inline const void *file_name(struct file *file)
{
	struct dentry *dentry = NULL;
	const unsigned char *name = NULL;

	bpf_core_read(&dentry, sizeof(dentry), &file->f_path.dentry);
	bpf_core_read(&name, sizeof(name), &dentry->d_name.name);
	return name;
}

/* The struct sock behind descriptor `fd` of the current task, or NULL when it is not a socket. */
static __always_inline struct sock *fd_sock(int fd)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct file *file = fd_file(task, fd);
	struct socket *sock;

	if (!file_is_socket(file))
		return NULL;
	sock = BPF_CORE_READ(file, private_data);
	return sock ? BPF_CORE_READ(sock, sk) : NULL;
}

/* Copies family, protocol and both endpoints of `sk` into `rec`. */
static __always_inline void sock_endpoints(struct sock *sk, struct patrol_net_record *rec)
{
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);

	rec->family = family;
	rec->protocol = BPF_CORE_READ(sk, sk_protocol);
	rec->local_port = BPF_CORE_READ(sk, __sk_common.skc_num);
	rec->remote_port = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (family == AF_INET) {
		bpf_core_read(rec->local_addr, 4, &sk->__sk_common.skc_rcv_saddr);
		bpf_core_read(rec->remote_addr, 4, &sk->__sk_common.skc_daddr);
	} else if (family == AF_INET6) {
		bpf_core_read(rec->local_addr, 16, &sk->__sk_common.skc_v6_rcv_saddr);
		bpf_core_read(rec->remote_addr, 16, &sk->__sk_common.skc_v6_daddr);
	}
}

/* Reads family, port (host order) and address from a user sockaddr; false unless AF_INET/AF_INET6. */
static __always_inline bool parse_sockaddr(const __u8 *sa, __u16 *family, __u16 *port, __u8 *addr)
{
	__u16 fam = *(const __u16 *)sa;

	*family = fam;
	*port = bpf_ntohs(*(const __u16 *)(sa + 2));
	if (fam == AF_INET) {
		__builtin_memcpy(addr, sa + 4, 4);
		return true;
	}
	if (fam == AF_INET6) {
		__builtin_memcpy(addr, sa + 8, 16);
		return true;
	}
	return false;
}

static __always_inline void zero16(__u8 *p)
{
	__builtin_memset(p, 0, 16);
}

/* ---- process ---- */

/*
 * An exec through a descriptor (fexecve, execveat with AT_EMPTY_PATH) reaches the tracepoint as "/dev/fd/<n>"
 * or "/proc/self/fd/<n>", which hides a fileless exec from an anonymous memory file. When the new executable
 * is a memfd (its dentry is named "memfd:<name>"), report the path as /proc/<pid>/exe reads:
 * "/memfd:<name> (deleted)". Other executables keep the path the caller passed.
 */
static __always_inline void exec_memfd_path(struct mm_struct *mm, char *filename)
{
	static const char deleted[] = " (deleted)";
	struct file *exe = BPF_CORE_READ(mm, exe_file);
	const char *name;
	char prefix[6];
	long n;

	if (!exe)
		return;
	name = file_name(exe);
	if (!name || bpf_probe_read_kernel(prefix, sizeof(prefix), name) != 0)
		return;
	if (prefix[0] != 'm' || prefix[1] != 'e' || prefix[2] != 'm' || prefix[3] != 'f' || prefix[4] != 'd' ||
	    prefix[5] != ':')
		return;
	filename[0] = '/';
	n = bpf_probe_read_kernel_str(filename + 1, PATROL_PATH_LEN - 1 - sizeof(deleted), name);
	if (n <= 0)
		return;
	/* n counts the NUL, which lands at filename[n]; the suffix (with its own NUL) starts there. */
	barrier_var(n);
	if (n > PATROL_PATH_LEN - sizeof(deleted))
		return;
	bpf_probe_read_kernel(filename + n, sizeof(deleted), deleted);
}

SEC("tracepoint/sched/sched_process_exec")
int handle_exec(struct trace_event_raw_sched_process_exec *ctx)
{
	__u64 id = bpf_get_current_pid_tgid(), cgid;
	struct patrol_exec_record *rec;
	struct task_struct *task;
	struct mm_struct *mm;
	struct env_scratch *scratch;
	unsigned long start, end, pos;
	__u64 len;
	__u32 zero = 0, out = 0;
	bool in_long = false;
	int i;

	if (!wanted(PATROL_RECORD_EXEC, id, &cgid))
		return 0;
	RESERVE_OR_RETURN(rec, PATROL_RECORD_EXEC, id, cgid);
	task = (struct task_struct *)bpf_get_current_task();
	rec->args_size = 0;
	rec->env_size = 0;
	rec->args_truncated = 0;
	rec->env_truncated = 0;
	rec->stdio_socket = file_is_socket(fd_file(task, 0)) || file_is_socket(fd_file(task, 1));
	bpf_probe_read_kernel_str(rec->filename, sizeof(rec->filename),
				  (void *)ctx + (ctx->__data_loc_filename & 0xFFFF));

	mm = BPF_CORE_READ(task, mm);
	exec_memfd_path(mm, rec->filename);
	start = BPF_CORE_READ(mm, arg_start);
	end = BPF_CORE_READ(mm, arg_end);
	len = end > start ? end - start : 0;
	if (len > PATROL_ARGS_LEN) {
		len = PATROL_ARGS_LEN;
		rec->args_truncated = 1;
	}
	barrier_var(len);
	if (len > 0 && len <= PATROL_ARGS_LEN && bpf_probe_read_user(rec->args, len, (void *)start) == 0)
		rec->args_size = len;

	/* Environment: keep only LD_* variables (LD_PRELOAD, LD_LIBRARY_PATH, LD_AUDIT, ...). */
	scratch = bpf_map_lookup_elem(&env_scratch, &zero);
	if (!scratch)
		goto submit;
	pos = BPF_CORE_READ(mm, env_start);
	end = BPF_CORE_READ(mm, env_end);
	for (i = 0; i < ENV_SCAN_MAX; i++) {
		long n;

		if (pos >= end)
			break;
		n = bpf_probe_read_user_str(scratch->chunk, ENV_CHUNK, (void *)pos);
		if (n <= 0)
			break;
		if (!in_long && scratch->chunk[0] == 'L' && scratch->chunk[1] == 'D' && scratch->chunk[2] == '_') {
			if (n < ENV_CHUNK && out + n <= PATROL_ENV_LEN) {
				bpf_probe_read_kernel(&scratch->out[out & (PATROL_ENV_LEN - 1)], n & (ENV_CHUNK - 1),
						      scratch->chunk);
				out += n;
			} else {
				rec->env_truncated = 1;
			}
		}
		if (n == ENV_CHUNK) {
			/* No terminator within the chunk: continue inside the same string. */
			in_long = true;
			pos += ENV_CHUNK - 1;
		} else {
			in_long = false;
			pos += n;
		}
	}
	if (pos < end)
		rec->env_truncated = 1;
	if (out > 0 && out <= PATROL_ENV_LEN) {
		bpf_probe_read_kernel(rec->env, out, scratch->out);
		rec->env_size = out;
	}
submit:
	submit_now(rec);
	return 0;
}

SEC("tracepoint/sched/sched_process_exit")
int handle_exit(void *ctx)
{
	__u64 id = bpf_get_current_pid_tgid(), cgid;
	struct patrol_exit_record *rec;
	struct task_struct *task;
	int code;

	if ((__u32)id != (__u32)(id >> 32))
		return 0;	/* a thread, not the process */
	if (!wanted(PATROL_RECORD_EXIT, id, &cgid))
		return 0;
	RESERVE_OR_RETURN(rec, PATROL_RECORD_EXIT, id, cgid);
	task = (struct task_struct *)bpf_get_current_task();
	code = BPF_CORE_READ(task, exit_code);
	rec->code = (code >> 8) & 0xff;
	rec->signal = code & 0x7f;
	submit(rec, sizeof(*rec));
	return 0;
}

/* ---- files ---- */

static __always_inline int stash_open(__u64 path, __u32 flags, __s32 dfd)
{
	__u64 id = bpf_get_current_pid_tgid(), cgid;
	struct open_args args = { .path = path, .flags = flags, .dfd = dfd };
	__u32 tid = (__u32)id;

	if (!wanted(PATROL_RECORD_OPEN, id, &cgid))
		return 0;
	bpf_map_update_elem(&pending_open, &tid, &args, BPF_ANY);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_openat")
int enter_openat(struct trace_event_raw_sys_enter *ctx)
{
	return stash_open(ctx->args[1], (__u32)ctx->args[2], (__s32)ctx->args[0]);
}

SEC("tracepoint/syscalls/sys_enter_openat2")
int enter_openat2(struct trace_event_raw_sys_enter *ctx)
{
	__u64 flags = 0;

	/* struct open_how starts with __u64 flags. */
	bpf_probe_read_user(&flags, sizeof(flags), (void *)ctx->args[2]);
	return stash_open(ctx->args[1], (__u32)flags, (__s32)ctx->args[0]);
}

static __always_inline int emit_open(long ret)
{
	__u64 id = bpf_get_current_pid_tgid(), cgid;
	__u32 tid = (__u32)id;
	struct open_args *pending = bpf_map_lookup_elem(&pending_open, &tid);
	struct open_args args;
	struct patrol_open_record *rec;

	if (!pending)
		return 0;
	args = *pending;
	bpf_map_delete_elem(&pending_open, &tid);
	cgid = bpf_get_current_cgroup_id();
	RESERVE_OR_RETURN(rec, PATROL_RECORD_OPEN, id, cgid);
	rec->flags = args.flags;
	rec->result = (__s32)ret;
	rec->dfd = args.dfd;
	rec->pad = 0;
	if (bpf_probe_read_user_str(rec->path, sizeof(rec->path), (void *)args.path) < 0)
		rec->path[0] = 0;
	submit(rec, sizeof(*rec));
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_openat")
int exit_openat(struct trace_event_raw_sys_exit *ctx)
{
	return emit_open(ctx->ret);
}

SEC("tracepoint/syscalls/sys_exit_openat2")
int exit_openat2(struct trace_event_raw_sys_exit *ctx)
{
	return emit_open(ctx->ret);
}

/* ---- network ---- */

SEC("tracepoint/syscalls/sys_enter_connect")
int enter_connect(struct trace_event_raw_sys_enter *ctx)
{
	__u64 id = bpf_get_current_pid_tgid(), cgid;
	struct connect_args args = {};
	__u32 tid = (__u32)id;
	__u16 family = 0;

	if (!wanted(PATROL_RECORD_CONNECT, id, &cgid))
		return 0;
	if (bpf_probe_read_user(&family, sizeof(family), (void *)ctx->args[1]))
		return 0;
	if (family == AF_INET) {
		if (bpf_probe_read_user(args.addr, 16, (void *)ctx->args[1]))
			return 0;
	} else if (family == AF_INET6) {
		if (bpf_probe_read_user(args.addr, 28, (void *)ctx->args[1]))
			return 0;
	} else {
		return 0;
	}
	args.fd = (__s32)ctx->args[0];
	bpf_map_update_elem(&pending_connect, &tid, &args, BPF_ANY);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_connect")
int exit_connect(struct trace_event_raw_sys_exit *ctx)
{
	__u64 id = bpf_get_current_pid_tgid(), cgid;
	__u32 tid = (__u32)id;
	struct connect_args *pending = bpf_map_lookup_elem(&pending_connect, &tid);
	struct connect_args args;
	struct patrol_net_record *rec;
	struct sock *sk;
	__u16 family, port;

	if (!pending)
		return 0;
	args = *pending;
	bpf_map_delete_elem(&pending_connect, &tid);
	cgid = bpf_get_current_cgroup_id();
	RESERVE_OR_RETURN(rec, PATROL_RECORD_CONNECT, id, cgid);
	zero16(rec->local_addr);
	zero16(rec->remote_addr);
	rec->local_port = 0;
	rec->protocol = 0;
	rec->pad = 0;
	rec->result = (__s32)ctx->ret;
	sk = fd_sock(args.fd);
	if (sk) {
		sock_endpoints(sk, rec);
	}
	/* The caller's address is the truth for the remote end (the socket's is unset after a failure). */
	parse_sockaddr(args.addr, &family, &port, rec->remote_addr);
	rec->family = family;
	rec->remote_port = port;
	submit(rec, sizeof(*rec));
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_accept4")
int enter_accept4(struct trace_event_raw_sys_enter *ctx)
{
	__u64 id = bpf_get_current_pid_tgid(), cgid;
	__u32 tid = (__u32)id;
	__u8 one = 1;

	if (!wanted(PATROL_RECORD_ACCEPT, id, &cgid))
		return 0;
	bpf_map_update_elem(&pending_accept, &tid, &one, BPF_ANY);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_accept")
int enter_accept(struct trace_event_raw_sys_enter *ctx)
{
	return enter_accept4(ctx);
}

static __always_inline int emit_accept(long ret)
{
	__u64 id = bpf_get_current_pid_tgid(), cgid;
	__u32 tid = (__u32)id;
	struct patrol_net_record *rec;
	struct sock *sk;
	__u16 family;

	if (!bpf_map_lookup_elem(&pending_accept, &tid))
		return 0;
	bpf_map_delete_elem(&pending_accept, &tid);
	if (ret < 0)
		return 0;
	sk = fd_sock((int)ret);
	if (!sk)
		return 0;
	family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (family != AF_INET && family != AF_INET6)
		return 0;
	cgid = bpf_get_current_cgroup_id();
	RESERVE_OR_RETURN(rec, PATROL_RECORD_ACCEPT, id, cgid);
	zero16(rec->local_addr);
	zero16(rec->remote_addr);
	rec->pad = 0;
	rec->result = (__s32)ret;
	sock_endpoints(sk, rec);
	submit(rec, sizeof(*rec));
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_accept4")
int exit_accept4(struct trace_event_raw_sys_exit *ctx)
{
	return emit_accept(ctx->ret);
}

SEC("tracepoint/syscalls/sys_exit_accept")
int exit_accept(struct trace_event_raw_sys_exit *ctx)
{
	return emit_accept(ctx->ret);
}

/* ---- DNS: UDP datagrams to port 53 ---- */

/*
 * The destination is checked on sys_enter; the payload is copied on sys_exit, when the kernel has
 * read it and its pages are certainly present (a read on entry can fault on a page not yet touched).
 */
struct dns_args {
	__u64 buf;
	__u64 len;
	__u8 addr[16];
	__u16 family;
	__u16 port;
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct dns_args);
} pending_dns SEC(".maps");

/*
 * Whether a datagram sent on `fd` (to `uaddr`, or to the socket's peer when NULL) is a UDP query to
 * port 53 from a task whose DNS events are wanted; fills args (destination, buffer).
 */
static __always_inline bool dns_target(__u64 id, int fd, const void *buf, __u64 len, const void *uaddr,
				       struct dns_args *args)
{
	__u8 sa[28] = {};
	struct sock *sk = NULL;
	__u64 cgid;

	if (!buf || len < 12)
		return false;	/* shorter than a DNS header */
	if (uaddr) {
		if (bpf_probe_read_user(sa, 16, uaddr))
			return false;
		if (*(__u16 *)sa == AF_INET6 && bpf_probe_read_user(sa, 28, uaddr))
			return false;
		if (!parse_sockaddr(sa, &args->family, &args->port, args->addr))
			return false;
		if (args->port != DNS_PORT)
			return false;
		sk = fd_sock(fd);
	} else {
		sk = fd_sock(fd);
		if (!sk)
			return false;
		args->port = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
		if (args->port != DNS_PORT)
			return false;
		args->family = BPF_CORE_READ(sk, __sk_common.skc_family);
		if (args->family == AF_INET)
			bpf_core_read(args->addr, 4, &sk->__sk_common.skc_daddr);
		else if (args->family == AF_INET6)
			bpf_core_read(args->addr, 16, &sk->__sk_common.skc_v6_daddr);
		else
			return false;
	}
	if (sk && BPF_CORE_READ(sk, sk_protocol) != IPPROTO_UDP)
		return false;
	if (!wanted(PATROL_RECORD_DNS, id, &cgid))
		return false;
	args->buf = (__u64)buf;
	args->len = len;
	return true;
}

static __always_inline int stash_dns(int fd, const void *buf, __u64 len, const void *uaddr)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct dns_args args = {};
	__u32 tid = (__u32)id;

	if (dns_target(id, fd, buf, len, uaddr, &args))
		bpf_map_update_elem(&pending_dns, &tid, &args, BPF_ANY);
	return 0;
}

static __always_inline int emit_dns_args(__u64 id, struct dns_args *args)
{
	struct patrol_dns_record *rec;
	__u64 cgid = bpf_get_current_cgroup_id();
	__u64 len;

	RESERVE_OR_RETURN(rec, PATROL_RECORD_DNS, id, cgid);
	rec->family = args->family;
	rec->remote_port = args->port;
	__builtin_memcpy(rec->remote_addr, args->addr, 16);
	len = args->len;
	if (len > PATROL_DNS_LEN)
		len = PATROL_DNS_LEN;
	barrier_var(len);
	rec->payload_size = 0;
	if (len <= PATROL_DNS_LEN && bpf_probe_read_user(rec->payload, len, (void *)args->buf) == 0)
		rec->payload_size = len;
	submit(rec, sizeof(*rec));
	return 0;
}

static __always_inline int emit_dns(void)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)id;
	struct dns_args *pending = bpf_map_lookup_elem(&pending_dns, &tid);
	struct dns_args args;

	if (!pending)
		return 0;
	args = *pending;
	bpf_map_delete_elem(&pending_dns, &tid);
	return emit_dns_args(id, &args);
}

SEC("tracepoint/syscalls/sys_enter_sendto")
int enter_sendto(struct trace_event_raw_sys_enter *ctx)
{
	return stash_dns((int)ctx->args[0], (void *)ctx->args[1], ctx->args[2], (void *)ctx->args[4]);
}

SEC("tracepoint/syscalls/sys_exit_sendto")
int exit_sendto(struct trace_event_raw_sys_exit *ctx)
{
	return emit_dns();
}

SEC("tracepoint/syscalls/sys_exit_sendmsg")
int exit_sendmsg(struct trace_event_raw_sys_exit *ctx)
{
	return emit_dns();
}

SEC("tracepoint/syscalls/sys_exit_sendmmsg")
int exit_sendmmsg(struct trace_event_raw_sys_exit *ctx)
{
	return emit_dns();
}

/* sendmsg, and the first message of sendmmsg (struct mmsghdr starts with struct user_msghdr). */
static __always_inline int emit_dns_msg(int fd, const void *umsg)
{
	struct user_msghdr msg;
	struct iovec iov;

	if (bpf_probe_read_user(&msg, sizeof(msg), umsg))
		return 0;
	if (!msg.msg_iov || msg.msg_iovlen < 1)
		return 0;
	if (bpf_probe_read_user(&iov, sizeof(iov), msg.msg_iov))
		return 0;
	return stash_dns(fd, iov.iov_base, iov.iov_len, msg.msg_name);
}

SEC("tracepoint/syscalls/sys_enter_sendmsg")
int enter_sendmsg(struct trace_event_raw_sys_enter *ctx)
{
	return emit_dns_msg((int)ctx->args[0], (void *)ctx->args[1]);
}

SEC("tracepoint/syscalls/sys_enter_sendmmsg")
int enter_sendmmsg(struct trace_event_raw_sys_enter *ctx)
{
	if (ctx->args[2] < 1)
		return 0;
	return emit_dns_msg((int)ctx->args[0], (void *)ctx->args[1]);
}

/* ---- kernel modules, DNS over write(), syscall sets: raw_tp/sys_enter ---- */

static __always_inline int emit_module(__u32 syscall, int fd)
{
	__u64 id = bpf_get_current_pid_tgid(), cgid;
	struct patrol_module_record *rec;
	struct file *file;

	if (!wanted(PATROL_RECORD_MODULE, id, &cgid))
		return 0;
	RESERVE_OR_RETURN(rec, PATROL_RECORD_MODULE, id, cgid);
	rec->syscall = syscall;
	rec->pad = 0;
	rec->name[0] = 0;
	if (fd >= 0) {
		file = fd_file((struct task_struct *)bpf_get_current_task(), fd);
		if (file)
			bpf_probe_read_kernel_str(rec->name, sizeof(rec->name), file_name(file));
	}
	submit(rec, sizeof(*rec));
	return 0;
}

/* A DNS query written to a connected UDP socket: emitted at once, as write() has no exit hook here. */
static __always_inline int dns_write(int fd, const void *buf, __u64 len)
{
	__u64 id = bpf_get_current_pid_tgid(), cgid;
	struct dns_args args = {};

	/* Most writes are not datagrams to port 53: the size and filter checks spare them the fd table walk. */
	if (len < 12 || len > DNS_WRITE_MAX || !wanted(PATROL_RECORD_DNS, id, &cgid))
		return 0;
	/* The query was just built by the caller, so its pages are present: reading on entry is safe. */
	if (dns_target(id, fd, buf, len, NULL, &args))
		emit_dns_args(id, &args);
	return 0;
}

/*
 * Runs on every syscall entry: sets the syscall's bit in the cgroup's bitmap, and reports the few
 * syscalls that have no usable tracepoint of their own (see NR_INIT_MODULE above).
 */
SEC("raw_tp/sys_enter")
int BPF_PROG(syscall_set, struct pt_regs *regs, long nr)
{
	__u64 id = bpf_get_current_pid_tgid(), cgid;
	struct patrol_syscall_bitmap *bitmap;
	__u64 bit;
	__u32 word;

	if (nr == NR_WRITE)
		dns_write((int)PT_REGS_PARM1_CORE_SYSCALL(regs), (const void *)PT_REGS_PARM2_CORE_SYSCALL(regs),
			  PT_REGS_PARM3_CORE_SYSCALL(regs));
	else if (nr == NR_INIT_MODULE)
		emit_module(PATROL_SYSCALL_INIT_MODULE, -1);
	else if (nr == NR_FINIT_MODULE)
		emit_module(PATROL_SYSCALL_FINIT_MODULE, (int)PT_REGS_PARM1_CORE_SYSCALL(regs));

	if ((__u64)nr >= PATROL_SYSCALL_BITS)
		return 0;
	if (!wanted(PATROL_RECORD_SYSCALLS, id, &cgid))
		return 0;
	bitmap = bpf_map_lookup_elem(&syscall_sets, &cgid);
	if (!bitmap) {
		struct patrol_syscall_bitmap empty = {};

		bpf_map_update_elem(&syscall_sets, &cgid, &empty, BPF_NOEXIST);
		bitmap = bpf_map_lookup_elem(&syscall_sets, &cgid);
		if (!bitmap)
			return 0;
	}
	bit = 1ULL << (nr & 63);
	word = (nr >> 6) & (PATROL_SYSCALL_WORDS - 1);
	if (!(bitmap->words[word] & bit))
		__sync_fetch_and_or(&bitmap->words[word], bit);
	return 0;
}

/* ---- capabilities ---- */

SEC("tp_btf/cap_capable")
int BPF_PROG(handle_capable, const struct cred *cred, struct user_namespace *target_ns,
	     const struct user_namespace *capable_ns, int cap, int ret)
{
	__u64 id = bpf_get_current_pid_tgid(), cgid;
	struct patrol_capability_record *rec;
	struct task_struct *task;
	struct pt_regs *regs;

	if (!wanted(PATROL_RECORD_CAPABILITY, id, &cgid))
		return 0;
	RESERVE_OR_RETURN(rec, PATROL_RECORD_CAPABILITY, id, cgid);
	task = bpf_get_current_task_btf();
	rec->cap = cap;
	rec->granted = ret == 0;
	rec->syscall = ~0U;
	if (!(task->flags & PF_KTHREAD)) {
		regs = (struct pt_regs *)bpf_task_pt_regs(task);
		if (regs)
			rec->syscall = (__u32)BPF_CORE_READ(regs, orig_ax);
	}
	submit(rec, sizeof(*rec));
	return 0;
}

/* ---- escape and persistence signals ---- */

/*
 * A namespace file (/proc/<pid>/ns/uts, ...) has the dentry name "/", which says nothing; name it as
 * readlink(/proc/<pid>/ns/<type>) does, "uts:[4026531838]", from the nsfs inode's ns_common. False when the
 * file is not a namespace (setns also takes a pidfd).
 */
static __always_inline bool ns_file_name(struct file *file, char *out, __u32 size)
{
	static const char format[] = "%s:[%u]";
	struct inode *inode = BPF_CORE_READ(file, f_inode);
	const struct proc_ns_operations *ops;
	struct ns_common *ns;
	const char *name = NULL;
	__u64 args[2];

	if (!inode || BPF_CORE_READ(inode, i_sb, s_magic) != NSFS_MAGIC)
		return false;
	ns = (struct ns_common *)BPF_CORE_READ(inode, i_private);
	if (!ns)
		return false;
	ops = BPF_CORE_READ(ns, ops);
	if (!ops || bpf_core_read(&name, sizeof(name), &ops->name) != 0 || !name)
		return false;
	args[0] = (__u64)name;
	args[1] = BPF_CORE_READ(ns, inum);
	return bpf_snprintf(out, size, format, args, sizeof(args)) > 0;
}

static __always_inline int emit_namespace(__u32 syscall, __u64 flags, const char *source, const char *target,
					  const char *fstype, int fd)
{
	__u64 id = bpf_get_current_pid_tgid(), cgid;
	struct patrol_namespace_record *rec;
	struct file *file;

	if (!wanted(PATROL_RECORD_NAMESPACE, id, &cgid))
		return 0;
	RESERVE_OR_RETURN(rec, PATROL_RECORD_NAMESPACE, id, cgid);
	rec->syscall = syscall;
	rec->pad = 0;
	rec->flags = flags;
	rec->source[0] = 0;
	rec->target[0] = 0;
	rec->fstype[0] = 0;
	if (source)
		bpf_probe_read_user_str(rec->source, sizeof(rec->source), source);
	if (target)
		bpf_probe_read_user_str(rec->target, sizeof(rec->target), target);
	if (fstype)
		bpf_probe_read_user_str(rec->fstype, sizeof(rec->fstype), fstype);
	if (fd >= 0) {
		file = fd_file((struct task_struct *)bpf_get_current_task(), fd);
		if (file && !ns_file_name(file, rec->source, sizeof(rec->source)))
			bpf_probe_read_kernel_str(rec->source, sizeof(rec->source),
						  file_name(file));
	}
	submit(rec, sizeof(*rec));
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_unshare")
int enter_unshare(struct trace_event_raw_sys_enter *ctx)
{
	return emit_namespace(PATROL_SYSCALL_UNSHARE, ctx->args[0], NULL, NULL, NULL, -1);
}

SEC("tracepoint/syscalls/sys_enter_setns")
int enter_setns(struct trace_event_raw_sys_enter *ctx)
{
	return emit_namespace(PATROL_SYSCALL_SETNS, ctx->args[1], NULL, NULL, NULL, (int)ctx->args[0]);
}

SEC("tracepoint/syscalls/sys_enter_mount")
int enter_mount(struct trace_event_raw_sys_enter *ctx)
{
	return emit_namespace(PATROL_SYSCALL_MOUNT, ctx->args[3], (const char *)ctx->args[0],
			      (const char *)ctx->args[1], (const char *)ctx->args[2], -1);
}

SEC("tracepoint/syscalls/sys_enter_ptrace")
int enter_ptrace(struct trace_event_raw_sys_enter *ctx)
{
	__u64 id = bpf_get_current_pid_tgid(), cgid;
	struct patrol_ptrace_record *rec;
	long request = (long)ctx->args[0];

	if (request != PTRACE_ATTACH && request != PTRACE_SEIZE && request != PTRACE_POKETEXT &&
	    request != PTRACE_POKEDATA && request != PTRACE_POKEUSER)
		return 0;
	if (!wanted(PATROL_RECORD_PTRACE, id, &cgid))
		return 0;
	RESERVE_OR_RETURN(rec, PATROL_RECORD_PTRACE, id, cgid);
	rec->request = request;
	rec->target_pid = (__s32)ctx->args[1];
	rec->pad = 0;
	submit(rec, sizeof(*rec));
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_memfd_create")
int enter_memfd_create(struct trace_event_raw_sys_enter *ctx)
{
	__u64 id = bpf_get_current_pid_tgid(), cgid;
	struct patrol_memfd_record *rec;

	if (!wanted(PATROL_RECORD_MEMFD, id, &cgid))
		return 0;
	RESERVE_OR_RETURN(rec, PATROL_RECORD_MEMFD, id, cgid);
	rec->flags = (__u32)ctx->args[1];
	rec->pad = 0;
	if (bpf_probe_read_user_str(rec->name, sizeof(rec->name), (void *)ctx->args[0]) < 0)
		rec->name[0] = 0;
	submit(rec, sizeof(*rec));
	return 0;
}

static __always_inline int emit_link(bool symbolic, const char *target, const char *link_path)
{
	__u64 id = bpf_get_current_pid_tgid(), cgid;
	struct patrol_link_record *rec;

	if (!wanted(PATROL_RECORD_LINK, id, &cgid))
		return 0;
	RESERVE_OR_RETURN(rec, PATROL_RECORD_LINK, id, cgid);
	rec->symbolic = symbolic;
	if (bpf_probe_read_user_str(rec->target, sizeof(rec->target), target) < 0)
		rec->target[0] = 0;
	if (bpf_probe_read_user_str(rec->link_path, sizeof(rec->link_path), link_path) < 0)
		rec->link_path[0] = 0;
	submit(rec, sizeof(*rec));
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_symlink")
int enter_symlink(struct trace_event_raw_sys_enter *ctx)
{
	return emit_link(true, (const char *)ctx->args[0], (const char *)ctx->args[1]);
}

SEC("tracepoint/syscalls/sys_enter_symlinkat")
int enter_symlinkat(struct trace_event_raw_sys_enter *ctx)
{
	return emit_link(true, (const char *)ctx->args[0], (const char *)ctx->args[2]);
}

SEC("tracepoint/syscalls/sys_enter_link")
int enter_link(struct trace_event_raw_sys_enter *ctx)
{
	return emit_link(false, (const char *)ctx->args[0], (const char *)ctx->args[1]);
}

SEC("tracepoint/syscalls/sys_enter_linkat")
int enter_linkat(struct trace_event_raw_sys_enter *ctx)
{
	return emit_link(false, (const char *)ctx->args[1], (const char *)ctx->args[3]);
}

SEC("tracepoint/syscalls/sys_enter_bpf")
int enter_bpf(struct trace_event_raw_sys_enter *ctx)
{
	__u64 id = bpf_get_current_pid_tgid(), cgid;
	struct patrol_bpf_record *rec;

	if (!wanted(PATROL_RECORD_BPF, id, &cgid))
		return 0;
	RESERVE_OR_RETURN(rec, PATROL_RECORD_BPF, id, cgid);
	rec->command = (__s32)ctx->args[0];
	rec->pad = 0;
	submit(rec, sizeof(*rec));
	return 0;
}
