import ITuneBenchCommands

// itune-bench: the benchmark command (benchmarks/itune-bench holds its commands).
ITuneBench.main()
