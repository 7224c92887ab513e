/// The version Patrol's binaries report (`SensorHello.version`, `patrol-sensor --version`, `patrol-collector --version`).
public enum PatrolVersion {
    public static let current = "0.1.0-dev"
}
