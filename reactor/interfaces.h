// Public: //reactor:interfaces, the one package of twist's interfaces (Twisted's
// twisted.internet.interfaces): what a reactor offers (IReactorTime, IReactorTCP), what
// listening and connecting hand back (IListeningPort, IConnector), and, in the headers this one
// includes, what a connection is to a protocol (ITransport, IProducer, IConsumer: transport.h),
// what users subclass (Protocol, Factory: protocol.h) and addresses (address.h). Code written
// against these runs on the real Reactor and on the test doubles (task::Clock, MemoryReactor).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "twist/reactor/address.h"
#include "twist/reactor/deferred.h"
#include "twist/reactor/delayed_call.h"
#include "twist/reactor/protocol.h"
#include "twist/reactor/transport.h"

namespace twist {

// Something that tells time and schedules calls (Twisted's IReactorTime): the Reactor, or the
// fake task::Clock for tests. Code written against it runs on either.
class IReactorTime {
 public:
  virtual ~IReactorTime() = default;
  // Monotonic seconds.
  virtual double seconds() const = 0;
  // Runs `fn` after `delaySeconds` (see ReactorBase::callLater).
  virtual DelayedCall callLater(double delaySeconds, UniqueFunction<void()> fn) = 0;
};

// A listening port as user code sees it (Twisted's IListeningPort): the TCP Port, or the fake
// one of MemoryReactor.
class IListeningPort {
 public:
  virtual ~IListeningPort() = default;
  // The address bound (the real port when 0 was asked).
  virtual Address getHost() const = 0;
  // Stops accepting; idempotent. Fires once the port is closed.
  virtual Deferred<void> stopListening() = 0;
  virtual bool listening() const = 0;
};

// An outgoing connection as user code sees it (Twisted's IConnector): the TCP Connector, or the
// fake one of MemoryReactor. ClientFactory callbacks receive it; keep shared_from_this() to
// connect() again later.
class IConnector : public std::enable_shared_from_this<IConnector> {
 public:
  enum class State { Disconnected, Connecting, Connected };
  virtual ~IConnector() = default;
  // Starts another attempt; only while disconnected (std::logic_error otherwise).
  virtual void connect() = 0;
  // Abandons the attempt in progress (clientConnectionFailed with UserError follows at once);
  // std::logic_error when not connecting.
  virtual void stopConnecting() = 0;
  // Stops connecting, or closes the connection if connected.
  virtual void disconnect() = 0;
  virtual Address getDestination() const = 0;
  virtual State state() const = 0;
  // The connection's transport while connected, else nullptr.
  virtual ITransport* transport() const = 0;
};

// How listenTCP listens (Twisted's listenTCP arguments, and what Twisted cannot say).
struct ListenTCPOptions {
  // "" = every IPv4 interface, "::" = every IPv6 one (and IPv4 too unless ipv6Only), or an
  // address such as "127.0.0.1" or "::1".
  std::string interface {};
  // 0: the system's maximum (/proc/sys/net/core/somaxconn, as Go reads it; SOMAXCONN when that
  // is unreadable). A small backlog drops the SYNs of a burst of clients, which then wait a full
  // second to retry.
  int backlog = 0;
  // SO_REUSEPORT: several sockets (reactors, processes) listen on the same port and the kernel
  // spreads connections among them.
  bool reusePort = false;
  // IPV6_V6ONLY on an IPv6 interface: no IPv4 connections through it.
  bool ipv6Only = false;
};

// How connectTCP connects (Twisted's connectTCP arguments).
struct ConnectTCPOptions {
  // Seconds for resolving and connecting together; 0 = no timeout.
  double timeout = 30;
  // The local address to bind first, as (host, port): ("", 0) is the default of none.
  std::optional<std::pair<std::string, uint16_t>> bindAddress{};
};

// What code that listens and connects needs of a reactor (Twisted's IReactorTCP): the Reactor,
// or MemoryReactor (//protocols/testing), which only records the calls, so wiring code written
// against it is tested without sockets.
class IReactorTCP {
 public:
  virtual ~IReactorTCP() = default;

