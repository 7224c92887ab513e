import PatternMatching
import Testing

@Suite struct CompiledPatternTests {
    @Test func matchesAndMisses() throws {
        let pattern = try CompiledPattern(#"^/usr/(s?bin)/(curl|wget)$"#)
        #expect(pattern.matches("/usr/bin/curl"))
        #expect(pattern.matches("/usr/sbin/wget"))
        #expect(!pattern.matches("/usr/local/bin/curl"))
        #expect(!pattern.matches(""))
        #expect(pattern.isJIT)
    }

    @Test func unanchoredSearchAndRange() throws {
        let pattern = try CompiledPattern("nc -e")
        #expect(pattern.matches("sh -c nc -e /bin/sh 10.0.0.1"))
        #expect(pattern.firstMatch(in: "xx nc -e") == 3..<8)
        #expect(pattern.firstMatch(in: "nothing") == nil)
    }

    @Test func options() throws {
        let caseless = try CompiledPattern("xmrig", options: .caseInsensitive)
        #expect(caseless.matches("/tmp/XMRig"))
        let anchored = try CompiledPattern("bin", options: .anchored)
        #expect(!anchored.matches("/bin"))
        #expect(anchored.matches("bin/sh"))
    }

    @Test func unicodeSubjects() throws {
        let pattern = try CompiledPattern("^/tmp/.é+$")
        #expect(pattern.matches("/tmp/xéé"))
        #expect(!pattern.matches("/tmp/xa"))
    }

    @Test func compileErrorCarriesMessageAndOffset() {
        do {
            _ = try CompiledPattern("abc(def")
            Issue.record("expected an error")
        } catch {
            #expect(error.code == .badRegex)
            #expect(error.reason.contains("missing closing parenthesis"))
            #expect(error.offset == 7)
            #expect(error.message.contains("offset 7"))
        }
        #expect(throws: PatternMatchingError.self) { try CompiledPattern("[z-a]") }
    }

    @Test func concurrentMatchingIsSafe() async throws {
        let pattern = try CompiledPattern(#"^/proc/\d+/mem$"#)
        let hits = await withTaskGroup(of: Int.self) { group in
            for worker in 0..<8 {
                group.addTask {
                    var count = 0
                    for i in 0..<20_000 where pattern.matches("/proc/\(i + worker)/mem") && !pattern.matches("/proc/x/mem") {
                        count += 1
                    }
                    return count
                }
            }
            return await group.reduce(0, +)
        }
        #expect(hits == 8 * 20_000)
    }
}

@Suite struct GlobPatternTests {
    @Test func starDoesNotCrossSlash() throws {
        let glob = try GlobPattern("/proc/*/mem")
        #expect(glob.matches("/proc/123/mem"))
        #expect(!glob.matches("/proc/1/task/2/mem"))
        #expect(!glob.matches("/proc/123/memx"))
    }

    @Test func doubleStarCrossesSlash() throws {
        let glob = try GlobPattern("/var/run/secrets/**")
        #expect(glob.matches("/var/run/secrets/kubernetes.io/serviceaccount/token"))
        #expect(!glob.matches("/var/run/other"))
        let middle = try GlobPattern("/home/**/.ssh/id_*")
        #expect(middle.matches("/home/alice/x/.ssh/id_rsa"))
        #expect(!middle.matches("/home/alice/.ssh/known_hosts"))
    }

    @Test func questionMarkAndClasses() throws {
        #expect(try GlobPattern("/dev/tty?").matches("/dev/tty1"))
        #expect(try !GlobPattern("/dev/tty?").matches("/dev/tty12"))
        #expect(try GlobPattern("/bin/[bd]ash").matches("/bin/dash"))
        #expect(try !GlobPattern("/bin/[!bd]ash").matches("/bin/bash"))
        #expect(try GlobPattern("/bin/[^bd]ash").matches("/bin/zash"))
        #expect(try GlobPattern("/tmp/[a-c]*").matches("/tmp/beta"))
        #expect(try !GlobPattern("/tmp/[a-c]*").matches("/tmp/delta"))
    }

    @Test func literalsAreEscaped() throws {
        let glob = try GlobPattern("/etc/ld.so.preload")
        #expect(glob.matches("/etc/ld.so.preload"))
        #expect(!glob.matches("/etc/ldXsoXpreload"))
        #expect(try GlobPattern(#"/tmp/\*"#).matches("/tmp/*"))
        #expect(try !GlobPattern(#"/tmp/\*"#).matches("/tmp/a"))
        #expect(try GlobPattern("a+b(c)").matches("a+b(c)"))
    }

    @Test func notPathAware() throws {
        let glob = try GlobPattern("*.example.com", pathAware: false)
        #expect(glob.matches("a/b.example.com"))
        #expect(try GlobPattern("*.EXAMPLE.com", caseInsensitive: true).matches("x.example.COM"))
    }

    @Test func badGlobs() {
        #expect(throws: PatternMatchingError.self) { try GlobPattern("/tmp/[abc") }
        #expect(throws: PatternMatchingError.self) { try GlobPattern("trailing\\") }
    }
}
