import COpenCL
import Foundation

/// CLBlast's Xgemm parameters for one device, kept in the tuning table beside ours under
/// `CLBLAST_XGEMM_<NAME>` (our kernels ignore names they do not declare) and applied with
/// `CLBlastOverrideParameters` when the backend first uses CLBlast. CLBlast 1.5.3 (Debian 12)
/// has no tuned entries for recent GPUs and uses generic defaults there; `itune-gpu tune`
/// searches a small grid of these, or a user stores what `clblast_tuner_xgemm` printed.
public enum CLBlastTuning {
    /// The parameters of CLBlast's Xgemm kernel; an override must give every one.
    public static let xgemmNames = ["GEMMK", "KREG", "KWG", "KWI", "MDIMA", "MDIMC", "MWG", "NDIMB", "NDIMC", "NWG",
                                    "SA", "SB", "STRM", "STRN", "VWM", "VWN"]
    static let prefix = "CLBLAST_XGEMM_"

    /// The Xgemm parameters in a tuning's values (`CLBLAST_XGEMM_MWG` → `MWG`), or nil when
    /// any is missing.
    public static func parameters(in values: [String: Int]) -> [String: Int]? {
        var out: [String: Int] = [:]
        for n in xgemmNames {
            guard let v = values[prefix + n] else { return nil }
            out[prefix + n] = v
        }
        return out
    }

    /// Whether Xgemm accepts these values: the divisibility rules of CLBlast's Xgemm tuner
    /// (tiles divisible by the threads times the vector widths; the K tile by the threads'
    /// reshaping for the loads, and by KWI), and a work-group within `maxWorkGroupSize`.
    public static func isValid(_ values: [String: Int], maxWorkGroupSize: Int) -> Bool {
        func v(_ n: String) -> Int { values[prefix + n] ?? 0 }
        let (mwg, nwg, kwg, mdimc, ndimc, mdima, ndimb, vwm, vwn, kwi) =
            (v("MWG"), v("NWG"), v("KWG"), v("MDIMC"), v("NDIMC"), v("MDIMA"), v("NDIMB"), v("VWM"), v("VWN"), v("KWI"))
        guard [mwg, nwg, kwg, mdimc, ndimc, mdima, ndimb, vwm, vwn, kwi].allSatisfy({ $0 > 0 }) else { return false }
        guard mdimc * ndimc <= maxWorkGroupSize else { return false }
        return mwg % (mdimc * vwm) == 0 && nwg % (ndimc * vwn) == 0 && mwg % (mdima * vwm) == 0 && nwg % (ndimb * vwn) == 0
            && (mdimc * ndimc) % mdima == 0 && (mdimc * ndimc) % ndimb == 0
            && kwg % ((mdimc * ndimc) / mdima) == 0 && kwg % ((mdimc * ndimc) / ndimb) == 0 && kwg % kwi == 0
    }

    /// A small grid for `itune-gpu tune` (GEMMK 0, KREG 1, no strided access): square and
    /// oblong tiles of 16 to 128 with 16 to 256 work-items, vector widths 2 to 8, with and
    /// without local memory.
    public static func xgemmCandidates(maxWorkGroupSize: Int) -> [[String: Int]] {
        // MWG NWG KWG MDIMC NDIMC VWM VWN SA SB
        let rows: [[Int]] = [
            [64, 64, 32, 16, 16, 4, 4, 1, 1], [32, 32, 16, 8, 8, 4, 4, 0, 0], [64, 64, 16, 8, 8, 8, 8, 0, 0],
            [128, 128, 16, 16, 16, 8, 8, 1, 1], [64, 64, 16, 8, 8, 4, 4, 0, 0], [32, 64, 32, 8, 16, 4, 4, 1, 1],
            [16, 16, 16, 4, 4, 4, 4, 0, 0], [64, 32, 16, 16, 8, 4, 4, 0, 0], [64, 64, 32, 16, 16, 2, 2, 1, 1],
            [128, 64, 16, 16, 8, 8, 8, 0, 0], [32, 32, 32, 8, 8, 2, 2, 1, 1], [64, 128, 16, 8, 16, 8, 8, 0, 0],
        ]
        return rows.map { r in
            var d = [prefix + "GEMMK": 0, prefix + "KREG": 1, prefix + "KWI": 2, prefix + "STRM": 0, prefix + "STRN": 0]
            d[prefix + "MWG"] = r[0]; d[prefix + "NWG"] = r[1]; d[prefix + "KWG"] = r[2]
            d[prefix + "MDIMC"] = r[3]; d[prefix + "NDIMC"] = r[4]; d[prefix + "MDIMA"] = r[3]; d[prefix + "NDIMB"] = r[4]
            d[prefix + "VWM"] = r[5]; d[prefix + "VWN"] = r[6]; d[prefix + "SA"] = r[7]; d[prefix + "SB"] = r[8]
            return d
        }.filter { isValid($0, maxWorkGroupSize: maxWorkGroupSize) }
    }

    /// Overrides CLBlast's Xgemm (single precision) on `cl`'s device with the parameters in
    /// `values`, and clears CLBlast's compiled-program cache so that the next call builds
    /// with them. Values without the full set do nothing (CLBlast's database stays in force).
    public static func apply(_ values: [String: Int], on cl: OpenCLBackend) throws {
        guard CLBlast.isAvailable, let p = parameters(in: values) else { return }
        let names = xgemmNames
        let cNames = names.map { strdup($0) }
        defer { cNames.forEach { free($0) } }
        var nameArgs = cNames.map { UnsafePointer<CChar>($0) }
        var numbers = names.map { Int(p[prefix + $0] ?? 0) }
        let status = nameArgs.withUnsafeMutableBufferPointer { np in
            numbers.withUnsafeMutableBufferPointer { vp in
                itune_CLBlastOverrideParameters(cl.deviceID, "Xgemm", CLBlastPrecisionSingle, names.count,
                                                np.baseAddress, vp.baseAddress)
            }
        }
        guard status == CLBlastSuccess else {
            throw TensorError.clblast(call: "CLBlastOverrideParameters(Xgemm)", code: status.rawValue)
        }
        _ = itune_CLBlastClearCache()
    }
}