  // Listens on `port` (0 = a free one: ask the port's getHost()); each accepted connection gets a
  // protocol from `factory`. Throws CannotListenError (also for an interface that is not an
  // address or has a NUL byte in it), or what the factory's startFactory threw (nothing is left
  // listening then). The reactor keeps the port alive until stopListening().
  std::shared_ptr<IListeningPort> listenTCP(uint16_t port, std::shared_ptr<Factory> factory,
                                            const ListenTCPOptions& options = {}) {
    return doListenTCP(port, std::move(factory), options);
  }

  // Connects to host:port (an IPv4 or IPv6 address, or a name resolved without blocking). The
  // factory hears how it goes (ClientFactory), always from the loop, never inside this call.
  // Throws std::invalid_argument for a host or bind address with a NUL byte in it.
  std::shared_ptr<IConnector> connectTCP(std::string_view host, uint16_t port,
                                         std::shared_ptr<ClientFactory> factory,
                                         const ConnectTCPOptions& options = {}) {
    return doConnectTCP(host, port, std::move(factory), options);
  }

 protected:
  // What implementations provide; the defaults of the arguments are those above, in one place.
  virtual std::shared_ptr<IListeningPort> doListenTCP(uint16_t port,
                                                      std::shared_ptr<Factory> factory,
                                                      const ListenTCPOptions& options) = 0;
  virtual std::shared_ptr<IConnector> doConnectTCP(std::string_view host, uint16_t port,
                                                   std::shared_ptr<ClientFactory> factory,
                                                   const ConnectTCPOptions& options) = 0;
};

// How listenUNIX listens (Twisted's listenUNIX arguments).
struct ListenUNIXOptions {
  // The socket file's permissions (who may connect), set before anyone can connect. Not for
  // abstract names, which have none.
  unsigned mode = 0666;
  // 0: the system's maximum, as for listenTCP.
  int backlog = 0;
  // Twisted's wantPID: hold a lock (an OFD lock on "<path>.lock", which also holds this
  // process's pid) while listening. Then a socket file left by a server that died is stale for
  // certain and is replaced; a second server on the same path fails while the first lives.
  // Without it, an existing socket file is never removed: listening fails with "Address already
  // in use".
  bool wantPID = false;
};

// How connectUNIX connects.
struct ConnectUNIXOptions {
  // Seconds until the attempt fails with TimeoutError; 0 = no timeout. A server whose backlog is
  // full refuses at once (EAGAIN for UNIX sockets): the connector tries again every 10 ms
  // within this time.
  double timeout = 30;
  // Twisted's checkPID: fail at once (ConnectError) when no server holds "<path>.lock" (see
  // ListenUNIXOptions::wantPID) instead of trying a socket file that may be stale.
  bool checkPID = false;
};

// UNIX stream sockets (Twisted's IReactorUNIX). A path that starts with '@' or a NUL byte is a
// name in Linux's abstract namespace: no file, gone with the last socket, no permissions.
class IReactorUNIX {
 public:
  virtual ~IReactorUNIX() = default;

  // Listens on the socket file `path` (or abstract name); each connection gets a protocol from
  // `factory`, its peer address (UNIXAddress) carrying the peer's pid, uid and gid. The socket
  // file is removed when the port stops listening (only if it is still the one this port made).
  // Throws CannotListenError: a path in use or locked, too long (107 bytes), with a NUL byte in
  // it, or a file that is not a socket in the way.
  virtual std::shared_ptr<IListeningPort> listenUNIX(std::string_view path,
                                                     std::shared_ptr<Factory> factory,
                                                     const ListenUNIXOptions& options = {}) = 0;
  // Connects to a UNIX socket; the factory hears how it goes as for connectTCP. The connection's
  // peer address carries the server's pid, uid and gid. Throws std::invalid_argument for a path
  // that cannot be a socket address.
  virtual std::shared_ptr<IConnector> connectUNIX(std::string_view path,
                                                  std::shared_ptr<ClientFactory> factory,
                                                  const ConnectUNIXOptions& options = {}) = 0;
};

}  // namespace twist
