import EventModel
import Foundation
import Testing
import TestSupport
@testable import SensorApp

@Suite struct ExecutableCacheTests {
    private func event(pid: Int32, _ payload: Payload) -> Event {
        Event(time: 1, node: "n", process: ProcessInfo(pid: pid, comm: "x"), payload: payload)
    }

    @Test func eventsAfterAnExecCarryItsExecutable() {
        var cache = ExecutableCache(procRoot: "/nonexistent")
        var exec = event(pid: 7, .exec(Exec(path: "/usr/bin/curl")))
        cache.annotate(&exec)
        #expect(exec.process.exe == "/usr/bin/curl")
        var open = event(pid: 7, .open(FileOpen(path: "/etc/shadow")))
        cache.annotate(&open)
        #expect(open.process.exe == "/usr/bin/curl")
        var exit = event(pid: 7, .exit(Exit()))
        cache.annotate(&exit)
        #expect(exit.process.exe == "/usr/bin/curl")
        // After exit the pid is forgotten: a reused pid must not inherit the old executable.
        var reused = event(pid: 7, .open(FileOpen(path: "/tmp/a")))
        cache.annotate(&reused)
        #expect(reused.process.exe == "")
    }

    @Test func aProcessFirstSeenAfterItsExecIsLookedUpInProc() throws {
        let root = try TemporaryDirectory(prefix: "proc")
        defer { root.remove() }
        try FileManager.default.createDirectory(atPath: root.file("42"), withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: root.file("42/exe"), withDestinationPath: "/usr/sbin/nginx")
        var cache = ExecutableCache(procRoot: root.path)
        var connect = event(pid: 42, .connect(NetworkFlow(remoteAddress: "10.0.0.1", remotePort: 3333)))
        cache.annotate(&connect)
        #expect(connect.process.exe == "/usr/sbin/nginx")
    }
}
