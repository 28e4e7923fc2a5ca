// Public for transport writers; users call Reactor::listenUDP. udp::Port: one UDP socket
// (Twisted's udp.Port) serving a DatagramProtocol. Reading takes a batch of datagrams per
// system call (recvmmsg); what the protocol writes while it handles a batch leaves in one
// sendmmsg when the batch is done (what bench/run_udp.sh measures against a hand-written
// recvmmsg/sendmmsg server). Owned by the reactor until stopListening(); the handle stays safe.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "twist/reactor/datagram.h"
#include "twist/reactor/selectable.h"

struct event;

namespace twist {
class ReactorBase;
}  // namespace twist

namespace twist::udp {

class Port : public Selectable, public IUDPTransport, public std::enable_shared_from_this<Port> {
 public:
  // Binds; see IReactorUDP::listenUDP. Throws CannotListenError (std::invalid_argument for a
  // null protocol or a maxPacketSize over 65535).
  static std::shared_ptr<Port> listen(ReactorBase& reactor, uint16_t port,
                                      std::shared_ptr<DatagramProtocol> protocol,
                                      const ListenUDPOptions& options);
  ~Port() override;
  Port(const Port&) = delete;
  Port& operator=(const Port&) = delete;

  // IListeningPort
  Address getHost() const override { return host_; }
  Deferred<void> stopListening() override;
  bool listening() const override { return fd_ >= 0; }

  // IUDPTransport
  void write(std::string_view data, const Address& to) override;
  void write(std::string_view data) override;
  void connect(std::string_view host, uint16_t port) override;
  Address getPeer() const override { return peer_; }
  uint64_t droppedWrites() const override { return dropped_; }
  size_t maxPacketSize() const override { return maxPacketSize_; }
  void setBroadcastAllowed(bool enabled) override;
  bool getBroadcastAllowed() const override;
  void joinGroup(std::string_view group, std::string_view interface) override;
  void leaveGroup(std::string_view group, std::string_view interface) override;
  void setTTL(int ttl) override;
  int getTTL() const override;
  void setLoopbackMode(bool enabled) override;
  bool getLoopbackMode() const override;
  void setOutgoingInterface(std::string_view interface) override;

  void reactorShutdown() override { (void)stopListening(); }

 private:
  Port(ReactorBase& reactor, std::shared_ptr<DatagramProtocol> protocol, size_t maxPacketSize);
  static void onReadable(int fd, short what, void* arg);
  void handleRead();
  // Sends `data` to the address (or, connected, to the peer: len 0) now, or queues it for the
  // batch's sendmmsg while a batch is being delivered.
  void send(std::string_view data, const sockaddr* to, socklen_t len);
  void flushBatch();
  // A send failed with `err` (the datagram is lost).
  void sendFailed(int err);
  void refused();
  // The address a write names, as a socket address (the last sender's is cached: a reply to
  // it needs no parsing).
  void resolve(const Address& to, sockaddr_storage* out, socklen_t* len);
  void membership(std::string_view group, std::string_view interface, bool join);
  void checkOpen(const char* what) const;

  ReactorBase* reactor_;
  std::shared_ptr<DatagramProtocol> protocol_;
  int fd_ = -1;
  int family_ = AF_INET;
  event* readEvent_ = nullptr;
  Address host_;
  Address peer_;
  bool connected_ = false;
  size_t maxPacketSize_;
  uint64_t dropped_ = 0;

  // Receiving: `batch_` slots of maxPacketSize_ + 1 bytes, in a buffer each thread has once
  // for all its ports (reads never nest), so a port costs no receive memory of its own.
  size_t batch_;
  // The last sender, parsed: most replies go to it.
  sockaddr_storage lastFrom_{};
  socklen_t lastFromLen_ = 0;
  Address lastFromAddress_;

  // Sending while a batch is delivered: the datagrams, their bytes and destinations.
  bool inBatch_ = false;
  struct Outgoing {
    size_t offset, size;
    sockaddr_storage to;
    socklen_t len;
  };
  std::vector<Outgoing> out_;
  std::vector<char> outBuffer_;
};

}  // namespace twist::udp
