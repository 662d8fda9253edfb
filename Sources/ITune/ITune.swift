// The umbrella library: `import ITune` brings in every layer of itune-gpu.
@_exported import ITuneTensor
@_exported import ITuneJinja
@_exported import ITuneTokenizers
@_exported import ITuneModels
@_exported import ITuneData
@_exported import ITuneDistributed
@_exported import ITuneTrain
@_exported import ITuneExport
