#include "twist/transports/tcp_connector.h"

#include <arpa/inet.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>
#include <netinet/in.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "twist/reactor/errors.h"
#include "twist/reactor/guard.h"
#include "twist/reactor/log.h"
#include "twist/reactor/reactor_base.h"
#include "twist/transports/unix.h"

namespace twist::tcp {
namespace {

Failure connectFailure(int err) {
  if (err == ECONNREFUSED) return Failure::of(ConnectionRefusedError());
  if (err == ETIMEDOUT) return Failure::of(TimeoutError::fromErrno(err));
  return Failure::of(ConnectError::fromErrno(err, "connect()"));
}

// A factory callback: an exception it throws is logged and the connector goes on.
template <class F>
void callFactory(const char* what, F&& f) {
  detail::guardCallback("tcp.Connector", what, std::forward<F>(f));
}

// How soon connectUNIX tries again after a full backlog.
constexpr double kUNIXRetrySeconds = 0.01;

}  // namespace

Connector::Connector(ReactorBase& reactor, std::string host, uint16_t port,
                     std::shared_ptr<ClientFactory> factory, ConnectTCPOptions options)
    : reactor_(reactor),
      host_(std::move(host)),
      port_(port),
      factory_(std::move(factory)),
      options_(std::move(options)) {}

std::shared_ptr<Connector> Connector::start(ReactorBase& reactor, std::string host, uint16_t port,
                                            std::shared_ptr<ClientFactory> factory,
                                            const ConnectTCPOptions& options) {
  if (!factory) throw std::invalid_argument("connectTCP needs a factory");
  // The resolver and inet_pton read C strings: "localhost\0.example.com" would quietly become
  // "localhost".
  if (host.find('\0') != std::string::npos) {
    throw std::invalid_argument("connectTCP: the host name has a NUL byte in it");
  }
  if (options.bindAddress && options.bindAddress->first.find('\0') != std::string::npos) {
    throw std::invalid_argument("connectTCP: the bind address has a NUL byte in it");
  }
  std::shared_ptr<Connector> c(
      new Connector(reactor, std::move(host), port, std::move(factory), options));
  c->connect();
  return c;
}

std::shared_ptr<Connector> Connector::startUNIX(ReactorBase& reactor, std::string path,
                                                std::shared_ptr<ClientFactory> factory,
                                                const ConnectUNIXOptions& options) {
  if (!factory) throw std::invalid_argument("connectUNIX needs a factory");
  sockaddr_storage ss;
  socklen_t len;
  if (!makeUNIXSockaddr(path, &ss, &len)) {
    throw std::invalid_argument("connectUNIX: '" + path +
                                "' is not a UNIX socket path (empty, over 107 bytes, or with a "
                                "NUL byte in it)");
  }
  if (path[0] == '@') path[0] = '\0';
  std::shared_ptr<Connector> c(new Connector(reactor, std::move(path), 0, std::move(factory),
                                             ConnectTCPOptions{.timeout = options.timeout}));
  c->unix_ = true;
  c->checkPID_ = options.checkPID;
  c->connect();
  return c;
}

Connector::~Connector() { cleanUpAttempt(); }

Address Connector::getDestination() const {
  if (unix_) return UNIXAddress{host_};
  sockaddr_storage ss;
  socklen_t len;
  bool v6 = parseIPAddress(host_, port_, &ss, &len) && ss.ss_family == AF_INET6;
  if (v6) return IPv6Address{host_, port_};
  return IPv4Address{host_, port_};
}

void Connector::connect() {
  reactor_.assertInReactorThread();
  if (state_ != State::Disconnected) {
    throw std::logic_error("Connector::connect: already connecting or connected");
  }
  if (!factoryStarted_) {
    factory_->doStart();  // may throw: nothing has started then
    factoryStarted_ = true;
  }
  state_ = State::Connecting;
  if (!registered_) {
    registered_ = true;
    reactor_.addSelectable(std::static_pointer_cast<Connector>(shared_from_this()));
  }
  callFactory("startedConnecting", [&] { factory_->startedConnecting(*this); });
  if (state_ != State::Connecting) return;  // stopConnecting() inside startedConnecting
  std::weak_ptr<IConnector> weak = weak_from_this();
  if (options_.timeout > 0) {
    timeoutCall_ = reactor_.callLater(options_.timeout, [weak] {
      auto self = std::static_pointer_cast<Connector>(weak.lock());
      if (self && self->state_ == State::Connecting) self->failAttempt(Failure::of(TimeoutError()));
    });
  }
  lastError_ = Failure();
  // The attempt starts from the loop, so that whatever it reports (even a failure known at
  // once: a bind address in use, a name in /etc/hosts that does not resolve) reaches the factory
  // from the loop, never inside this call: a factory that retries from clientConnectionFailed
  // must not recurse (Twisted does the same).
  attemptCall_ = reactor_.callLater(0, [weak] {
    auto self = std::static_pointer_cast<Connector>(weak.lock());
    if (!self || self->state_ != State::Connecting) return;
    try {
      self->resolve();
    } catch (...) {
      self->failAttempt(Failure::current());
    }
  });
}

void Connector::resolve() {
  sockaddr_storage ss;
  socklen_t len;
  if (unix_) {
    if (checkPID_ && unixsock::unlocked(host_)) {
      failAttempt(Failure::of(ConnectError("no server holds " + host_ + ".lock (checkPID)")));
      return;
    }
    makeUNIXSockaddr(host_, &ss, &len);  // checked by startUNIX
    addresses_.emplace_back(ss, len);
    tryNextAddress();
    return;
  }
  if (parseIPAddress(host_, port_, &ss, &len)) {
    addresses_.emplace_back(ss, len);
    tryNextAddress();
    return;
  }
  evutil_addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_protocol = IPPROTO_TCP;
  std::string service = std::to_string(port_);
  auto* lookup = new Lookup{this};
  lookup_ = lookup;
  // The callback may run before evdns_getaddrinfo returns (hosts file, or an error).
  evdns_getaddrinfo_request* req = evdns_getaddrinfo(
      reactor_.dnsBase(), host_.c_str(), service.c_str(), &hints, &Connector::onResolved, lookup);
  if (lookup_ == lookup) dnsRequest_ = req;
}

void Connector::onResolved(int result, addrinfo* res, void* arg) {
  detail::guardCallback("tcp.Connector", "a name lookup's callback",
                        [&] { resolved(result, res, arg); });
}

void Connector::resolved(int result, addrinfo* res, void* arg) {  // static
  std::unique_ptr<Lookup> lookup(static_cast<Lookup*>(arg));
  Connector* self = lookup->owner;
  if (self == nullptr) {  // abandoned (cancelled): nothing to report
    if (res != nullptr) evutil_freeaddrinfo(res);
    return;
  }
  self->lookup_ = nullptr;
  self->dnsRequest_ = nullptr;
  if (result != 0) {
    if (res != nullptr) evutil_freeaddrinfo(res);
    self->failAttempt(Failure::of(DNSLookupError(self->host_, evutil_gai_strerror(result))));
    return;
  }
  for (evutil_addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6) continue;
    sockaddr_storage ss{};
    std::memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
    self->addresses_.emplace_back(ss, static_cast<socklen_t>(ai->ai_addrlen));
  }
  evutil_freeaddrinfo(res);
  self->tryNextAddress();
}

