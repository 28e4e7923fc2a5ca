// Public. tcp::Port: a listening TCP socket (Twisted's tcp.Port / IListeningPort), made by
// Reactor::listenTCP. Each accepted connection becomes a tcp::Server whose protocol the factory
// builds. The reactor keeps the port alive until stopListening(); the handle you hold stays safe
// after that and after the reactor is gone. Not thread safe: use on the reactor's thread.
#pragma once

#include <sys/socket.h>

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "twist/reactor/address.h"
#include "twist/reactor/deferred.h"
#include "twist/reactor/delayed_call.h"
#include "twist/reactor/errors.h"
#include "twist/reactor/interfaces.h"
#include "twist/reactor/selectable.h"

struct evconnlistener;

namespace twist {
class ReactorBase;
}  // namespace twist

namespace twist::tcp {

// The backlog a listening socket gets when none is asked: /proc/sys/net/core/somaxconn (read
// once), SOMAXCONN when that is unreadable.
int systemMaxBacklog();

// A TCP socket bound and listening as listenTCP's would be (non-blocking, close-on-exec):
// for a parent process to hand to workers (twist/reactor/prefork.h). Throws CannotListenError.
int bindListeningSocket(uint16_t port, const ListenTCPOptions& options);

// A duplicate (close-on-exec, non-blocking) of `fd`, a TCP socket made elsewhere that is
// listening (or, with listening false, connected): what adopting works on, the caller keeping
// fd. Its own address (listening) or its peer's is stored in *address when given. Throws
// std::invalid_argument when fd is not such a socket; -1 (errno set) when it cannot be
// duplicated.
int duplicateSocket(int fd, bool listening, sockaddr_storage* address = nullptr,
                    socklen_t* addressLen = nullptr);

// Serves a connection accepted elsewhere on `reactor`: the factory builds its protocol for
// `peer` (nullptr or an exception: the socket is closed) and a tcp::Server runs it. Owns fd
// from the call on. `bound` is the listening address (the socket's own is used when it says
// more). Call on the reactor's thread.
void serveAccepted(ReactorBase& reactor, int fd, const std::shared_ptr<Factory>& factory,
                   const Address& peer, const Address& bound = {});

class Port : public Selectable, public IListeningPort, public std::enable_shared_from_this<Port> {
 public:
  // Takes each accepted socket (and owns it) instead of serving it here.
  using AcceptHandler = std::function<void(int fd, const Address& peer)>;

  // Binds and listens; see Reactor::listenTCP. Throws CannotListenError.
  static std::shared_ptr<Port> listen(ReactorBase& reactor, uint16_t port,
                                      std::shared_ptr<Factory> factory,
                                      const ListenTCPOptions& options);
  // Listens on a socket that is already listening (Reactor::adoptStreamPort): a duplicate of
  // fd, which the caller keeps. Throws std::invalid_argument when fd is not a listening TCP
  // socket.
  static std::shared_ptr<Port> adopt(ReactorBase& reactor, int fd,
                                     std::shared_ptr<Factory> factory);
  // Serves `fd`, a stream socket bound and listening (a TCP or UNIX one), which the port owns
  // from the call on. `where` names it in errors; `onClose` runs once the socket is closed (a
  // UNIX port removes its socket file and releases its lock there). Throws CannotListenError.
  static std::shared_ptr<Port> serve(
      ReactorBase& reactor, int fd, std::shared_ptr<Factory> factory,
      const std::function<CannotListenError(const std::string&)>& where,
      std::function<void()> onClose = {});
  ~Port() override;
  Port(const Port&) = delete;
  Port& operator=(const Port&) = delete;

  // The address actually bound (the real port when 0 was asked).
  Address getHost() const override { return host_; }
  // Closes the listening socket now, even from inside one of the port's own callbacks (the port
  // can be bound again at once); connections already accepted go on, and keep the factory alive
  // until they end. Calls the factory's stopFactory if this was its last port. Idempotent. The
  // Deferred fires once the port is closed (already, for TCP).
  Deferred<void> stopListening() override;
  bool listening() const override { return listener_ != nullptr; }
  // From now on accepted sockets go to `handoff` (which owns each) instead of being served here.
  void setHandoff(AcceptHandler handoff) { handoff_ = std::move(handoff); }
  Factory& factory() const { return *factory_; }

  void reactorShutdown() override { (void)stopListening(); }

 private:
  Port(ReactorBase& reactor, std::shared_ptr<Factory> factory);
  static void onAccept(evconnlistener* l, int fd, struct sockaddr* sa, int len, void* arg);
  static void onAcceptError(evconnlistener* l, void* arg);
  void accept(int fd, const struct sockaddr* sa, int len);
  void acceptFailed(int err);
  void closeSocket();

  ReactorBase* reactor_;
  std::shared_ptr<Factory> factory_;
  evconnlistener* listener_ = nullptr;
  int fd_ = -1;  // the listening socket; owned here, not by the listener
  Address host_;
  // Held open so that when descriptors run out, closing it lets us accept and close the waiting
  // peer instead of leaving the listener readable forever (a busy loop).
  int spareFd_ = -1;
  bool exhausted_ = false;  // inside an out-of-descriptors episode (logged once per episode)
  DelayedCall retry_;
  AcceptHandler handoff_;
  std::function<void()> onClose_;
};

}  // namespace twist::tcp
