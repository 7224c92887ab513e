/// Fully qualified RPC method names of `proto/patrol/v1/sensor.proto`'s `SensorService`, as carried in
/// `RpcRequest.method`. One place, so the sensor and the collector can't disagree.
public enum SensorRPC {
    public static let sendBatch = "patrol.v1.SensorService/SendBatch"
    public static let hello = "patrol.v1.SensorService/Hello"
    public static let reportStatus = "patrol.v1.SensorService/ReportStatus"
}