void Connector::tryNextAddress() {
  while (nextAddress_ < addresses_.size()) {
    const auto& [ss, len] = addresses_[nextAddress_++];
    fd_ = ::socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd_ < 0) {
      lastError_ = Failure::of(ConnectError::fromErrno(errno, "socket()"));
      continue;
    }
    if (!reactor_.canWatch(fd_)) {
      lastError_ = Failure::of(ConnectError(reactor_.cannotWatch(fd_)));
      ::close(fd_);
      fd_ = -1;
      continue;
    }
    if (options_.bindAddress) {
      if (Failure why = bindLocal(ss.ss_family)) {
        ::close(fd_);
        fd_ = -1;
        lastError_ = std::move(why);
        continue;
      }
    }
    if (::connect(fd_, reinterpret_cast<const sockaddr*>(&ss), len) == 0) {
      connected();
      return;
    }
    if (errno == EAGAIN && ss.ss_family == AF_UNIX) {
      // The server's backlog is full; a UNIX socket cannot wait for it like TCP's EINPROGRESS.
      // Try again shortly (within the timeout).
      ::close(fd_);
      fd_ = -1;
      --nextAddress_;
      std::weak_ptr<IConnector> weak = weak_from_this();
      attemptCall_ = reactor_.callLater(kUNIXRetrySeconds, [weak] {
        auto self = std::static_pointer_cast<Connector>(weak.lock());
        if (self && self->state_ == State::Connecting) self->tryNextAddress();
      });
      return;
    }
    if (errno == EINPROGRESS) {
      connectEvent_ =
          event_new(reactor_.eventBase(), fd_, EV_WRITE, &Connector::onConnectable, this);
      event_add(connectEvent_, nullptr);
      return;
    }
    lastError_ = connectFailure(errno);
    ::close(fd_);
    fd_ = -1;
  }
  failAttempt(lastError_ ? lastError_ : Failure::of(DNSLookupError(host_, "no usable address")));
}

