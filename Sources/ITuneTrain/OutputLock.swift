import Foundation
import ITuneData

/// An advisory lock on a run's output directory: `flock` on `<directory>/.lock`, with the
/// owner's pid written in the file. Why: two runs on one output directory interleave their
/// metrics and overwrite each other's checkpoints and config; the second must fail at once,
/// naming the first. The kernel drops an flock when its process dies, so a lock file left by a
/// killed run is simply taken over (and said so).
public final class OutputLock {
    public let url: URL
    /// What taking the lock found worth saying (a stale lock taken over), or nil.
    public let notice: String?
    private var fd: Int32

    /// Takes the lock on `directory` (which must exist), or throws naming the pid that holds it.
    public init(directory: URL) throws {
        url = directory.appendingPathComponent(".lock")
        fd = open(url.path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw OutputError(path: url.path, errno: errno) }
        let previous = Self.readPID(fd)
        let locked = flock(fd, LOCK_EX | LOCK_NB) == 0
        let code = errno
        if !locked, code == ENOLCK || code == EOPNOTSUPP {
            // Some network file systems have no locks: the run goes on, and says so.
            notice = "\(url.path): this file system has no file locks; a second run on this directory would not be stopped"
        } else if !locked {
            close(fd)
            fd = -1
            guard code == EWOULDBLOCK else { throw OutputError(path: url.path, errno: code) }
            let owner = Self.readPIDAfterRetry(url) ?? previous
            let who = owner.map { $0 == getpid() ? "this process (pid \($0))" : "another run (pid \($0))" } ?? "another run"
            throw OutputError(path: directory.path,
                              cause: "in use by \(who); wait for it to finish or choose another output directory")
        } else if let pid = previous, pid != getpid() {
            notice = kill(pid, 0) == 0 || errno == EPERM
                ? "\(url.path): took over a stale lock from pid \(pid) (it no longer holds it)"
                : "\(url.path): took over a stale lock from pid \(pid) (no longer running)"
        } else {
            notice = nil
        }
        let text = Array("\(getpid())\n".utf8)
        guard ftruncate(fd, 0) == 0, pwrite(fd, text, text.count, 0) == text.count else {
            let code = errno
            release()
            throw OutputError(path: url.path, errno: code)
        }
    }

    deinit { release() }

    /// Gives the lock up (also done when the lock is freed). The file stays, emptied: removing
    /// it would let a run that opened it just before lock an unlinked file beside a new one.
    public func release() {
        guard fd >= 0 else { return }
        _ = ftruncate(fd, 0)
        flock(fd, LOCK_UN)
        close(fd)
        fd = -1
    }

    static func readPID(_ fd: Int32) -> Int32? {
        var buffer = [UInt8](repeating: 0, count: 32)
        let n = pread(fd, &buffer, buffer.count, 0)
        guard n > 0 else { return nil }
        return Int32(String(decoding: buffer[..<n], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
    }

    /// The holder writes its pid just after locking; a second look covers that instant.
    static func readPIDAfterRetry(_ url: URL) -> Int32? {
        for attempt in 0..<3 {
            let fd = open(url.path, O_RDONLY | O_CLOEXEC)
            if fd >= 0 {
                defer { close(fd) }
                if let pid = readPID(fd) { return pid }
            }
            if attempt < 2 { usleep(20_000) }
        }
        return nil
    }
}
