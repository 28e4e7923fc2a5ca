#include "twist/transports/tcp_port.h"

#include <arpa/inet.h>
#include <event2/listener.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>

#include "twist/reactor/errors.h"
#include "twist/reactor/guard.h"
#include "twist/reactor/log.h"
#include "twist/reactor/reactor_base.h"
#include "twist/transports/tcp_connection.h"
#include "twist/transports/unix.h"

namespace twist::tcp {
namespace {

int openSpare() { return ::open("/dev/null", O_RDONLY | O_CLOEXEC); }

bool outOfDescriptors(int err) {
  return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM;
}

// How long accepting pauses when even the spare descriptor could not shed a connection.
constexpr double kExhaustedRetrySeconds = 0.1;

}  // namespace

Port::Port(ReactorBase& reactor, std::shared_ptr<Factory> factory)
    : reactor_(&reactor), factory_(std::move(factory)) {}

int systemMaxBacklog() {
  // Read once: a listen() per port does not need a file read each time.
  static const int value = [] {
    int n = 0;
    if (std::FILE* f = std::fopen("/proc/sys/net/core/somaxconn", "r")) {
      if (std::fscanf(f, "%d", &n) != 1) n = 0;
      std::fclose(f);
    }
    return n > 0 ? n : SOMAXCONN;
  }();
  return value;
}

std::shared_ptr<Port> Port::listen(ReactorBase& reactor, uint16_t port,
                                   std::shared_ptr<Factory> factory,
                                   const ListenTCPOptions& options) {
  if (!factory) throw std::invalid_argument("listenTCP needs a factory");
  int fd = bindListeningSocket(port, options);
  return serve(reactor, fd, std::move(factory), [&](const std::string& why) {
    return CannotListenError(options.interface, port, why);
  });
}

int bindListeningSocket(uint16_t port, const ListenTCPOptions& options) {
  const std::string& iface = options.interface;
  sockaddr_storage ss{};
  socklen_t len;
  if (iface.find('\0') != std::string::npos) {
    std::string shown;
    for (char c : iface) shown += c == '\0' ? std::string("\\0") : std::string(1, c);
    throw CannotListenError(shown, port, "the interface has a NUL byte in it");
  }
  if (!parseBindAddress(iface, port, &ss, &len)) {
    throw CannotListenError(iface, port, "'" + iface + "' is not an IPv4 or IPv6 address");
  }

  int fd = ::socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    int err = errno;
    throw CannotListenError::fromErrno(iface, port, err);
  }
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (options.reusePort && ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
    int err = errno;
    ::close(fd);
    throw CannotListenError(iface, port, std::string("SO_REUSEPORT: ") + std::strerror(err),
                            osErrorCode(err));
  }
  if (ss.ss_family == AF_INET6) {
    int v6only = options.ipv6Only ? 1 : 0;
    ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only);
  }
  if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0 ||
      ::listen(fd, options.backlog > 0 ? options.backlog : systemMaxBacklog()) != 0) {
    int err = errno;
    ::close(fd);
    throw CannotListenError::fromErrno(iface, port, err);
  }
  return fd;
}

int duplicateSocket(int fd, bool listening, sockaddr_storage* address, socklen_t* addressLen) {
  int type = 0, accepting = 0;
  socklen_t optLen = sizeof type;
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  bool ok =
      ::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &optLen) == 0 && type == SOCK_STREAM &&
      ::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &(optLen = sizeof accepting)) == 0 &&
      (accepting != 0) == listening &&
      (listening ? ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len)
                 : ::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len)) == 0 &&
      (ss.ss_family == AF_INET || ss.ss_family == AF_INET6 ||
       (listening && ss.ss_family == AF_UNIX));
  if (!ok) {
    throw std::invalid_argument(
        std::string(listening ? "adoptStreamPort" : "adoptStreamConnection") + ": descriptor " +
        std::to_string(fd) + " is not a " + (listening ? "listening" : "connected") +
        (listening ? " TCP or UNIX stream socket" : " TCP socket"));
  }
  if (address != nullptr) {
    *address = ss;
    *addressLen = len;
  }
  // Ours is a duplicate: the caller keeps (and closes) the descriptor it passed, as in Twisted.
  int own = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (own >= 0) ::fcntl(own, F_SETFL, ::fcntl(own, F_GETFL) | O_NONBLOCK);
  return own;
}

