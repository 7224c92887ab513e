/// An HTTP method; any token is allowed, the common ones have names.
public struct HTTPMethod: RawRepresentable, Sendable, Hashable, ExpressibleByStringLiteral, CustomStringConvertible {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue.uppercased() }
    public init(stringLiteral value: String) { self.init(rawValue: value) }
    public var description: String { rawValue }

    public static let get: HTTPMethod = "GET"
    public static let head: HTTPMethod = "HEAD"
    public static let post: HTTPMethod = "POST"
    public static let put: HTTPMethod = "PUT"
    public static let patch: HTTPMethod = "PATCH"
    public static let delete: HTTPMethod = "DELETE"
}

/// Header fields in order; names compare case-insensitively, repeated names are kept.
public struct HTTPHeaders: Sendable, Equatable, Sequence, ExpressibleByDictionaryLiteral, CustomStringConvertible {
    public struct Field: Sendable, Equatable {
        public var name: String
        public var value: String
        public init(name: String, value: String) {
            self.name = name
            self.value = value
        }
    }
    public private(set) var fields: [Field] = []

    public init() {}
    public init(_ pairs: [(String, String)]) { fields = pairs.map { Field(name: $0.0, value: $0.1) } }
    public init(dictionaryLiteral elements: (String, String)...) { self.init(elements) }

    /// The first value of `name`, or nil. Setting replaces every field of that name (nil removes them).
    public subscript(name: String) -> String? {
        get { fields.first { $0.name.lowercased() == name.lowercased() }?.value }
        set {
            let lower = name.lowercased()
            guard let newValue else {
                fields.removeAll { $0.name.lowercased() == lower }
                return
            }
            guard let index = fields.firstIndex(where: { $0.name.lowercased() == lower }) else {
                fields.append(Field(name: name, value: newValue))
                return
            }
            fields[index].value = newValue
            var kept = false
            fields = fields.filter { field in
                guard field.name.lowercased() == lower else { return true }
                defer { kept = true }
                return !kept
            }
        }
    }

    /// Every value of `name`, in order.
    public func values(for name: String) -> [String] {
        fields.filter { $0.name.lowercased() == name.lowercased() }.map(\.value)
    }

    public func contains(_ name: String) -> Bool { self[name] != nil }

    /// Adds a field, keeping existing ones of the same name.
    public mutating func add(name: String, value: String) { fields.append(Field(name: name, value: value)) }

    public var isEmpty: Bool { fields.isEmpty }
    public func makeIterator() -> IndexingIterator<[Field]> { fields.makeIterator() }
    public var description: String { fields.map { "\($0.name): \($0.value)" }.joined(separator: ", ") }
}

/// How a request authenticates.
public enum HTTPAuth: Sendable, Equatable {
    case none
    /// `Authorization: Basic` (username and password).
    case basic(username: String, password: String)
    /// `Authorization: Bearer <token>`, e.g. a Kubernetes service account token.
    case bearer(token: String)
    /// `Authorization: ApiKey <key>`, Elasticsearch's API key scheme (the key as base64 `id:api_key`).
    case apiKey(String)
    /// Any other header carrying a key, e.g. `X-API-Key`.
    case header(name: String, value: String)
}

/// TLS settings for `https` URLs. Paths are PEM files.
public struct TLSOptions: Sendable, Equatable {
    /// CA bundle to verify the server with, instead of the system store.
    public var caFile: String?
    /// Client certificate for mutual TLS.
    public var clientCertificateFile: String?
    /// Private key of the client certificate.
    public var clientKeyFile: String?
    public var clientKeyPassword: String?
    /// Skip server certificate and host name verification. For tests and labs only.
    public var insecureSkipVerify: Bool

    public init(
        caFile: String? = nil, clientCertificateFile: String? = nil, clientKeyFile: String? = nil,
        clientKeyPassword: String? = nil, insecureSkipVerify: Bool = false
    ) {
        self.caFile = caFile
        self.clientCertificateFile = clientCertificateFile
        self.clientKeyFile = clientKeyFile
        self.clientKeyPassword = clientKeyPassword
        self.insecureSkipVerify = insecureSkipVerify
    }
}

/// One HTTP request.
public struct HTTPRequest: Sendable, Equatable {
    public var method: HTTPMethod
    /// An absolute `http` or `https` URL, query included.
    public var url: String
    public var headers: HTTPHeaders
    public var body: [UInt8]
    /// Whole-request timeout; nil uses the client's default.
    public var timeout: Duration?
    /// Overrides the client's default authentication when set.
    public var auth: HTTPAuth?

    public init(
        method: HTTPMethod = .get, url: String, headers: HTTPHeaders = HTTPHeaders(), body: [UInt8] = [],
        timeout: Duration? = nil, auth: HTTPAuth? = nil
    ) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.timeout = timeout
        self.auth = auth
    }
}

/// A complete response. Any status is a response, not an error: callers decide what 4xx/5xx mean.
public struct HTTPResponse: Sendable, Equatable {
    public var status: Int
    public var headers: HTTPHeaders
    public var body: [UInt8]
    /// The URL that answered (differs from the request's after redirects).
    public var url: String

    public init(status: Int, headers: HTTPHeaders, body: [UInt8], url: String) {
        self.status = status
        self.headers = headers
        self.body = body
        self.url = url
    }

    public var bodyText: String { String(decoding: body, as: UTF8.self) }
    public var isSuccess: Bool { (200..<300).contains(status) }
}
