import Basics
import Foundation
public import Logging
import Synchronization

/// A change a watch reports.
public enum KubernetesWatchEventType: String, Sendable, Hashable {
    case added = "ADDED"
    case modified = "MODIFIED"
    case deleted = "DELETED"
}

/// Counters of one `KubernetesListWatch`, for status, metrics and tests.
public struct KubernetesListWatchStats: Sendable, Hashable {
    /// Full lists applied.
    public var lists = 0
    /// Lists that failed (no answer, 401/403/5xx, bad JSON); what was known stays as it was.
    public var listFailures = 0
    /// Watches opened.
    public var watches = 0
    /// Watches that failed (as opposed to ending at the server's timeout); re-watched from the last resource
    /// version after a back-off.
    public var watchFailures = 0
    /// ADDED, MODIFIED and DELETED events applied.
    public var events = 0
    /// BOOKMARK events (resource version moved on, nothing changed).
    public var bookmarks = 0
    /// Watches refused or ended with 410 Gone (resource version too old), each followed by a full list.
    public var expired = 0
    /// Objects in lists or events that did not decode (skipped, the rest applied).
    public var undecodable = 0
    /// Errors by reason (`KubernetesAPIError.Code`).
    public var errors: [String: Int] = [:]
    /// What failed last, for logs and tests; nil once a list or watch succeeds again.
    public var lastError: String?

    public init() {}
}

/// Lists a resource, then watches it from the list's resource version, applying every change as it streams:
/// Kubernetes' list-and-watch, in one place for every resource Patrol follows (the sensor's pods, the collector's
/// bindings).
///
/// - A watch the server ends (its `timeoutSeconds`) is reopened from the last resource version seen (events and
///   bookmarks move it on), without a list.
/// - A watch answered or ended with 410 Gone (HTTP status, or an `ERROR` event carrying a `Status` with code 410:
///   the version is older than the server keeps) is followed by a full list, then a watch from that list.
/// - Any other failure is logged (once per outage, then at debug), counted, and retried after a back-off that
///   doubles up to `maxRetryDelay`; a failed watch is retried from its last version.
/// - Every `listInterval` a full list replaces everything even while the watch is healthy: the safety net.
///
/// `onList` gets every object of a list (it replaces what the caller knew); `onEvent` gets each change. Both run
/// on the task that runs `run()`, one at a time and in order, so the caller's state needs no more ordering.
public final class KubernetesListWatch<Object: Decodable & Sendable>: Sendable {
    public let client: KubernetesAPIClient
    /// The collection's path, such as `/api/v1/pods`.
    public let resource: String
    /// Extra query items (already escaped), such as `fieldSelector=spec.nodeName%3Dnode-a`.
    public let query: String
    /// The resource's plural name, for logs (`pods`, `runtimerulealertbindings`).
    public let name: String
    private let logger: Logger
    private let onList: @Sendable ([Object]) async -> Void
    private let onEvent: @Sendable (KubernetesWatchEventType, Object) async -> Void

    private struct State {
        var stats = KubernetesListWatchStats()
        var failing = false
    }
    private let state = Mutex(State())

    public init(
        client: KubernetesAPIClient, resource: String, query: String = "", name: String, logger: Logger,
        onList: @escaping @Sendable ([Object]) async -> Void,
        onEvent: @escaping @Sendable (KubernetesWatchEventType, Object) async -> Void
    ) {
        self.client = client
        self.resource = resource
        self.query = query
        self.name = name
        var logger = logger
        logger[metadataKey: "resource"] = "\(name)"
        self.logger = logger
        self.onList = onList
        self.onEvent = onEvent
    }

    public var stats: KubernetesListWatchStats { state.withLock { $0.stats } }

