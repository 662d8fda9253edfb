// swift-tools-version:6.0
import PackageDescription

// No unsafeFlags here: another package must be able to depend on ITune. CPU-specific code
// generation (e.g. -target-cpu) is passed by the Makefile instead.
let v5: [SwiftSetting] = [.swiftLanguageMode(.v5)]

let package = Package(
    name: "itune-gpu",
    platforms: [.macOS(.v13)],
    products: [
        .library(name: "ITune", targets: ["ITune"]),
        .executable(name: "itune-gpu", targets: ["itune-gpu"]),
        .executable(name: "itune-bench", targets: ["itune-bench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.0"),
    ],
    targets: [
        // OpenCL and CLBlast headers plus a loader that dlopen()s libOpenCL.so.1 and
        // libclblast.so.1 at run time. Nothing links against them, so the binaries start
        // (and fall back to the CPU path) on machines without an ICD loader.
        .target(name: "COpenCL", path: "Sources/COpenCL", linkerSettings: [.linkedLibrary("dl")]),
        // The OpenCL C sources, one file per kernel family, and the tuning table, shipped as
        // resources. KernelSignatureTests fails when a file in Kernels/ is missing here.
        // The MPI calls data-parallel training makes, with a loader that dlopen()s libmpi at run
        // time (Open MPI or the MPICH ABI): a plain run never loads it.
        .target(name: "CMPI", path: "Sources/CMPI", linkerSettings: [.linkedLibrary("dl")]),
        .target(name: "ITuneKernels", path: "Kernels",
                sources: ["KernelSources.swift"],
                resources: [.copy("attention.cl"), .copy("convert.cl"), .copy("elementwise.cl"), .copy("embedding.cl"), .copy("gemm.cl"), .copy("gemm_blocked.cl"), .copy("gemm_skinny.cl"), .copy("loss.cl"),
                            .copy("norm.cl"), .copy("optim.cl"), .copy("reduce.cl"), .copy("rope.cl"), .copy("softmax.cl"), .copy("storage.cl"),
                            .copy("tuning.json")],
                swiftSettings: v5),
        // The CPU GEMM's micro-kernels with wider instructions than the build's baseline
        // (AVX2+FMA, AVX-512), each under its own target attribute, and the cpuid / hwcap
        // probe that picks one when the process starts (CPU/GemmDispatch.swift).
        .target(name: "CGemmKernels", path: "Sources/CGemmKernels"),
        .target(name: "ITuneTensor", dependencies: ["COpenCL", "CGemmKernels", "ITuneKernels"], swiftSettings: v5),
        .target(name: "ITuneJinja", swiftSettings: v5),
        .target(name: "ITuneTokenizers", dependencies: ["ITuneJinja"], swiftSettings: v5),
        .target(name: "ITuneModels", dependencies: ["ITuneTensor"], swiftSettings: v5),
        .target(name: "ITuneData", dependencies: ["ITuneTokenizers"], swiftSettings: v5),
        .target(name: "ITuneDistributed", dependencies: ["CMPI"], swiftSettings: v5),
        .target(name: "ITuneTrain", dependencies: ["ITuneTensor", "ITuneTokenizers", "ITuneModels", "ITuneData", "ITuneDistributed"],
                swiftSettings: v5),
        // GGUF (llama.cpp) and mlx-lm exports; above Models and Tokenizers, below the CLI.
        .target(name: "ITuneExport", dependencies: ["ITuneTensor", "ITuneModels", "ITuneTokenizers"], swiftSettings: v5),
        .target(name: "ITune", dependencies: ["ITuneTensor", "ITuneJinja", "ITuneTokenizers", "ITuneModels", "ITuneData", "ITuneDistributed",
                                              "ITuneTrain", "ITuneExport"],
                swiftSettings: v5),
        .executableTarget(name: "itune-gpu",
                          dependencies: ["ITune", "ITuneBenchCommands", .product(name: "ArgumentParser", package: "swift-argument-parser"),
                                         .product(name: "Yams", package: "Yams")],
                          swiftSettings: v5),
        // itune-bench's commands, a library so that the GPU kit ships one binary: itune-gpu run
        // under the name itune-bench (a link in the kit) is the benchmark command.
        .target(name: "ITuneBenchCommands",
                dependencies: ["ITune", .product(name: "ArgumentParser", package: "swift-argument-parser")],
                path: "benchmarks/itune-bench",
                swiftSettings: v5),
        .executableTarget(name: "itune-bench", dependencies: ["ITuneBenchCommands"], path: "benchmarks/itune-bench-main",
                          swiftSettings: v5),
        .testTarget(name: "ITuneTensorTests", dependencies: ["ITuneTensor"], swiftSettings: v5),
        .testTarget(name: "ITuneDataTests", dependencies: ["ITuneData", "ITuneTokenizers", "ITuneJinja"], swiftSettings: v5),
        .testTarget(name: "ITuneModelsTests", dependencies: ["ITuneModels", "ITuneTensor"], swiftSettings: v5),
        .testTarget(name: "ITuneExportTests", dependencies: ["ITuneExport", "ITuneModels", "ITuneTensor"], swiftSettings: v5),
        .testTarget(name: "ITuneJinjaTests", dependencies: ["ITuneJinja"], swiftSettings: v5),
        .testTarget(name: "ITuneTokenizersTests", dependencies: ["ITuneTokenizers", "ITuneJinja"], swiftSettings: v5),
        .testTarget(name: "ITuneDistributedTests", dependencies: ["ITuneDistributed"], swiftSettings: v5),
        .testTarget(name: "ITuneTrainTests", dependencies: ["ITuneTrain", "ITune", "ITuneData", "ITuneModels", "ITuneTensor", "ITuneTokenizers"],
                    swiftSettings: v5),
    ]
)