Failure Connector::bindLocal(int family) {
  const auto& [host, port] = *options_.bindAddress;
  std::string where =
      (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + std::to_string(port);
  sockaddr_storage local;
  socklen_t localLen;
  if (!parseIPAddress(host, port, &local, &localLen)) {
    return Failure::of(ConnectBindError(where, "not an IPv4 or IPv6 address"));
  }
  if (local.ss_family != family) {
    return Failure::of(ConnectBindError(where, std::string("the destination is an ") +
                                                   (family == AF_INET6 ? "IPv6" : "IPv4") +
                                                   " address and the bind address is not"));
  }
  if (::bind(fd_, reinterpret_cast<sockaddr*>(&local), localLen) != 0) {
    int err = errno;
    return Failure::of(ConnectBindError(where, std::strerror(err), osErrorCode(err)));
  }
  return Failure();
}

void Connector::onConnectable(int fd, short, void* arg) {
  auto* self = static_cast<Connector*>(arg);
  detail::guardCallback("tcp.Connector", "a connect's completion", [&] {
    event_free(self->connectEvent_);
    self->connectEvent_ = nullptr;
    int err = 0;
    socklen_t len = sizeof err;
    if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
    if (err == 0) {
      self->connected();
      return;
    }
    self->lastError_ = connectFailure(err);
    ::close(self->fd_);
    self->fd_ = -1;
    self->tryNextAddress();
  });
}

void Connector::connected() {
  int fd = fd_;
  fd_ = -1;
  // The peer is the address we connected to. Asking the socket (getpeername) would fail once
  // the peer has reset the connection, which a hostile server can do at any moment; the reset
  // is then reported the usual way, as a lost connection, when the socket is read.
  const auto& [target, targetLen] = addresses_[nextAddress_ - 1];
  Address peer = Address::fromSockaddr(reinterpret_cast<const sockaddr*>(&target), targetLen);
  Address host = peer.is<IPv6Address>() ? Address(IPv6Address{"::", 0}) : IPv4Address{"0.0.0.0", 0};
  if (unix_) {
    peer = unixsock::withPeerCredentials(std::move(peer), fd);
    host = UNIXAddress{};
  }
  sockaddr_storage hostSs{};
  socklen_t hostLen = sizeof hostSs;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&hostSs), &hostLen) == 0 &&
      hostSs.ss_family == target.ss_family) {
    host = Address::fromSockaddr(reinterpret_cast<sockaddr*>(&hostSs), hostLen);
  }
  std::shared_ptr<Protocol> protocol;
  try {
    protocol = factory_->buildProtocol(peer);
  } catch (...) {
    ::close(fd);
    failAttempt(Failure::current());
    return;
  }
  if (!protocol) {
    ::close(fd);
    failAttempt(Failure::of(NoProtocol()));
    return;
  }
  cleanUpAttempt();
  if (protocol->factory() == nullptr) protocol->setFactory(factory_);
  std::shared_ptr<Client> client;
  try {
    if (unix_) {
      client =
          std::make_shared<unixsock::Client>(reactor_, fd, std::move(protocol), host, peer, *this);
    } else {
      client = std::make_shared<Client>(reactor_, fd, std::move(protocol), host, peer, *this);
    }
  } catch (...) {
    ::close(fd);  // not owned by a connection yet
    failAttempt(Failure::current());
    return;
  }
  state_ = State::Connected;
  client_ = client.get();
  reactor_.addSelectable(client);
  client->start();
}

void Connector::cleanUpAttempt() {
  if (timeoutCall_.active()) timeoutCall_.cancel();
  if (attemptCall_.active()) attemptCall_.cancel();
  if (lookup_ != nullptr) {
    lookup_->owner = nullptr;  // its callback (EVUTIL_EAI_CANCEL, later) only frees it
    lookup_ = nullptr;
    if (dnsRequest_ != nullptr) evdns_getaddrinfo_cancel(dnsRequest_);
    dnsRequest_ = nullptr;
  }
  if (connectEvent_ != nullptr) {
    event_free(connectEvent_);
    connectEvent_ = nullptr;
  }
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
  addresses_.clear();
  nextAddress_ = 0;
}

void Connector::failAttempt(const Failure& reason) {
  cleanUpAttempt();
  state_ = State::Disconnected;
  callFactory("clientConnectionFailed", [&] { factory_->clientConnectionFailed(*this, reason); });
  finishIfDisconnected();
}

void Connector::clientLost(const Failure& reason) {
  client_ = nullptr;
  state_ = State::Disconnected;
  callFactory("clientConnectionLost", [&] { factory_->clientConnectionLost(*this, reason); });
  finishIfDisconnected();
}

void Connector::finishIfDisconnected() {
  // The factory may have started another attempt from its callback.
  if (state_ != State::Disconnected) return;
  if (factoryStarted_) {
    factoryStarted_ = false;
    factory_->doStop();
  }
  if (registered_) {
    registered_ = false;
    reactor_.removeSelectable(this);  // last: may free this object once the callback returns
  }
}

void Connector::stopConnecting() {
  if (state_ != State::Connecting) {
    throw std::logic_error("Connector::stopConnecting: not connecting");
  }
  failAttempt(Failure::of(UserError()));
}

void Connector::disconnect() {
  if (state_ == State::Connecting) {
    stopConnecting();
  } else if (state_ == State::Connected && client_ != nullptr) {
    client_->loseConnection();
  }
}

void Connector::reactorShutdown() {
  // A live connection is ended by its own Client (it tells us through clientLost).
  if (state_ == State::Connecting) failAttempt(Failure::of(UserError("The reactor shut down.")));
}

}  // namespace twist::tcp
