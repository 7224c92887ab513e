import Basics
import Logging
import Profiles
import ServiceLifecycle
import Store

/// Keeps the collector's application profiles in its store: what changed is written every `interval`, and once
/// more at shutdown, so a restart resumes every profile with its state and learning deadline.
struct ProfileStoreService: Service {
    let registry: ProfileRegistry
    let store: Store
    let interval: Duration
    let logger: Logger

    func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try? await Task.sleep(for: interval)
                await save()
            }
        }
        await save()
    }

    private func save() async {
        do {
            let written = try await registry.save(to: store)
            if written > 0 { logger.debug("profiles saved", metadata: ["containers": "\(written)"]) }
        } catch {
            logger.error("cannot save profiles; they stay marked for the next save", metadata: ["error": "\(error)"])
        }
    }
}
