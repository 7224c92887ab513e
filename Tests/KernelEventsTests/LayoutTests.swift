import Testing
import KernelEvents
import CSensorABI

// Mirrors every _Static_assert of bpf/include/sensor_abi.h through the C structs as Swift imports them,
// so a layout change on one side fails here as well as in the BPF build.
@Suite struct LayoutTests {
    @Test func header() {
        #expect(MemoryLayout<patrol_record_header>.size == 24)
        #expect(MemoryLayout<patrol_record_header>.offset(of: \.kind) == 0)
        #expect(MemoryLayout<patrol_record_header>.offset(of: \.version) == 2)
        #expect(MemoryLayout<patrol_record_header>.offset(of: \.size) == 4)
        #expect(MemoryLayout<patrol_record_header>.offset(of: \.timestamp_ns) == 8)
        #expect(MemoryLayout<patrol_record_header>.offset(of: \.pid) == 16)
        #expect(MemoryLayout<patrol_record_header>.offset(of: \.tid) == 20)
        #expect(KernelDecoder.headerSize == 24)
    }

    @Test func task() {
        #expect(MemoryLayout<patrol_task>.size == 48)
        #expect(MemoryLayout<patrol_task>.offset(of: \.cgroup_id) == 0)
        #expect(MemoryLayout<patrol_task>.offset(of: \.mntns) == 8)
        #expect(MemoryLayout<patrol_task>.offset(of: \.ppid) == 16)
        #expect(MemoryLayout<patrol_task>.offset(of: \.uid) == 20)
        #expect(MemoryLayout<patrol_task>.offset(of: \.gid) == 24)
        #expect(MemoryLayout<patrol_task>.offset(of: \.flags) == 28)
        #expect(MemoryLayout<patrol_task>.offset(of: \.comm) == 32)
    }

    @Test func configAndBitmap() {
        #expect(MemoryLayout<patrol_config>.size == 8)
        #expect(MemoryLayout<patrol_config>.offset(of: \.enabled_kinds) == 0)
        #expect(MemoryLayout<patrol_config>.offset(of: \.ignore_tgid) == 4)
        #expect(MemoryLayout<patrol_syscall_bitmap>.size == 64)
        #expect(SensorABI.configValue(enabled: [.exec, .open], ignoreTgid: 7) == [0x0A, 0, 0, 0, 7, 0, 0, 0])
    }

