// Public. IReactorTCP: what code that listens and connects needs of a reactor (Twisted's
// IReactorTCP). The Reactor implements it; so does MemoryReactor (//protocols/testing), which
// only records the calls, so wiring code written against it is tested without sockets.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace twist {

class ClientFactory;
class IConnector;
class IListeningPort;
class ServerFactory;

// listenTCP's default backlog: the system's maximum (/proc/sys/net/core/somaxconn, as Go reads
// it; SOMAXCONN when that is unreadable). A small backlog drops the SYNs of a burst of clients,
// which then wait a full second to retry.
inline constexpr int kDefaultBacklog = 0;

class IReactorTCP {
 public:
  virtual ~IReactorTCP() = default;
  // See Reactor::listenTCP.
  virtual std::shared_ptr<IListeningPort> listenTCP(uint16_t port,
                                                    std::shared_ptr<ServerFactory> factory,
                                                    int backlog = kDefaultBacklog,
                                                    std::string_view interface = "") = 0;
  // See Reactor::connectTCP.
  virtual std::shared_ptr<IConnector> connectTCP(
      std::string_view host, uint16_t port, std::shared_ptr<ClientFactory> factory,
      double timeout = 30,
      std::optional<std::pair<std::string, uint16_t>> bindAddress = std::nullopt) = 0;
};

}  // namespace twist