    /// Lists and watches until the task is cancelled.
    public func run() async {
        let configuration = client.configuration
        var version: String?
        var consistent = false
        var lastList = ContinuousClock.now
        var delay = configuration.retryDelay
        func backOff() async {
            try? await Task.sleep(for: delay)
            delay = min(delay * 2, configuration.maxRetryDelay)
        }
        while !Task.isCancelled {
            if version == nil || ContinuousClock.now - lastList >= configuration.listInterval {
                // After a 410 the API server's cache may itself be behind what expired: read from etcd then.
                guard let listed = await list(consistent: consistent) else {
                    await backOff()
                    continue
                }
                version = listed
                consistent = false
                lastList = ContinuousClock.now
                delay = configuration.retryDelay
            }
            guard let from = version else { continue }
            let untilList = configuration.listInterval - (ContinuousClock.now - lastList)
            let timeout = max(.seconds(1), min(configuration.watchTimeout, untilList))
            switch await watch(from: from, timeout: timeout) {
            case .ended(let last, let lines):
                version = last
                delay = configuration.retryDelay
                // A server (or proxy) that ends watches at once without a word would otherwise be re-asked in a
                // tight loop.
                if lines == 0 { try? await Task.sleep(for: configuration.retryDelay) }
            case .gone:
                version = nil
                consistent = true
            case .failed(let last):
                version = last
                await backOff()
            }
        }
    }

    /// Lists once and hands the objects to `onList`; returns the list's resource version, or nil on failure.
    @discardableResult
    public func list(consistent: Bool = false) async -> String? {
        // resourceVersion=0: served from the API server's cache, which is what a node-wide agent should load.
        let items = [query, consistent ? "" : "resourceVersion=0"].filter { !$0.isEmpty }
        let path = items.isEmpty ? resource : "\(resource)?\(items.joined(separator: "&"))"
        switch await client.get(ListJSON.self, path: path, what: "list \(name)") {
        case .failure(let error):
            if Task.isCancelled { return nil }
            record(error) { $0.listFailures += 1 }
            return nil
        case .success(let list):
            let objects = list.items.compactMap { $0.value }
            let skipped = list.items.count - objects.count
            await onList(objects)
            let recovered = succeeded { stats in
                stats.lists += 1
                stats.undecodable += skipped
            }
            if skipped > 0 {
                logger.warning(
                    "skipped \(name) the API listed that do not decode", metadata: ["skipped": "\(skipped)"])
            }
            if recovered {
                logger.notice("Kubernetes API answers again", metadata: ["objects": "\(objects.count)"])
            } else {
                logger.debug("listed", metadata: ["objects": "\(objects.count)"])
            }
            return list.metadata?.resourceVersion ?? ""
        }
    }

    private enum WatchOutcome {
        /// The server ended the watch; re-watch from this version.
        case ended(String, lines: Int)
        /// 410: list again.
        case gone
        /// Failed; retry from this version after a back-off.
        case failed(String)
    }

