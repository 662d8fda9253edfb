import Foundation

// Everything a run writes goes through here (checkpoints and metrics in ITuneTrain, mixture and
// generated task files here): whole files are written to a temporary name and
// renamed (a crash leaves the old file or the new one, never half of one), appends use the
// throwing POSIX calls (Foundation's non-throwing `FileHandle.write` traps on a full disk), and
// every failure is one line naming the path and the operating system's cause.

/// A file or directory of a run's output that could not be written, named with the cause.
public struct OutputError: Error, CustomStringConvertible, Equatable {
    public var path: String
    /// The operating system's cause ("No space left on device"), or our own reason.
    public var cause: String
    /// The POSIX error number, when the cause is one.
    public var code: Int32?

    public init(path: String, cause: String, code: Int32? = nil) {
        self.path = path
        self.cause = cause
        self.code = code
    }

    /// From a POSIX error number.
    public init(path: String, errno code: Int32) {
        self.init(path: path, cause: String(cString: strerror(code)), code: code)
    }

    public var description: String {
        code == ENOSPC ? "no space left on \(path) (\(cause))" : "cannot write \(path): \(cause)"
    }

    /// `error` as one line naming `path`: a Foundation error's POSIX cause where it carries one,
    /// instead of its userInfo dump.
    public static func from(_ error: Error, path: String) -> Error {
        if error is OutputError { return error }
        let ns = error as NSError
        if ns.domain == NSPOSIXErrorDomain { return OutputError(path: path, errno: Int32(ns.code)) }
        if let underlying = ns.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain {
            return OutputError(path: path, errno: Int32(underlying.code))
        }
        switch ns.code {
        case NSFileWriteOutOfSpaceError: return OutputError(path: path, errno: ENOSPC)
        case NSFileWriteVolumeReadOnlyError: return OutputError(path: path, errno: EROFS)
        case NSFileWriteNoPermissionError: return OutputError(path: path, errno: EACCES)
        default: return OutputError(path: path, cause: ns.localizedDescription)
        }
    }
}

/// The writes of a run's output directory.
public enum OutputFiles {
    /// A write error to simulate, for tests: every write or append to a path whose last
    /// component satisfies `matches` fails with `errno` (a full disk is ENOSPC), as the
    /// operating system's would. Task-local, so a test sets it around the code it checks:
    /// `OutputFiles.$injectedFault.withValue(.init(errno: ENOSPC) { $0 == "metrics.jsonl" }) { … }`.
    @TaskLocal public static var injectedFault: InjectedFault?

    /// See `injectedFault`.
    public struct InjectedFault: Sendable {
        public var errno: Int32
        public var matches: @Sendable (String) -> Bool

        public init(errno: Int32, matches: @escaping @Sendable (String) -> Bool) {
            self.errno = errno
            self.matches = matches
        }
    }

    /// The prefix of every temporary file or directory we write (`.tmp-…`), so that leftovers of
    /// a killed run can be found and removed at the next start.
    public static let temporaryPrefix = ".tmp-"

    /// The temporary name `url` is written under before the rename.
    public static func temporaryURL(for url: URL) -> URL {
        url.deletingLastPathComponent().appendingPathComponent("\(temporaryPrefix)\(url.lastPathComponent)-\(getpid())")
    }

    /// Throws the injected fault when one matches `url` (see `injectedFault`); for writers
    /// outside this file.
    public static func checkFault(_ url: URL) throws {
        if let f = injectedFault, f.matches(url.lastPathComponent) { throw OutputError(path: url.path, errno: f.errno) }
    }

    /// Writes `data` to a temporary file beside `url` and renames it over `url`.
    public static func writeAtomically(_ data: Data, to url: URL) throws {
        let tmp = temporaryURL(for: url)
        do {
            try write(data, to: tmp, flags: O_WRONLY | O_CREAT | O_TRUNC, sync: true)
            try checkFault(url)
            guard rename(tmp.path, url.path) == 0 else { throw OutputError(path: url.path, errno: errno) }
        } catch let e as OutputError {
            unlink(tmp.path)
            throw OutputError(path: url.path, cause: e.cause, code: e.code)  // the file the caller named
        }
    }

    /// Appends `data` to `url` (created when absent).
    public static func append(_ data: Data, to url: URL) throws {
        try write(data, to: url, flags: O_WRONLY | O_CREAT | O_APPEND, sync: false)
    }

    /// Creates `url` as a directory (and its parents) and checks that it can be written to: a
    /// path that is a file, a read-only directory or file system is one error naming the path.
    public static func prepareDirectory(_ url: URL) throws {
        try checkFault(url)
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir) {
            guard isDir.boolValue else {
                throw OutputError(path: url.path, cause: "exists and is a file, not a directory (choose another output directory)")
            }
        } else {
            do { try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true) } catch {
                throw nearestCause(error, creating: url)
            }
        }
        guard access(url.path, W_OK | X_OK) == 0 else { throw OutputError(path: url.path, errno: errno) }
    }

    /// Why `url` could not be created: the first ancestor that is a file or cannot be written.
    static func nearestCause(_ error: Error, creating url: URL) -> Error {
        var dir = url.deletingLastPathComponent()
        while dir.path != "/" && !dir.path.isEmpty {
            var isDir: ObjCBool = false
            if FileManager.default.fileExists(atPath: dir.path, isDirectory: &isDir) {
                if !isDir.boolValue { return OutputError(path: dir.path, cause: "is a file, not a directory") }
                if access(dir.path, W_OK | X_OK) != 0 { return OutputError(path: dir.path, errno: errno) }
                break
            }
            dir = dir.deletingLastPathComponent()
        }
        return OutputError.from(error, path: url.path)
    }

    /// Removes the temporary files and directories a killed save left in `directory`; returns
    /// their names.
    @discardableResult
    public static func removeLeftovers(in directory: URL) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        var removed: [String] = []
        for name in names.sorted() where name.hasPrefix(temporaryPrefix) || isLegacyTemporary(name) {
            if (try? FileManager.default.removeItem(at: directory.appendingPathComponent(name))) != nil { removed.append(name) }
        }
        return removed
    }

    /// Temporary names written before `temporaryPrefix` (`.loss_curve.svg.tmp`, `.x.tmp-PID`).
    static func isLegacyTemporary(_ name: String) -> Bool {
        name.hasPrefix(".") && (name.hasSuffix(".tmp") || name.range(of: #"\.tmp-[0-9]+$"#, options: .regularExpression) != nil)
    }

    private static func write(_ data: Data, to url: URL, flags: Int32, sync: Bool) throws {
        try checkFault(url)
        let fd = open(url.path, flags | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw OutputError(path: url.path, errno: errno) }
        var failure: Int32 = 0
        data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
            guard let base = raw.baseAddress else { return }
            var done = 0
            while done < raw.count {
                let n = Foundation.write(fd, base + done, raw.count - done)
                if n < 0 {
                    if errno == EINTR { continue }
                    failure = errno
                    return
                }
                done += n
            }
        }
        if failure == 0, sync, fsync(fd) != 0, errno != EINVAL { failure = errno }
        if close(fd) != 0, failure == 0 { failure = errno }
        if failure != 0 { throw OutputError(path: url.path, errno: failure) }
    }
}
