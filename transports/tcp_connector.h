// Public. tcp::Connector: one outgoing TCP connection, made by Reactor::connectTCP (Twisted's
// tcp.Connector). It resolves the host without blocking, tries each address in turn, builds the
// protocol from its ClientFactory once connected, and can try again (connect()) after a failure
// or a lost connection. The reactor keeps it alive while it is connecting or connected; the
// handle stays safe after that. Not thread safe: use on the reactor's thread.
#pragma once

#include <sys/socket.h>

#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "twist/reactor/address.h"
#include "twist/reactor/delayed_call.h"
#include "twist/reactor/interfaces.h"
#include "twist/reactor/selectable.h"
#include "twist/transports/tcp_connection.h"

struct event;
struct evdns_getaddrinfo_request;
struct addrinfo;  // evutil_addrinfo is struct addrinfo on this platform

namespace twist {
class ReactorBase;
}  // namespace twist

namespace twist::tcp {

class Connector : public Selectable, public IConnector {
 public:
  // Makes a connector and starts its first attempt; see IReactorTCP::connectTCP.
  static std::shared_ptr<Connector> start(ReactorBase& reactor, std::string host, uint16_t port,
                                          std::shared_ptr<ClientFactory> factory,
                                          const ConnectTCPOptions& options);
  // Makes a connector to a UNIX socket and starts its first attempt (unixsock::connect).
  static std::shared_ptr<Connector> startUNIX(ReactorBase& reactor, std::string path,
                                              std::shared_ptr<ClientFactory> factory,
                                              const ConnectUNIXOptions& options);
  ~Connector() override;
  Connector(const Connector&) = delete;
  Connector& operator=(const Connector&) = delete;

  // Starts another attempt. Only while disconnected (std::logic_error otherwise).
  void connect() override;
  // Abandons the attempt in progress: clientConnectionFailed(UserError) follows at once (the
  // one report that comes inside a call: the one you asked for).
  // std::logic_error when not connecting (Twisted's NotConnectingError).
  void stopConnecting() override;
  // Stops connecting, or closes the connection (loseConnection) if connected.
  void disconnect() override;

  // Where it connects to: the host as given (a name or an address) and the port.
  Address getDestination() const override;
  State state() const override { return state_; }
  // The connection's transport while connected, else nullptr.
  ITransport* transport() const override { return client_; }
  ClientFactory& factory() const { return *factory_; }

  void reactorShutdown() override;

 private:
  friend class Client;
  Connector(ReactorBase& reactor, std::string host, uint16_t port,
            std::shared_ptr<ClientFactory> factory, ConnectTCPOptions options);

  void resolve();
  static void onResolved(int result, addrinfo* res, void* arg);
  static void resolved(int result, addrinfo* res, void* arg);
  void tryNextAddress();
  // Binds fd_ to bindAddress_; the failure (ConnectBindError), or an empty Failure.
  Failure bindLocal(int family);
  static void onConnectable(int fd, short what, void* arg);
  void connected();
  void cleanUpAttempt();
  void failAttempt(const Failure& reason);
  void clientLost(const Failure& reason);
  void finishIfDisconnected();

  ReactorBase& reactor_;
  std::string host_;
  uint16_t port_;
  bool unix_ = false;  // host_ is a UNIX socket's path
  bool checkPID_ = false;
  std::shared_ptr<ClientFactory> factory_;
  ConnectTCPOptions options_;
  State state_ = State::Disconnected;
  bool registered_ = false;      // in the reactor's selectables
  bool factoryStarted_ = false;  // doStart called, doStop owed
  // The attempt in progress. A lookup's callback always comes, even after cancelling (then
  // later, from the loop), so it gets a record of its own that outlives this object.
  struct Lookup {
    Connector* owner;  // nulled when the connector abandons the lookup
  };
  Lookup* lookup_ = nullptr;
  evdns_getaddrinfo_request* dnsRequest_ = nullptr;
  std::vector<std::pair<sockaddr_storage, socklen_t>> addresses_;
  size_t nextAddress_ = 0;
  int fd_ = -1;
  event* connectEvent_ = nullptr;
  DelayedCall timeoutCall_;
  DelayedCall attemptCall_;  // the attempt starts from the loop
  Failure lastError_;
  Connection* client_ = nullptr;  // owned by the reactor while connected
};

// A connection made by a Connector.
class Client : public Connection {
 public:
  Client(ReactorBase& reactor, int fd, std::shared_ptr<Protocol> protocol, Address host,
         Address peer, Connector& connector, const char* logSystem = "tcp.Client")
      : Connection(reactor, fd, std::move(protocol), std::move(host), std::move(peer), logSystem),
        connector_(std::static_pointer_cast<Connector>(connector.shared_from_this())) {}

 protected:
  void connectionEnded(const Failure& reason) override { connector_->clientLost(reason); }

 private:
  std::shared_ptr<Connector> connector_;
};

}  // namespace twist::tcp
