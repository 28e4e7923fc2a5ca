#include "transports/transport.h"

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

}  // namespace twist
