internal import CProtobufC
internal import CWireProto

/// The fully qualified RPC method names (`patrol.v1.SensorService/SendBatch`) carried in `RPCRequest.method`,
/// read from protoc-c's service descriptors so they cannot drift from the .proto files.
public enum RPCMethods {
    public static let sensorHello = "patrol.v1.SensorService/Hello"
    public static let sendBatch = "patrol.v1.SensorService/SendBatch"
    public static let reportStatus = "patrol.v1.SensorService/ReportStatus"

    /// Every method of `patrol.v1.SensorService`, in .proto order.
    public static let sensorService: [String] = methods(of: patrol__v1__sensor_service__descriptor)

    /// Every method of `patrol.v1.AdminService`, in .proto order.
    public static let adminService: [String] = methods(of: patrol__v1__admin_service__descriptor)

    private static func methods(of descriptor: ProtobufCServiceDescriptor) -> [String] {
        let service = String(cString: descriptor.name)
        return (0..<Int(descriptor.n_methods)).map { index in
            "\(service)/\(String(cString: descriptor.methods[index].name))"
        }
    }
}
