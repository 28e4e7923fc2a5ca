#include "twist/transports/unix.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>
#include <utility>

#include "twist/reactor/errors.h"
#include "twist/reactor/reactor_base.h"

namespace twist::unixsock {
namespace {

bool isAbstract(std::string_view path) {
  return !path.empty() && (path[0] == '\0' || path[0] == '@');
}

// An open-file-description lock on the whole file: held while the descriptor is open, released
// by the kernel when the holder dies however it dies, and (unlike flock or POSIX locks) testable
// without taking it (F_OFD_GETLK), which checkPID needs.
struct flock wholeFile(short type) {
  struct flock l {};
  l.l_type = type;
  l.l_whence = SEEK_SET;
  return l;
}

// Takes "<path>.lock" and writes our pid into it; the descriptor holds the lock (-1: someone
// else holds it, errno EAGAIN; or the file could not be opened).
int takeLock(const std::string& lockPath) {
  int fd = ::open(lockPath.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0) return -1;
  struct flock l = wholeFile(F_WRLCK);
  if (::fcntl(fd, F_OFD_SETLK, &l) != 0) {
    int err = errno;
    ::close(fd);
    errno = err == EACCES ? EAGAIN : err;
    return -1;
  }
  std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, pid.data(), pid.size(), 0) < 0) {
    // The pid is for people reading the file; the lock is what counts.
  }
  return fd;
}

// What a UNIX port leaves behind when it closes: its socket file (only if the file at the path
// is still the one it bound: a later server's is never removed) and its lock.
struct SocketFile {
  std::string path;  // "" for an abstract name
  dev_t dev = 0;
  ino_t ino = 0;
  int lockFd = -1;

  void release() const {
    struct stat st {};
    if (!path.empty() && ::lstat(path.c_str(), &st) == 0 && st.st_dev == dev && st.st_ino == ino) {
      ::unlink(path.c_str());
    }
    // The lock file stays (removing it would let two servers lock two different files); the
    // lock goes with the descriptor.
    if (lockFd >= 0) ::close(lockFd);
  }
};

}  // namespace

std::optional<UNIXCredentials> peerCredentials(int fd) {
  ucred cred{};
  socklen_t len = sizeof cred;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || len != sizeof cred) {
    return std::nullopt;
  }
  return UNIXCredentials{cred.pid, cred.uid, cred.gid};
}

Address withPeerCredentials(Address address, int fd) {
  const UNIXAddress* a = address.get<UNIXAddress>();
  if (a == nullptr) return address;
  return UNIXAddress{a->path, peerCredentials(fd)};
}

bool unlocked(const std::string& path) {
  int fd = ::open((path + ".lock").c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return true;
  struct flock l = wholeFile(F_WRLCK);
  bool free = ::fcntl(fd, F_OFD_GETLK, &l) == 0 && l.l_type == F_UNLCK;
  ::close(fd);
  return free;
}

std::shared_ptr<tcp::Port> listen(ReactorBase& reactor, std::string_view pathView,
                                  std::shared_ptr<Factory> factory,
                                  const ListenUNIXOptions& options) {
  if (!factory) throw std::invalid_argument("listenUNIX needs a factory");
  std::string path(pathView);
  if (isAbstract(path)) path[0] = '\0';
  auto fail = [&](const std::string& why, int err = 0) {
    return CannotListenError::forPath(path, why, err != 0 ? osErrorCode(err) : std::error_code());
  };
  sockaddr_storage ss;
  socklen_t len;
  bool abstract = isAbstract(path);
  if (!makeUNIXSockaddr(path, &ss, &len)) {
    if (path.empty()) throw fail("no path given");
    if (!abstract && path.find('\0') != std::string::npos) {
      throw fail("the path has a NUL byte in it");
    }
    throw fail("the path is longer than a UNIX socket address holds (" +
               std::to_string(sizeof(sockaddr_un::sun_path) - 1) + " bytes)");
  }

  SocketFile file;
  if (!abstract) file.path = path;
  if (options.wantPID && !abstract) {
    file.lockFd = takeLock(path + ".lock");
    if (file.lockFd < 0) {
      int err = errno;
      if (err == EAGAIN) {
        throw fail("another process holds " + path + ".lock: a server is running there",
                   EADDRINUSE);
      }
      throw fail(path + ".lock: " + std::strerror(err), err);
    }
    // We hold the lock, so whoever made a socket file here is gone: it is stale. Anything but a
    // socket is left alone.
    struct stat st {};
    if (::lstat(path.c_str(), &st) == 0) {
      if (!S_ISSOCK(st.st_mode)) {
        ::close(file.lockFd);
        throw fail("a file that is not a socket is in the way", EEXIST);
      }
      ::unlink(path.c_str());
    }
  }

  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    int err = errno;
    if (file.lockFd >= 0) ::close(file.lockFd);
    throw fail(std::strerror(err), err);
  }
  auto closeAndThrow = [&](const std::string& why, int err) {
    ::close(fd);
    if (file.lockFd >= 0) ::close(file.lockFd);
    throw fail(why, err);
  };
  if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    int err = errno;
    std::string why = std::strerror(err);
    if (err == EADDRINUSE && !abstract) {
      why +=
          " (a server is there, or a stale socket file: remove it, or listen with wantPID to "
          "have stale ones replaced safely)";
    }
    closeAndThrow(why, err);
  }
  if (!abstract) {
    // Before listen(): nobody can connect until the mode is what was asked.
    struct stat st {};
    if (::chmod(path.c_str(), options.mode) != 0 || ::lstat(path.c_str(), &st) != 0) {
      int err = errno;
      ::unlink(path.c_str());
      closeAndThrow(std::string("chmod: ") + std::strerror(err), err);
    }
    file.dev = st.st_dev;
    file.ino = st.st_ino;
  }
  int backlog = options.backlog > 0 ? options.backlog : tcp::systemMaxBacklog();
  if (::listen(fd, backlog) != 0) {
    int err = errno;
    file.release();
    ::close(fd);
    throw fail(std::strerror(err), err);
  }
  return tcp::Port::serve(
      reactor, fd, std::move(factory), [&](const std::string& why) { return fail(why); },
      [file] { file.release(); });
}

std::shared_ptr<tcp::Connector> connect(ReactorBase& reactor, std::string_view path,
                                        std::shared_ptr<ClientFactory> factory,
                                        const ConnectUNIXOptions& options) {
  return tcp::Connector::startUNIX(reactor, std::string(path), std::move(factory), options);
}

}  // namespace twist::unixsock