std::shared_ptr<Port> Port::adopt(ReactorBase& reactor, int fd, std::shared_ptr<Factory> factory) {
  if (!factory) throw std::invalid_argument("adoptStreamPort needs a factory");
  int own = duplicateSocket(fd, true);
  if (own < 0) {
    int err = errno;
    throw CannotListenError::fromErrno("", 0, err);
  }
  return serve(reactor, own, std::move(factory),
               [](const std::string& why) { return CannotListenError("", 0, why); });
}

std::shared_ptr<Port> Port::serve(ReactorBase& reactor, int fd, std::shared_ptr<Factory> factory,
                                  const std::function<CannotListenError(const std::string&)>& where,
                                  std::function<void()> onClose) {
  if (!reactor.canWatch(fd)) {
    ::close(fd);
    if (onClose) onClose();
    throw where(reactor.cannotWatch(fd));
  }
  sockaddr_storage bound{};
  socklen_t boundLen = sizeof bound;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &boundLen);

  std::shared_ptr<Port> p(new Port(reactor, std::move(factory)));
  p->host_ = Address::fromSockaddr(reinterpret_cast<sockaddr*>(&bound), boundLen);
  p->onClose_ = std::move(onClose);
  try {
    p->factory_->doStart();  // may throw: then nothing listens
  } catch (...) {
    p->fd_ = fd;  // ~Port closes it (and runs onClose)
    throw;
  }
  // The port owns the descriptor (no LEV_OPT_CLOSE_ON_FREE): libevent defers freeing a listener
  // whose accept callback is running, and stopListening must free the port at once even from
  // inside that callback (a protocol's connectionMade).
  p->fd_ = fd;
  p->listener_ = evconnlistener_new(reactor.eventBase(), &Port::onAccept, p.get(),
                                    LEV_OPT_CLOSE_ON_EXEC, 0, fd);  // 0: already listening
  if (p->listener_ == nullptr) {
    p->factory_->doStop();
    throw where("evconnlistener_new failed");  // ~Port closes fd
  }
  evconnlistener_set_error_cb(p->listener_, &Port::onAcceptError);
  p->spareFd_ = openSpare();
  reactor.addSelectable(p);
  return p;
}

void Port::closeSocket() {
  if (listener_ != nullptr) {
    // Disabled first, so that libevent takes the descriptor out of epoll while it is still
    // open; the listener itself may live on until its running callback returns.
    evconnlistener_disable(listener_);
    evconnlistener_free(listener_);
    listener_ = nullptr;
  }
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  if (spareFd_ >= 0) ::close(spareFd_);
  spareFd_ = -1;
  if (auto done = std::move(onClose_)) {
    onClose_ = nullptr;
    done();
  }
}

Port::~Port() { closeSocket(); }

Deferred<void> Port::stopListening() {
  if (listener_ == nullptr) return succeed();
  closeSocket();
  if (retry_.active()) retry_.cancel();
  factory_->doStop();
  ReactorBase* r = reactor_;
  reactor_ = nullptr;
  r->removeSelectable(this);  // may free this object once the callback returns
  return succeed();
}

void Port::onAccept(evconnlistener*, int fd, struct sockaddr* sa, int len, void* arg) {
  detail::guardCallback("tcp.Port", "accepting a connection",
                        [&] { static_cast<Port*>(arg)->accept(fd, sa, len); });
}

