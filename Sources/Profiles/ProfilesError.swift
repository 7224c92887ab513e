import Basics

/// Errors from learning, importing and storing application profiles.
public struct ProfilesError: PatrolError {
    public enum Code: String, Sendable {
        /// A profile document that is not valid YAML or not in the ApplicationProfile shape.
        case badDocument = "bad_document"
        /// A workload or container that has no profile.
        case notFound = "not_found"
        /// A behaviour that cannot be added (for example an alert that names no behaviour).
        case badBehaviour = "bad_behaviour"
        /// Reading or writing the store failed.
        case storage = "storage"
    }

    public let code: Code
    public let message: String
    public let cause: Cause?

    public init(_ code: Code, _ message: String, cause: Cause? = nil) {
        self.code = code
        self.message = message
        self.cause = cause
    }
}
