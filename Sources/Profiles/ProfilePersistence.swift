import Basics
import EventModel
import Foundation
import Store

extension ProfileRegistry {
    /// Loads every stored profile into the registry; called once at start-up, before events flow, so that a
    /// restarted collector keeps each profile's state and learning deadline (nothing falls back to learning).
    /// Returns how many container profiles were loaded; a stored profile that cannot be decoded is skipped
    /// and named in `skipped`.
    public func restore(from store: Store) async throws(ProfilesError) -> (loaded: Int, skipped: [String]) {
        let records: [ProfileRecord]
        do {
            records = try await store.profiles()
        } catch {
            throw ProfilesError(.storage, "cannot read profiles from the store", cause: .error(error))
        }
        var byWorkload: [WorkloadKey: [ContainerProfile]] = [:]
        var skipped: [String] = []
        let decoder = JSONDecoder()
        for record in records {
            let workload = WorkloadKey(namespace: record.namespace, kind: record.kind, name: record.name)
            do {
                byWorkload[workload, default: []].append(try decoder.decode(ContainerProfile.self, from: Data(record.body)))
            } catch {
                skipped.append("\(workload) container \(record.container): \(error)")
            }
        }
        for (workload, containers) in byWorkload {
            install(ApplicationProfile(workload: workload, containers: containers), markDirty: false)
        }
        return (records.count - skipped.count, skipped)
    }

    /// Writes the profiles changed since the last save. On failure they stay marked, so the next save
    /// retries them. Returns how many container profiles were written.
    @discardableResult
    public func save(to store: Store, now: EpochNanoseconds = WallClock.now()) async throws(ProfilesError) -> Int {
        let changed = takeChanged()
        guard !changed.isEmpty else { return 0 }
        let encoder = JSONEncoder()
        var records: [ProfileRecord] = []
        do {
            for profile in changed {
                for container in profile.containers {
                    records.append(
                        ProfileRecord(
                            namespace: profile.workload.namespace, kind: profile.workload.kind,
                            name: profile.workload.name, container: container.name, state: container.state.rawValue,
                            updatedAt: now, body: Array(try encoder.encode(container))))
                }
            }
            try await store.saveProfiles(records)
        } catch {
            markChanged(changed)
            throw ProfilesError(.storage, "cannot write \(records.count) profiles to the store", cause: .error(error))
        }
        return records.count
    }

    /// Forgets a workload's profiles in memory and in the store.
    public func reset(_ workload: WorkloadKey, in store: Store) async throws(ProfilesError) -> Bool {
        let hadProfile = reset(workload)
        do {
            let deleted = try await store.deleteProfiles(namespace: workload.namespace, kind: workload.kind, name: workload.name)
            return hadProfile || deleted > 0
        } catch {
            throw ProfilesError(.storage, "cannot delete the profiles of \(workload)", cause: .error(error))
        }
    }
}
