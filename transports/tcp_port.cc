#include "transports/tcp_port.h"

#include <arpa/inet.h>
#include <event2/listener.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "reactor/errors.h"
#include "reactor/log.h"
#include "reactor/reactor.h"
#include "reactor/tcp_hooks.h"
#include "transports/tcp_connection.h"

namespace twist {
namespace {

int openSpare() { return ::open("/dev/null", O_RDONLY | O_CLOEXEC); }

bool outOfDescriptors(int err) {
  return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM;
}

// How long accepting pauses when even the spare descriptor could not shed a connection.
constexpr double kExhaustedRetrySeconds = 0.1;

}  // namespace

// Registers listenTCP with the reactor (see reactor/tcp_hooks.h); the target is alwayslink.
const bool kListenRegistered = [] {
  detail::tcpHooks().listen = [](Reactor& reactor, uint16_t port,
                                 std::shared_ptr<ServerFactory> factory, int backlog,
                                 std::string_view interface) -> std::shared_ptr<IListeningPort> {
    return Port::listen(reactor, port, std::move(factory), backlog, interface);
  };
  return true;
}();

Port::Port(Reactor& reactor, std::shared_ptr<ServerFactory> factory)
    : reactor_(&reactor), factory_(std::move(factory)) {}

std::shared_ptr<Port> Port::listen(Reactor& reactor, uint16_t port,
                                   std::shared_ptr<ServerFactory> factory, int backlog,
                                   std::string_view interface) {
  std::string iface(interface);
  if (!factory) throw std::invalid_argument("listenTCP needs a factory");
  sockaddr_storage ss{};
  socklen_t len;
  if (iface.empty()) {
    auto* in = reinterpret_cast<sockaddr_in*>(&ss);
    in->sin_family = AF_INET;
    in->sin_addr.s_addr = htonl(INADDR_ANY);
    in->sin_port = htons(port);
    len = sizeof(sockaddr_in);
  } else if (auto* in = reinterpret_cast<sockaddr_in*>(&ss);
             inet_pton(AF_INET, iface.c_str(), &in->sin_addr) == 1) {
    in->sin_family = AF_INET;
    in->sin_port = htons(port);
    len = sizeof(sockaddr_in);
  } else if (auto* in6 = reinterpret_cast<sockaddr_in6*>(&ss);
             inet_pton(AF_INET6, iface.c_str(), &in6->sin6_addr) == 1) {
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(port);
    len = sizeof(sockaddr_in6);
  } else {
    throw CannotListenError(iface, port, 0, "'" + iface + "' is not an IPv4 or IPv6 address");
  }

  int fd = ::socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) throw CannotListenError(iface, port, errno, std::strerror(errno));
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0 ||
      ::listen(fd, backlog > 0 ? backlog : 1) != 0) {
    int err = errno;
    ::close(fd);
    throw CannotListenError(iface, port, err, std::strerror(err));
  }
  sockaddr_storage bound{};
  socklen_t boundLen = sizeof bound;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &boundLen);

  std::shared_ptr<Port> p(new Port(reactor, std::move(factory)));
  p->host_ = Address::fromSockaddr(reinterpret_cast<sockaddr*>(&bound), boundLen);
  // backlog 0: the socket is already listening.
  p->listener_ = evconnlistener_new(reactor.eventBase(), &Port::onAccept, p.get(),
                                    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, fd);
  if (p->listener_ == nullptr) {
    ::close(fd);
    throw CannotListenError(iface, port, 0, "evconnlistener_new failed");
  }
  evconnlistener_set_error_cb(p->listener_, &Port::onAcceptError);
  p->spareFd_ = openSpare();
  reactor.addSelectable(p);
  p->factory_->doStart();
  return p;
}

Port::~Port() {
  if (listener_ != nullptr) evconnlistener_free(listener_);
  if (spareFd_ >= 0) ::close(spareFd_);
}

Deferred<void> Port::stopListening() {
  if (listener_ == nullptr) return succeed();
  evconnlistener_free(listener_);
  listener_ = nullptr;
  if (spareFd_ >= 0) ::close(spareFd_);
  spareFd_ = -1;
  if (retry_.active()) retry_.cancel();
  factory_->doStop();
  Reactor* r = reactor_;
  reactor_ = nullptr;
  r->removeSelectable(this);  // may free this object once the callback returns
  return succeed();
}

void Port::onAccept(evconnlistener*, int fd, struct sockaddr* sa, int len, void* arg) {
  static_cast<Port*>(arg)->accept(fd, sa, len);
}

void Port::accept(int fd, const struct sockaddr* sa, int len) {
  // buildProtocol may call stopListening(), which forgets the reactor: keep it at hand.
  Reactor& reactor = *reactor_;
  if (exhausted_) {
    exhausted_ = false;
    log::info("tcp.Port", "Accepting connections again on " + host_.hostPort() + ".");
  }
  if (spareFd_ < 0) spareFd_ = openSpare();
  Address peer;
  std::unique_ptr<Protocol> protocol;
  try {
    peer = Address::fromSockaddr(sa, static_cast<socklen_t>(len));
    protocol = factory_->buildProtocol(peer);
  } catch (...) {
    log::error("tcp.Port", "Unhandled exception in buildProtocol for " + peer.hostPort() + ": " +
                               Failure::current().toString() + "; closing the connection");
  }
  if (!protocol) {
    ::close(fd);
    return;
  }
  if (protocol->factory() == nullptr) protocol->setFactory(factory_.get());
  sockaddr_storage local{};
  socklen_t localLen = sizeof local;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &localLen);
  Address host = Address::fromSockaddr(reinterpret_cast<sockaddr*>(&local), localLen);
  auto conn = std::make_shared<Server>(reactor, fd, std::move(protocol), host, peer);
  reactor.addSelectable(conn);
  conn->start();
}

void Port::onAcceptError(evconnlistener*, void* arg) {
  static_cast<Port*>(arg)->acceptFailed(EVUTIL_SOCKET_ERROR());
}

void Port::acceptFailed(int err) {
  if (!outOfDescriptors(err)) {
    log::error("tcp.Port", "accept() on " + host_.hostPort() + " failed: " + std::strerror(err));
    return;
  }
  if (!exhausted_) {
    exhausted_ = true;
    log::warn("tcp.Port", "Out of file descriptors on " + host_.hostPort() + " (" +
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

}  // namespace twist
