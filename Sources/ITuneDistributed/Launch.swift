import Foundation

/// What the launcher (mpirun, mpiexec, srun) told this process through its environment, read
/// without loading MPI: a plain run never opens libmpi.
public struct LaunchEnvironment: Equatable, Sendable {
    /// Who launched us, e.g. "Open MPI's mpirun" or "Slurm's srun".
    public var launcher: String
    public var size: Int
    public var rank: Int?
    public var localRank: Int?
    public var localSize: Int?
    /// Started by MPICH's Hydra (or Intel MPI's): load a library of the MPICH ABI before Open
    /// MPI's when both are installed.
    public var prefersMPICH = false

    /// nil when no launcher started more than one process (a plain run, or `-np 1`).
    public static func detect(_ env: [String: String] = ProcessInfo.processInfo.environment) -> LaunchEnvironment? {
        func int(_ key: String) -> Int? { env[key].flatMap { Int($0.trimmingCharacters(in: .whitespaces)) } }
        var found: LaunchEnvironment?
        if let size = int("OMPI_COMM_WORLD_SIZE") {
            found = LaunchEnvironment(launcher: "Open MPI's mpirun (OMPI_COMM_WORLD_SIZE=\(size))", size: size,
                                      rank: int("OMPI_COMM_WORLD_RANK"), localRank: int("OMPI_COMM_WORLD_LOCAL_RANK"),
                                      localSize: int("OMPI_COMM_WORLD_LOCAL_SIZE"))
        } else if let size = int("PMI_SIZE") {
            // MPICH's Hydra (mpiexec) and Intel MPI.
            found = LaunchEnvironment(launcher: "an MPI launcher (PMI_SIZE=\(size))", size: size, rank: int("PMI_RANK"),
                                      localRank: int("MPI_LOCALRANKID"), localSize: int("MPI_LOCALNRANKS"), prefersMPICH: true)
        } else if let size = int("PMIX_SIZE") ?? int("SLURM_STEP_NUM_TASKS") {
            // srun sets SLURM_STEP_NUM_TASKS for the tasks of a step (a batch script's own
            // process has the allocation's SLURM_NTASKS but is one task).
            // SLURM_STEP_TASKS_PER_NODE looks like "2(x3),1": the first node's count is ours
            // when the nodes are alike.
            let perNode = env["SLURM_STEP_TASKS_PER_NODE"].flatMap { Int($0.prefix { $0.isNumber }) }
            found = LaunchEnvironment(launcher: env["SLURM_STEP_NUM_TASKS"] != nil ? "Slurm's srun (SLURM_STEP_NUM_TASKS=\(size))"
                                                                                   : "a PMIx launcher (PMIX_SIZE=\(size))",
                                      size: size, rank: int("SLURM_PROCID") ?? int("PMIX_RANK"), localRank: int("SLURM_LOCALID"),
                                      localSize: perNode)
        }
        guard let f = found, f.size > 1 else { return nil }
        return f
    }
}

/// The communicator of this process: MPI when a launcher started several ranks, else a
/// single process (MPI is then never loaded).
public func makeCommunicator(_ env: [String: String] = ProcessInfo.processInfo.environment) throws -> any Communicator {
    guard let launch = LaunchEnvironment.detect(env) else { return SingleProcessCommunicator() }
    return try MPICommunicator(launch: launch)
}
