#include "twist/reactor/datagram.h"

#include "twist/reactor/log.h"

namespace twist {
namespace {

// What a protocol's transport() is once its port is gone: every call is ignored.
class ClosedUDPTransport : public IUDPTransport {
 public:
  Address getHost() const override { return {}; }
  Deferred<void> stopListening() override { return succeed(); }
  bool listening() const override { return false; }
  void write(std::string_view, const Address&) override {}
  void write(std::string_view) override {}
  void connect(std::string_view, uint16_t) override {}
  Address getPeer() const override { return {}; }
  uint64_t droppedWrites() const override { return 0; }
  size_t maxPacketSize() const override { return 0; }
  void setBroadcastAllowed(bool) override {}
  bool getBroadcastAllowed() const override { return false; }
  void joinGroup(std::string_view, std::string_view) override {}
  void leaveGroup(std::string_view, std::string_view) override {}
  void setTTL(int) override {}
  int getTTL() const override { return 0; }
  void setLoopbackMode(bool) override {}
  bool getLoopbackMode() const override { return false; }
  void setOutgoingInterface(std::string_view) override {}
};

}  // namespace

void DatagramProtocol::makeConnection(IUDPTransport* transport) {
  transport_ = transport;
  startProtocol();
}

void DatagramProtocol::connectionEnded() {
  static ClosedUDPTransport closed;  // stateless: shared by every thread
  transport_ = &closed;
  stopProtocol();
}

void DatagramProtocol::datagramTruncated(size_t size, const Address& from) {
  std::string who = from.toString();
  if (who == lastTruncationFrom_) return;
  lastTruncationFrom_ = who;
  log::warn("udp.Port",
            "Dropped a datagram of " + std::to_string(size) + " bytes from " + who +
                ": larger than maxPacketSize " +
                std::to_string(transport_ != nullptr ? transport_->maxPacketSize() : 0));
}

}  // namespace twist