    @Test func kindNumbersMatchTheHeader() {
        let c: [(KernelRecordKind, patrol_record_kind)] = [
            (.exec, PATROL_RECORD_EXEC), (.exit, PATROL_RECORD_EXIT), (.open, PATROL_RECORD_OPEN),
            (.connect, PATROL_RECORD_CONNECT), (.accept, PATROL_RECORD_ACCEPT), (.dns, PATROL_RECORD_DNS),
            (.capability, PATROL_RECORD_CAPABILITY), (.module, PATROL_RECORD_MODULE),
            (.namespace, PATROL_RECORD_NAMESPACE), (.ptrace, PATROL_RECORD_PTRACE), (.memfd, PATROL_RECORD_MEMFD),
            (.link, PATROL_RECORD_LINK), (.bpf, PATROL_RECORD_BPF), (.syscalls, PATROL_RECORD_SYSCALLS),
        ]
        #expect(c.count == KernelRecordKind.allCases.count)
        for (swift, header) in c { #expect(UInt32(swift.rawValue) == header.rawValue, "\(swift)") }
        #expect(SensorABI.kindSlots == KernelRecordKind.allCases.count + 1)
        #expect(SensorABI.version == 2)
    }

    @Test func execRecord() {
        #expect(MemoryLayout<patrol_exec_record>.size == 1112)
        #expect(MemoryLayout<patrol_exec_record>.offset(of: \.task) == 24)
        #expect(MemoryLayout<patrol_exec_record>.offset(of: \.args_size) == 72)
        #expect(MemoryLayout<patrol_exec_record>.offset(of: \.env_size) == 76)
        #expect(MemoryLayout<patrol_exec_record>.offset(of: \.stdio_socket) == 80)
        #expect(MemoryLayout<patrol_exec_record>.offset(of: \.args_truncated) == 81)
        #expect(MemoryLayout<patrol_exec_record>.offset(of: \.env_truncated) == 82)
        #expect(MemoryLayout<patrol_exec_record>.offset(of: \.pad) == 83)
        #expect(MemoryLayout<patrol_exec_record>.offset(of: \.filename) == 88)
        #expect(MemoryLayout<patrol_exec_record>.offset(of: \.args) == 344)
        #expect(MemoryLayout<patrol_exec_record>.offset(of: \.env) == 856)
    }

    @Test func exitRecord() {
        #expect(MemoryLayout<patrol_exit_record>.size == 80)
        #expect(MemoryLayout<patrol_exit_record>.offset(of: \.task) == 24)
        #expect(MemoryLayout<patrol_exit_record>.offset(of: \.code) == 72)
        #expect(MemoryLayout<patrol_exit_record>.offset(of: \.signal) == 76)
    }

    @Test func openRecord() {
        #expect(MemoryLayout<patrol_open_record>.size == 344)
        #expect(MemoryLayout<patrol_open_record>.offset(of: \.task) == 24)
        #expect(MemoryLayout<patrol_open_record>.offset(of: \.flags) == 72)
        #expect(MemoryLayout<patrol_open_record>.offset(of: \.result) == 76)
        #expect(MemoryLayout<patrol_open_record>.offset(of: \.dfd) == 80)
        #expect(MemoryLayout<patrol_open_record>.offset(of: \.pad) == 84)
        #expect(MemoryLayout<patrol_open_record>.offset(of: \.path) == 88)
    }

    @Test func netRecord() {
        #expect(MemoryLayout<patrol_net_record>.size == 120)
        #expect(MemoryLayout<patrol_net_record>.offset(of: \.task) == 24)
        #expect(MemoryLayout<patrol_net_record>.offset(of: \.family) == 72)
        #expect(MemoryLayout<patrol_net_record>.offset(of: \.protocol) == 74)
        #expect(MemoryLayout<patrol_net_record>.offset(of: \.local_port) == 76)
        #expect(MemoryLayout<patrol_net_record>.offset(of: \.remote_port) == 78)
        #expect(MemoryLayout<patrol_net_record>.offset(of: \.result) == 80)
        #expect(MemoryLayout<patrol_net_record>.offset(of: \.pad) == 84)
        #expect(MemoryLayout<patrol_net_record>.offset(of: \.local_addr) == 88)
        #expect(MemoryLayout<patrol_net_record>.offset(of: \.remote_addr) == 104)
    }

    @Test func dnsRecord() {
        #expect(MemoryLayout<patrol_dns_record>.size == 352)
        #expect(MemoryLayout<patrol_dns_record>.offset(of: \.task) == 24)
        #expect(MemoryLayout<patrol_dns_record>.offset(of: \.family) == 72)
        #expect(MemoryLayout<patrol_dns_record>.offset(of: \.remote_port) == 74)
        #expect(MemoryLayout<patrol_dns_record>.offset(of: \.payload_size) == 76)
        #expect(MemoryLayout<patrol_dns_record>.offset(of: \.remote_addr) == 80)
        #expect(MemoryLayout<patrol_dns_record>.offset(of: \.payload) == 96)
    }

    @Test func capabilityRecord() {
        #expect(MemoryLayout<patrol_capability_record>.size == 88)
        #expect(MemoryLayout<patrol_capability_record>.offset(of: \.task) == 24)
        #expect(MemoryLayout<patrol_capability_record>.offset(of: \.cap) == 72)
        #expect(MemoryLayout<patrol_capability_record>.offset(of: \.syscall) == 76)
        #expect(MemoryLayout<patrol_capability_record>.offset(of: \.granted) == 80)
        #expect(MemoryLayout<patrol_capability_record>.offset(of: \.pad) == 81)
    }

    @Test func moduleRecord() {
        #expect(MemoryLayout<patrol_module_record>.size == 144)
        #expect(MemoryLayout<patrol_module_record>.offset(of: \.task) == 24)
        #expect(MemoryLayout<patrol_module_record>.offset(of: \.syscall) == 72)
        #expect(MemoryLayout<patrol_module_record>.offset(of: \.pad) == 76)
        #expect(MemoryLayout<patrol_module_record>.offset(of: \.name) == 80)
    }

    @Test func namespaceRecord() {
        #expect(MemoryLayout<patrol_namespace_record>.size == 408)
        #expect(MemoryLayout<patrol_namespace_record>.offset(of: \.task) == 24)
        #expect(MemoryLayout<patrol_namespace_record>.offset(of: \.syscall) == 72)
        #expect(MemoryLayout<patrol_namespace_record>.offset(of: \.pad) == 76)
        #expect(MemoryLayout<patrol_namespace_record>.offset(of: \.flags) == 80)
        #expect(MemoryLayout<patrol_namespace_record>.offset(of: \.source) == 88)
        #expect(MemoryLayout<patrol_namespace_record>.offset(of: \.target) == 216)
        #expect(MemoryLayout<patrol_namespace_record>.offset(of: \.fstype) == 344)
    }

    @Test func ptraceRecord() {
        #expect(MemoryLayout<patrol_ptrace_record>.size == 88)
        #expect(MemoryLayout<patrol_ptrace_record>.offset(of: \.task) == 24)
        #expect(MemoryLayout<patrol_ptrace_record>.offset(of: \.request) == 72)
        #expect(MemoryLayout<patrol_ptrace_record>.offset(of: \.target_pid) == 80)
        #expect(MemoryLayout<patrol_ptrace_record>.offset(of: \.pad) == 84)
    }

    @Test func memfdRecord() {
        #expect(MemoryLayout<patrol_memfd_record>.size == 144)
        #expect(MemoryLayout<patrol_memfd_record>.offset(of: \.task) == 24)
        #expect(MemoryLayout<patrol_memfd_record>.offset(of: \.flags) == 72)
        #expect(MemoryLayout<patrol_memfd_record>.offset(of: \.pad) == 76)
        #expect(MemoryLayout<patrol_memfd_record>.offset(of: \.name) == 80)
    }

    @Test func linkRecord() {
        #expect(MemoryLayout<patrol_link_record>.size == 592)
        #expect(MemoryLayout<patrol_link_record>.offset(of: \.task) == 24)
        #expect(MemoryLayout<patrol_link_record>.offset(of: \.symbolic) == 72)
        #expect(MemoryLayout<patrol_link_record>.offset(of: \.pad) == 73)
        #expect(MemoryLayout<patrol_link_record>.offset(of: \.target) == 80)
        #expect(MemoryLayout<patrol_link_record>.offset(of: \.link_path) == 336)
    }

    @Test func bpfRecord() {
        #expect(MemoryLayout<patrol_bpf_record>.size == 80)
        #expect(MemoryLayout<patrol_bpf_record>.offset(of: \.task) == 24)
        #expect(MemoryLayout<patrol_bpf_record>.offset(of: \.command) == 72)
        #expect(MemoryLayout<patrol_bpf_record>.offset(of: \.pad) == 76)
    }

}
