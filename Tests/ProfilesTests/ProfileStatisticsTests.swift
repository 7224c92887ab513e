import Basics
import EventModel
import Foundation
import Testing

@testable import Profiles

/// What the collector exports as `patrol_profiles{state}`, `patrol_profiles_finalized_total` and
/// `patrol_profiles_failed_total{limit}`.
@Suite struct ProfileStatisticsTests {
    @Test("States are counted, and a learning period that ran out counts as final without another event")
    func statesAndFinalisation() {
        let registry = ProfileRegistry(configuration: tenSeconds)
        var web = Workload()
        _ = registry.observe(web.event(0, exec("/usr/sbin/nginx", ["nginx"])))
        web.deployment = "late"
        web.containerID = "late-container"
        _ = registry.observe(web.event(5, exec("/app", ["app"])))

        var statistics = registry.statistics(now: start + 1_000_000_000)
        #expect(statistics.profiles == [.learning: 2])
        #expect(statistics.finalized == 0)

        // 10 s after the first, 5 s before the second ends; the idle first one is final now.
        statistics = registry.statistics(now: start + 11_000_000_000)
        #expect(statistics.profiles == [.learning: 1, .final: 1])
        #expect(statistics.finalized == 1)
        #expect(registry.takeChanged().count == 2, "the finalised profile is saved as final")
        #expect(registry.statistics(now: start + 12_000_000_000).finalized == 1, "counted once")

        // patrolctl profiles finalize ends the second early: a transition too.
        #expect(registry.finalize(web.key.workload, now: start + 12_000_000_000) == ["nginx"])
        statistics = registry.statistics(now: start + 12_000_000_000)
        #expect(statistics.profiles == [.final: 2])
        #expect(statistics.finalized == 2)
    }

    @Test("A profile failed by a size limit is counted under that limit")
    func failuresByLimit() {
        var configuration = tenSeconds
        configuration.limits = ProfileLimits(execs: 100, opens: 2, dns: 1, endpoints: 100)
        let registry = ProfileRegistry(configuration: configuration)
        var pod = Workload()
        for index in 0..<3 { _ = registry.observe(pod.event(0, open("/data/\(index)", 0))) }
        pod.deployment = "resolver"
        pod.containerID = "resolver-container"
        for name in ["a.example", "b.example"] { _ = registry.observe(pod.event(0, .dns(DNSQuery(name: name)))) }
        let statistics = registry.statistics(now: start)
        #expect(statistics.profiles == [.failed: 2])
        #expect(statistics.failedByLimit == ["opens": 1, "dns": 1])
        #expect(statistics.finalized == 0, "a failed profile never turns final")
    }
}

/// The registry keys running containers by id in a packed form (`ContainerKey`); ids of every shape must stay
/// distinct, because two containers mixed up would share what they already reported.
@Suite struct ContainerKeyTests {
    @Test func idsOfEveryShapeStayDistinct() {
        let hex = String(repeating: "0", count: 63) + "1"
        let ids = [
            hex, String(repeating: "0", count: 63) + "2", String(repeating: "0", count: 63) + "A",
            "1" + String(repeating: "0", count: 63), String(hex.dropLast()), "docker-short", "", hex + "0",
            String(repeating: "f", count: 64),
        ]
        let keys = ids.map(ContainerKey.init)
        #expect(Set(keys).count == ids.count)
        #expect(ContainerKey(hex) == ContainerKey(String(hex)))
        #expect(ContainerKey("docker-short") == ContainerKey("docker-short"))
    }

    @Test("Two containers with ids that differ in one digit each get their own once-per-container reports")
    func containersAreNotMixedUp() {
        let registry = ProfileRegistry(configuration: tenSeconds)
        var first = Workload()
        _ = registry.observe(first.event(0, exec("/usr/sbin/nginx", ["nginx"])))
        #expect(registry.observe(first.event(11, exec("/bin/sh", ["sh"])))?.unexpected.count == 1)
        first.containerID = String(first.containerID.dropLast()) + "2"
        #expect(registry.observe(first.event(12, exec("/bin/sh", ["sh"])))?.unexpected.count == 1, "reported again")
        #expect(registry.observe(first.event(13, exec("/bin/sh", ["sh"])))?.unexpected.count == 0, "once")
    }
}

extension ContainerKeyTests {
    @Test("Numbered ids (equal but for the last digits) spread over the hash table")
    func numberedIDsHashApart() {
        let ids = (0..<1000).map { String(repeating: "0", count: 56) + String(format: "%08x", $0) }
        let hashes = Set(ids.map { ContainerKey($0).hashValue })
        #expect(hashes.count == 1000)
    }
}