void Port::accept(int fd, const struct sockaddr* sa, int len) {
  // buildProtocol may call stopListening(), which forgets the reactor: keep it at hand.
  ReactorBase& reactor = *reactor_;
  if (exhausted_) {
    exhausted_ = false;
    log::info("tcp.Port", "Accepting connections again on " + host_.toString() + ".");
  }
  if (spareFd_ < 0) spareFd_ = openSpare();
  Address peer;
  try {
    peer = Address::fromSockaddr(sa, static_cast<socklen_t>(len));
    if (peer.is<UNIXAddress>()) peer = unixsock::withPeerCredentials(std::move(peer), fd);
  } catch (...) {
    ::close(fd);
    throw;
  }
  if (handoff_) {
    handoff_(fd, peer);  // owns fd now
    return;
  }
  serveAccepted(reactor, fd, factory_, peer, host_);
}

void serveAccepted(ReactorBase& reactor, int fd, const std::shared_ptr<Factory>& factory,
                   const Address& peer, const Address& bound) {
  if (!reactor.canWatch(fd)) {
    log::warn("tcp.Port", reactor.cannotWatch(fd) + ": closing the connection from " +
                              peer.toString() + "; use epoll or poll for this many connections.");
    ::close(fd);
    return;
  }
  std::shared_ptr<Protocol> protocol;
  try {
    protocol = factory->buildProtocol(peer);
  } catch (...) {
    log::error("tcp.Port", "Unhandled exception in buildProtocol for " + peer.toString() + ": " +
                               Failure::current().toString() + "; closing the connection");
  }
  if (!protocol) {
    ::close(fd);
    return;
  }
  if (protocol->factory() == nullptr) protocol->setFactory(factory);
  Address host = bound;  // the bound address, unless the socket says more (a wildcard port)
  sockaddr_storage local{};
  socklen_t localLen = sizeof local;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &localLen) == 0 &&
      (local.ss_family == AF_INET || local.ss_family == AF_INET6 ||
       (local.ss_family == AF_UNIX && bound.empty()))) {
    host = Address::fromSockaddr(reinterpret_cast<sockaddr*>(&local), localLen);
  }
  std::shared_ptr<Server> conn;
  try {
    if (peer.is<UNIXAddress>()) {
      conn = std::make_shared<unixsock::Server>(reactor, fd, std::move(protocol), host, peer);
    } else {
      conn = std::make_shared<Server>(reactor, fd, std::move(protocol), host, peer);
    }
  } catch (...) {
    ::close(fd);  // not owned by a connection yet
    throw;
  }
  reactor.addSelectable(conn);
  conn->start();
}

void Port::onAcceptError(evconnlistener*, void* arg) {
  int err = EVUTIL_SOCKET_ERROR();
  detail::guardCallback("tcp.Port", "handling an accept error",
                        [&] { static_cast<Port*>(arg)->acceptFailed(err); });
}

void Port::acceptFailed(int err) {
  if (!outOfDescriptors(err)) {
    log::error("tcp.Port", "accept() on " + host_.toString() + " failed: " + std::strerror(err));
    return;
  }
  if (!exhausted_) {
    exhausted_ = true;
    log::warn("tcp.Port", "Out of file descriptors on " + host_.toString() + " (" +
                              std::strerror(err) +
                              "): refusing new connections until some are free.");
  }
  if (spareFd_ >= 0) {
    ::close(spareFd_);
    spareFd_ = -1;
    int peer = ::accept(evconnlistener_get_fd(listener_), nullptr, nullptr);
    if (peer >= 0) ::close(peer);
    spareFd_ = openSpare();
    if (peer >= 0) return;
  }
  // Could not shed the waiting peer: pause accepting for a moment rather than spin.
  evconnlistener_disable(listener_);
  retry_ = reactor_->callLater(kExhaustedRetrySeconds, [this] {
    if (listener_ != nullptr) evconnlistener_enable(listener_);
  });
}

}  // namespace twist::tcp