    private func watch(from version: String, timeout: Duration) async -> WatchOutcome {
        let seconds = max(1, Int(timeout.components.seconds))
        let path =
            "\(resource)?\(query.isEmpty ? "" : query + "&")watch=1&resourceVersion="
            + "\(KubernetesAPIClient.queryValue(version))&allowWatchBookmarks=true&timeoutSeconds=\(seconds)"
        let url = client.configuration.baseURL + path
        state.withLock { $0.stats.watches += 1 }
        var last = version
        var lines = 0
        var gone: String?
        var failed: KubernetesAPIError?
        let decoder = JSONDecoder()
        let error = await client.watchLines(path: path, what: "watch \(name)", timeout: timeout) { line in
            lines += 1
            // The first line (an event or a bookmark) shows the watch works: an outage is over.
            if lines == 1, succeeded({ _ in }) {
                logger.notice("Kubernetes API answers again; watching")
            }
            let data = Data(line)
            guard let head = try? decoder.decode(EventHeadJSON.self, from: data) else {
                state.withLock { $0.stats.undecodable += 1 }
                logger.warning(
                    "a watch event is not JSON; skipped",
                    metadata: ["event": "\(KubernetesAPIClient.snippet(String(decoding: line, as: UTF8.self)))"])
                return true
            }
            if let rv = head.object?.metadata?.resourceVersion, !rv.isEmpty { last = rv }
            switch head.type {
            case "BOOKMARK":
                state.withLock { $0.stats.bookmarks += 1 }
                return true
            case "ERROR":
                let status = head.object
                if status?.code == 410 {
                    gone = status?.message ?? "resource version too old"
                } else {
                    // Another error (a 500 from etcd, say): retry from the last version after a back-off.
                    failed = KubernetesAPIError(
                        status.flatMap { ($0.code ?? 0) >= 500 } == true ? .http5xx : .http4xx,
                        what: "watch \(name)", url: url,
                        "ERROR event \(status?.code ?? 0) \(status?.reason ?? ""): \(status?.message ?? "")")
                }
                return false
            default:
                guard let type = KubernetesWatchEventType(rawValue: head.type) else { return true }
                guard let event = try? decoder.decode(EventJSON.self, from: data) else {
                    state.withLock { $0.stats.undecodable += 1 }
                    logger.warning(
                        "a watch event's object does not decode; skipped", metadata: ["type": "\(head.type)"])
                    return true
                }
                await onEvent(type, event.object)
                state.withLock { $0.stats.events += 1 }
                return true
            }
        }
        if let gone {
            state.withLock { $0.stats.expired += 1 }
            logger.info("watch expired (410 Gone); listing again", metadata: ["message": "\(gone)"])
            return .gone
        }
        guard let error = error ?? failed else { return .ended(last, lines: lines) }
        // Shutting down: the aborted transfer is not a failure worth a line.
        if Task.isCancelled { return .failed(last) }
        if error.code == .gone {
            state.withLock { $0.stats.expired += 1 }
            logger.info("watch refused (410 Gone); listing again", metadata: ["error": "\(error.message)"])
            return .gone
        }
        record(error) { $0.watchFailures += 1 }
        return .failed(last)
    }

    /// Clears the failure state; returns whether it was failing (so recovery is logged once).
    private func succeeded(_ update: (inout KubernetesListWatchStats) -> Void) -> Bool {
        state.withLock { state in
            update(&state.stats)
            state.stats.lastError = nil
            defer { state.failing = false }
            return state.failing
        }
    }

    private func record(_ error: KubernetesAPIError, _ update: (inout KubernetesListWatchStats) -> Void) {
        let alreadyFailing = state.withLock { state -> Bool in
            update(&state.stats)
            state.stats.errors[error.code.rawValue, default: 0] += 1
            let previous = state.stats.lastError
            state.stats.lastError = error.message
            defer { state.failing = true }
            return state.failing && previous == state.stats.lastError
        }
        let metadata: Logger.Metadata = [
            "what": "\(error.what)", "url": "\(error.url)", "reason": "\(error.code.rawValue)",
            "error": "\(error.message)",
        ]
        // A lasting outage repeats the same error at every attempt: warn once, then keep it at debug.
        if alreadyFailing {
            logger.debug("Kubernetes API still failing", metadata: metadata)
        } else {
            logger.warning("Kubernetes API request failed", metadata: metadata)
        }
    }

    // MARK: - JSON

    private struct ListMetaJSON: Decodable {
        var resourceVersion: String?
    }

    /// One list item, kept even when it does not decode, so one odd object does not cost the whole list.
    private struct Lenient: Decodable {
        var value: Object?
        init(from decoder: any Decoder) throws { value = try? Object(from: decoder) }
    }

    private struct ListJSON: Decodable {
        var metadata: ListMetaJSON?
        var items: [Lenient]

        private enum CodingKeys: String, CodingKey { case metadata, items }
        init(from decoder: any Decoder) throws {
            let values = try decoder.container(keyedBy: CodingKeys.self)
            metadata = try values.decodeIfPresent(ListMetaJSON.self, forKey: .metadata)
            // `items` must be there (an answer without it is not a list), but may be null for an empty list.
            items = try values.decode([Lenient]?.self, forKey: .items) ?? []
        }
    }

    /// Enough of any event's object to route it: its version, or a `Status`'s code.
    private struct ObjectHeadJSON: Decodable {
        var metadata: ListMetaJSON?
        var code: Int?
        var reason: String?
        var message: String?
    }

    private struct EventHeadJSON: Decodable {
        var type: String
        var object: ObjectHeadJSON?
    }

    private struct EventJSON: Decodable {
        var object: Object
    }
}
