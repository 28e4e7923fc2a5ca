#include "twist/protocols/reconnecting.h"

#include <algorithm>

namespace twist {

ReconnectingClientFactory::ReconnectingClientFactory(IReactorTime& clock) : clock_(clock) {}

ReconnectingClientFactory::~ReconnectingClientFactory() {
  if (callID_.active()) callID_.cancel();
}

void ReconnectingClientFactory::clientConnectionFailed(IConnector& connector, const Failure&) {
  if (continueTrying_) retry(connector);
}

void ReconnectingClientFactory::clientConnectionLost(IConnector& connector, const Failure&) {
  if (continueTrying_) retry(connector);
}

void ReconnectingClientFactory::retry(IConnector& connector) {
  if (!continueTrying_) return;
  std::shared_ptr<IConnector> c = connector.shared_from_this();
  connector_ = c;
  ++retries_;
  if (maxRetries && retries_ > *maxRetries) return;
  double next = std::min(delay() * factor, maxDelay);
  if (jitter > 0) {
    std::normal_distribution<double> spread(next, next * jitter);
    next = std::max(0.0, spread(rng_));
  }
  delay_ = next;
  callID_ = clock_.callLater(next, [c] {
    if (c->state() == IConnector::State::Disconnected) c->connect();
  });
}

void ReconnectingClientFactory::stopTrying() {
  if (callID_.active()) callID_.cancel();
  continueTrying_ = false;
  if (auto c = connector_.lock(); c && c->state() == IConnector::State::Connecting) {
    c->stopConnecting();
  }
}

void ReconnectingClientFactory::resetDelay() {
  delay_.reset();
  retries_ = 0;
  continueTrying_ = true;
}

}  // namespace twist
