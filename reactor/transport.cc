#include "twist/reactor/transport.h"

#include <stdexcept>

namespace twist {

IProducer::~IProducer() { detachFromConsumer(); }

void IProducer::detachFromConsumer() {
  if (IConsumer* c = consumer_) {
    consumer_ = nullptr;
    if (c->producer() == this) c->unregisterProducer();
  }
}

void IConsumer::linkProducer(IProducer& producer, IConsumer* consumer) {
  if (consumer != nullptr && producer.consumer_ != nullptr && producer.consumer_ != consumer) {
    throw std::logic_error("registerProducer: the producer is registered with another consumer");
  }
  producer.consumer_ = consumer;
}

void ITransport::insertLayer(const LayerMaker&) {
  throw std::logic_error("insertLayer: this transport can't take a layer (startTLS)");
}

namespace detail {
namespace {

class ClosedTransport final : public ITransport {
 public:
  void write(std::string_view) override {}
  void writeSequence(std::span<const std::string_view>) override {}
  void loseConnection() override {}
  void abortConnection() override {}
  void loseWriteConnection() override {}
  void pauseProducing() override {}
  void resumeProducing() override {}
  void stopProducing() override {}
  void registerProducer(IProducer* producer, bool) override {
    if (producer != nullptr) producer->stopProducing();
  }
  void unregisterProducer() override {}
  IProducer* producer() const override { return nullptr; }
  Address getPeer() const override { return {}; }
  Address getHost() const override { return {}; }
  void setTcpNoDelay(bool) override {}
  bool getTcpNoDelay() const override { return false; }
  void setTcpKeepAlive(bool) override {}
  bool getTcpKeepAlive() const override { return false; }
  void setTcpKeepAliveTimes(int, int, int) override {}
  void setWriteBufferLimits(const WriteBufferLimits&) override {}
  WriteBufferLimits writeBufferLimits() const override { return {}; }
  bool disconnecting() const override { return true; }
  size_t bufferedSize() const override { return 0; }
  void insertLayer(const LayerMaker&) override {}
};

}  // namespace

ITransport& closedTransport() {
  static ClosedTransport closed;  // stateless: shared by every thread and reactor
  return closed;
}

}  // namespace detail

}  // namespace twist
